"""The `postgres` collector: the runbook's database checks through psycopg 3, read-only, bounded."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row

from collectors.contract import CollectorContext, Evidence, Status, Target

NAME = "postgres"
# Fixed SQL only: nothing from an alert is ever part of a statement.
QUERIES = {
    "now": "SELECT now() AS now, current_database() AS database, version() AS version",
    "connections": "SELECT count(*) AS connections FROM pg_stat_activity",
    "active": (
        "SELECT pid, usename, application_name, state, query_start, left(query, 500) AS query "
        "FROM pg_stat_activity WHERE state IS DISTINCT FROM 'idle' AND pid <> pg_backend_pid() "
        "ORDER BY query_start NULLS LAST LIMIT 50"
    ),
    "locks_waiting": (
        "SELECT locktype, relation::regclass::text AS relation, mode, pid "
        "FROM pg_locks WHERE NOT granted LIMIT 50"
    ),
    "size": "SELECT pg_size_pretty(pg_database_size(current_database())) AS size",
}
TOP_STATEMENTS = (
    "SELECT left(query, 500) AS query, calls, round(total_exec_time::numeric, 1) AS total_ms, "
    "round(mean_exec_time::numeric, 2) AS mean_ms FROM pg_stat_statements "
    "ORDER BY total_exec_time DESC LIMIT 10"
)


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """Connect, check `now()`, count connections, list active queries, waiting locks, size."""
    if not ctx.postgres_dsn:
        return Evidence(NAME, Status.SKIPPED, "no database configured (RESPONDER_POSTGRES_DSN)")
    timeout_ms = int(ctx.timeout_seconds * 1000)
    try:
        with psycopg.connect(
            ctx.postgres_dsn,
            connect_timeout=max(1, int(ctx.timeout_seconds)),
            options=f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on",
            row_factory=dict_row,
            autocommit=True,
        ) as connection:
            results = {name: connection.execute(sql).fetchall() for name, sql in QUERIES.items()}
            results["top_statements"], statements_note = top_statements(connection)
    except psycopg.errors.QueryCanceled:
        return Evidence(NAME, Status.TIMEOUT, f"a query ran past {ctx.timeout_seconds:g}s")
    except psycopg.Error as exc:
        return Evidence(
            NAME, Status.FAILED, ctx.redact(f"database unreachable: {_first_line(exc)}")
        )
    tables = {name: [_plain(row) for row in rows] for name, rows in results.items()}
    waiting = len(tables["locks_waiting"])
    summary = (
        f"now() answered; {tables['connections'][0]['connections']} connections, "
        f"{len(tables['active'])} active, {waiting} locks waiting, size {tables['size'][0]['size']}"
        f"; {statements_note}"
    )
    return Evidence(
        collector=NAME,
        status=Status.FAILED if waiting else Status.OK,
        summary=summary,
        tables=tables,
        files={"postgres/snapshot.json": json.dumps(tables, indent=2, default=str)},
    )


def top_statements(connection: psycopg.Connection[Any]) -> tuple[list[dict[str, Any]], str]:
    """Return the top statements by total time, or an empty list and why when unavailable."""
    try:
        installed = connection.execute(
            "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
        ).fetchone()
        if not installed:
            return [], "pg_stat_statements not installed: top statements skipped"
        return connection.execute(TOP_STATEMENTS).fetchall(), "top statements collected"
    except psycopg.Error as exc:
        return [], f"top statements skipped: {_first_line(exc)}"


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, int | float | str | type(None)) else str(v) for k, v in row.items()
    }


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
