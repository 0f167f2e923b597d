"""scripts/ensure-redis, which `make run` and `make test` pass their Redis URL through."""

from __future__ import annotations

import subprocess
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
ENSURE_REDIS = PROJECT / "scripts" / "ensure-redis"


def test_a_url_it_cannot_parse_is_passed_on_for_the_responder_to_refuse() -> None:
    # `make run` with RESPONDER_REDIS_URL=redis://host:port/0 used to end in this script's
    # traceback; the responder says what is wrong with the setting, the same in every command.
    done = subprocess.run(
        [sys.executable, str(ENSURE_REDIS), "redis://127.0.0.1:port/0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "redis://127.0.0.1:port/0\n", "")


def test_its_messages_mask_the_password() -> None:
    loader = SourceFileLoader("ensure_redis", str(ENSURE_REDIS))
    script = module_from_spec(spec_from_loader("ensure_redis", loader))
    loader.exec_module(script)
    assert script.shown("redis://:hunter2@cache:6379/0") == "redis://:***@cache:6379/0"
    assert script.shown("redis://cache:6379/0") == "redis://cache:6379/0"
