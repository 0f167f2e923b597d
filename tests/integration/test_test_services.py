"""The tests use the services their documented settings name, and leave nothing behind there.

Each case runs the PostgreSQL collector tests in a pytest of its own, against a server the
case chooses through RESPONDER_TEST_POSTGRES_DSN.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.conftest import DEFAULT_TEST_POSTGRES_DSN
from tests.support import PROJECT

ADMIN = os.environ.get("RESPONDER_TEST_POSTGRES_DSN", DEFAULT_TEST_POSTGRES_DSN)


@dataclass
class InnerRun:
    """A pytest run of the PostgreSQL tests: its process id, exit code and output."""

    pid: int
    returncode: int
    stdout: str


def run_postgres_tests(dsn: str) -> InnerRun:
    """Run the collector's PostgreSQL tests with RESPONDER_TEST_POSTGRES_DSN=dsn."""
    with subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "postgres",
         "tests/integration/test_collectors.py"],
        cwd=PROJECT, env={**os.environ, "RESPONDER_TEST_POSTGRES_DSN": dsn},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as process:  # fmt: skip
        output, _ = process.communicate(timeout=300)
    return InnerRun(process.pid, process.returncode, output)


def databases() -> set[str]:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


@pytest.fixture
def own_admin_database(postgres_dsn: str) -> Iterator[str]:
    """Return the DSN of a fresh, empty database to hand the inner run as its admin one."""
    name = f"responder_admin_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(ADMIN, dbname=name)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_postgres_tests_create_their_database_and_drop_it_with_its_tables(
    own_admin_database: str,
) -> None:
    inner = run_postgres_tests(own_admin_database)
    assert inner.returncode == 0, inner.stdout[-3000:]
    assert "passed" in inner.stdout and "skipped" not in inner.stdout
    # The inner run's database (named after its process) is gone. Not "the same databases as
    # before": the other processes of this run make and drop theirs meanwhile.
    assert {d for d in databases() if d.startswith(f"responder_test_{inner.pid}_")} == set()
    with psycopg.connect(own_admin_database) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchall() == []  # nothing was made in the database it was given


def test_no_postgres_at_the_configured_address_fails_the_run_never_skips_it() -> None:
    # Port 1 on loopback: nothing listens there.
    inner = run_postgres_tests("postgresql://postgres@127.0.0.1:1/postgres")
    assert inner.returncode == 1, inner.stdout[-3000:]
    assert "PostgreSQL is required at 127.0.0.1:1 (RESPONDER_TEST_POSTGRES_DSN)" in inner.stdout
    assert "skipped" not in inner.stdout
