"""The runbook's Data Collection 3, `SELECT * FROM pg_stat_statements ORDER BY total_time DESC
LIMIT 10`, against real PostgreSQL servers: one that preloads the extension (a private one:
the shared test server cannot be restarted with it), and the shared one, which does not."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from collectors import postgres
from collectors.contract import CollectorContext, Status, Target
from tests.support.postgres_server import private_postgres

SLOW = "SELECT count(*) FROM generate_series(1, 300000) AS g(n) WHERE n % 7 = 0"


@pytest.fixture(scope="module")
def preloading_postgres() -> Iterator[str]:
    with private_postgres("shared_preload_libraries=pg_stat_statements") as dsn:
        yield dsn


def test_data_collection_pg_stat_statements_top_10_by_total_time(preloading_postgres: str) -> None:
    with psycopg.connect(preloading_postgres, autocommit=True) as db:
        db.execute("CREATE EXTENSION pg_stat_statements")
        for _ in range(3):
            db.execute(SLOW)
        for n in range(15):  # more distinct statements than the ten shown
            db.execute(f"CREATE TABLE probe_{n} (id int)")
            db.execute(f"SELECT count(*) FROM probe_{n}")
    ctx = CollectorContext(redis_url="", timeout_seconds=10, postgres_dsn=preloading_postgres)
    evidence = postgres.collect(Target(()), ctx)
    assert evidence.status is Status.OK, evidence.summary
    assert evidence.summary.endswith("; top statements collected")
    top = evidence.tables["top_statements"]
    assert len(top) == 10
    totals = [float(row["total_ms"]) for row in top]  # numeric, written as text
    assert totals == sorted(totals, reverse=True)  # by total time, the most first
    slow = [row for row in top if "generate_series" in row["query"]]
    assert [row["calls"] for row in slow] == [3]  # normalised: one row for its three runs
    assert '"top_statements"' in evidence.files["postgres/snapshot.json"]


def test_without_the_library_preloaded_the_top_statements_say_why(postgres_dsn: str) -> None:
    # The shared test server does not preload it (as a production server may not).
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        preloaded = db.execute("SHOW shared_preload_libraries").fetchone()
        assert preloaded is not None and "pg_stat_statements" not in preloaded[0]
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    ctx = CollectorContext(redis_url="", timeout_seconds=10, postgres_dsn=postgres_dsn)
    evidence = postgres.collect(Target(()), ctx)
    assert evidence.status is Status.OK, evidence.summary
    assert evidence.tables["top_statements"] == []
    assert evidence.summary.endswith(
        "; top statements skipped: pg_stat_statements must be loaded via shared_preload_libraries"
    )
