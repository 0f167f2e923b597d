"""`responder --help` and `--version`: what a user types first."""

from __future__ import annotations

from importlib.metadata import version

import click
import pytest
from click.testing import CliRunner

from tasks.cli import main
from tasks.cli.policy import policy_group


def summary(command: click.Command) -> str:
    """Return the first line of a command's docstring, as written."""
    assert command.help, command.name
    return command.help.strip().splitlines()[0]


def words(text: str) -> str:
    """Return `text` with its whitespace collapsed, so wrapped lines compare equal."""
    return " ".join(text.split())


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"responder, version {version('eafix-responder')}\n"


@pytest.mark.parametrize(
    ("group", "args"), [(main, ["--help"]), (policy_group, ["policy", "--help"])]
)
@pytest.mark.parametrize("width", [80, 200])
def test_help_lists_every_command_with_its_whole_summary(
    group: click.Group, args: list[str], width: int
) -> None:
    result = CliRunner().invoke(main, args, terminal_width=width)
    assert result.exit_code == 0
    listed = words(result.output.split("Commands:")[1])
    for name, command in group.commands.items():
        assert words(f"{name} {summary(command)}") in listed
    assert "..." not in listed
