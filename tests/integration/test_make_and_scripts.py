"""The Makefile and the scripts it runs, as a user's shell runs them (make -n runs nothing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest

from tests.support import PROJECT
from tests.support.redis_servers import free_port

ENSURE_REDIS = PROJECT / "scripts" / "ensure-redis"
RUN_WITH_REDIS = PROJECT / "scripts" / "run-with-redis"


def make_dry_run(target: str, *args: str, **environment: str) -> str:
    """Return what `make TARGET ARGS` would execute (make -n runs nothing)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-n", "-C", str(PROJECT), target, *args],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def make_run_command(*args: str, **environment: str) -> str:
    """Return the `responder run` line `make run ARGS` would execute."""
    printed = make_dry_run("run", *args, **environment)
    return next(line.strip() for line in printed.splitlines() if "responder run" in line)


@pytest.mark.parametrize(
    ("args", "environment", "expected"),
    [
        ((), {}, '--host "127.0.0.1" --port "8080"'),
        (("PORT=9001", "HOST=0.0.0.0"), {}, '--host "0.0.0.0" --port "9001"'),
        # zsh and some desktops set HOST to the machine's name: not an address to bind.
        ((), {"HOST": "laptop.local"}, '--host "127.0.0.1" --port "8080"'),
    ],
)
def test_make_run_listens_where_it_is_told(
    args: tuple[str, ...], environment: dict[str, str], expected: str
) -> None:
    assert make_run_command(*args, **environment).endswith(f"responder run {expected}")


def test_make_test_hands_pytest_the_services_it_ensured() -> None:
    dsn = "postgresql://tester@127.0.0.1:5999/admin"
    printed = make_dry_run(
        "test",
        "RESPONDER_TEST_REDIS_URL=redis://127.0.0.1:6399/4",
        f"RESPONDER_TEST_POSTGRES_DSN={dsn}",
    )
    assert 'scripts/ensure-redis "redis://127.0.0.1:6399/4"' in printed
    assert f'scripts/ensure-postgres "{dsn}"' in printed
    assert 'RESPONDER_TEST_REDIS_URL="$url" RESPONDER_TEST_POSTGRES_DSN="$dsn"' in printed


def test_make_test_runs_whole_files_on_the_processes_asked_in_order_and_names_the_slowest() -> None:
    # Each process takes a database of its own (tests/support: worker_redis_url); a file runs
    # whole on one process, so that its module fixtures start once; files go out in the order
    # collected (slowest first, tests/conftest.py), not xdist's by number of tests.
    printed = " ".join(make_dry_run("test", "TEST_WORKERS=2").replace("\\\n", " ").split())
    assert "pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15" in printed
    assert "--junitxml=var/test-report.xml" in printed
    assert "pytest -n 3 " in make_dry_run("test", "TEST_WORKERS=3")


def test_make_test_nightly_runs_make_test_with_the_nightly_hypothesis_profile() -> None:
    assert "HYPOTHESIS_PROFILE=nightly make test" in make_dry_run("test-nightly")


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


def redis_answers(port: int) -> bool:
    """Return whether a Redis answers PING on 127.0.0.1:port."""
    done = subprocess.run(
        ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=10
    )
    return done.stdout.strip() == "PONG"


def test_make_run_says_loudly_it_started_a_redis_and_stops_it_on_ctrl_c(tmp_path: Path) -> None:
    # `make run` with no Redis at RESPONDER_REDIS_URL used to start one quietly and leave it
    # running after Ctrl-C. The command here stands for `responder run`: it stops on SIGINT.
    port = free_port()
    stand_in = "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    pass\n"
    process = subprocess.Popen(
        [
            str(RUN_WITH_REDIS),
            f"redis://127.0.0.1:{free_port()}/0",
            sys.executable,
            "-c",
            f"import os; print(os.environ['RESPONDER_REDIS_URL'], flush=True)\n{stand_in}",
        ],
        cwd=tmp_path,
        env={**os.environ, "RESPONDER_LOCAL_REDIS_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C reaches the terminal's process group: this one
        # A terminal's Ctrl-C is not ignored; a test runner's children may inherit SIG_IGN.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    told = process.stdout.readline().strip()  # the stand-in is running, with the URL it got
    assert told == f"redis://127.0.0.1:{port}/0"
    assert redis_answers(port)
    os.killpg(process.pid, signal.SIGINT)
    _, errors = process.communicate(timeout=30)
    assert f"STARTED A REDIS OF OUR OWN on 127.0.0.1:{port}" in errors
    assert "stopping the Redis make run started" in errors
    assert not (tmp_path / "var" / "redis" / "started-by-run.pid").exists()
    # redis-server exits on SIGTERM after a save; wait for it rather than for a fixed time.
    for _ in range(100):
        if not redis_answers(port):
            break
        subprocess.run(["sleep", "0.1"], check=True)
    assert not redis_answers(port)


def test_make_run_leaves_a_redis_that_answered_alone(tmp_path: Path, redis_url: str) -> None:
    done = subprocess.run(
        [
            str(RUN_WITH_REDIS),
            redis_url,
            sys.executable,
            "-c",
            "import os; print(os.environ['RESPONDER_REDIS_URL'])",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == redis_url
    assert "STARTED" not in done.stderr
    assert not (tmp_path / "var" / "redis" / "started-by-run.pid").exists()
