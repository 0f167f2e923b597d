"""requirements.lock pins, exactly, a version of every dependency within pyproject.toml's range.

The Makefile, CI and the Dockerfile install with `-c requirements.lock`; a range changed in
pyproject.toml without `make lock` would make that install fail or float, so the two must agree.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT = Path(__file__).resolve().parents[2]


def locked() -> dict[str, Version]:
    """Return the lock's pins by canonical name; fail on a line that is not `name==version`."""
    pins = {}
    for line in (PROJECT / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def declared() -> list[Requirement]:
    """Return pyproject.toml's dependencies and dev extras."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]


def test_the_lock_pins_every_declared_dependency_within_its_range() -> None:
    pins = locked()
    disagree = {
        str(req): str(pins.get(canonicalize_name(req.name), "missing"))
        for req in declared()
        if pins.get(canonicalize_name(req.name)) not in req.specifier
    }
    assert disagree == {}, "pyproject.toml and requirements.lock disagree: run `make lock`"


def test_the_lock_does_not_pin_the_project_itself() -> None:
    # An editable install of the project constrained to a released version would fail.
    assert "eafix-responder" not in locked()
