"""Each collector against the real thing (PostgreSQL, Redis, git, this host) or, for the Docker
engine that cannot run here, a fake Engine API on a Unix socket; dead and slow targets; secrets
planted everywhere appear nowhere in the bundle."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from collectors import containers, deployments, host, postgres
from collectors.contract import CollectorContext, Status, Target
from collectors.redact import make_redactor
from collectors.registry import run_collector
from collectors.service_health import collect as check_health
from tasks.evidence import bundle
from tests.fakes.docker_engine import FakeContainer, FakeDockerEngine
from tests.support import wait_for
from triage.policy import Service

CANARY = "CANARY-9f3e71"
SERVICES = tuple(
    Service(n, f"http://{n}/healthz") for n in ("risk-manager", "execution-engine", "gui-gateway")
)


def context(**fields) -> CollectorContext:
    return CollectorContext(
        redis_url="", timeout_seconds=3, redact=make_redactor([CANARY]), **fields
    )


def stored(tmp_path: Path, evidence, ctx: CollectorContext) -> str:
    """Store evidence the way the pipeline does and return everything written, as text."""
    files = bundle.store_files(tmp_path, evidence.files, ctx.redact)
    entry = bundle.manifest_entry(evidence, files, ctx.redact)
    (tmp_path / "entry.json").write_text(json.dumps(entry))
    return "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())


# --- postgres ----------------------------------------------------------------------------


def test_postgres_snapshot_of_the_real_database(tmp_path: Path, postgres_dsn: str) -> None:
    evidence = postgres.collect(Target(SERVICES), context(postgres_dsn=postgres_dsn))
    assert evidence.status is Status.OK, evidence.summary
    assert evidence.summary.startswith("now() answered;")
    assert (
        "pg_stat_statements" in evidence.summary or "top statements collected" in evidence.summary
    )
    assert evidence.tables["connections"][0]["connections"] >= 1
    assert "postgres/snapshot.json" in evidence.files


def test_postgres_reports_waiting_locks_and_hides_query_secrets(
    tmp_path: Path, postgres_dsn: str
) -> None:
    # In the tests' own database, which goes at the end of the session with the table.
    with psycopg.connect(postgres_dsn, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS responder_lock_probe (id int)")
    holder = psycopg.connect(postgres_dsn)
    holder.execute("LOCK TABLE responder_lock_probe IN ACCESS EXCLUSIVE MODE")

    def wait_for_the_lock() -> None:
        with psycopg.connect(postgres_dsn, autocommit=True) as blocked:
            blocked.execute(f"SELECT * FROM responder_lock_probe /* password={CANARY} */")

    waiter = threading.Thread(target=wait_for_the_lock)
    waiter.start()
    try:
        wait_for(lambda: locks_waiting(postgres_dsn), what="the query to wait for the lock")
        ctx = context(postgres_dsn=postgres_dsn)
        evidence = postgres.collect(Target(SERVICES), ctx)
    finally:
        holder.rollback()
        holder.close()
        waiter.join(timeout=10)
    assert evidence.status is Status.FAILED
    assert "1 locks waiting" in evidence.summary
    assert any("responder_lock_probe" in str(r["query"]) for r in evidence.tables["active"])
    assert CANARY not in stored(tmp_path, evidence, ctx)


def locks_waiting(dsn: str) -> int:
    """Return how many sessions of this database wait for a lock (the probe's, once blocked)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def test_postgres_dead_target_fails_with_the_reason_and_no_password(tmp_path: Path) -> None:
    ctx = context(postgres_dsn=f"postgresql://eafix:{CANARY}@127.0.0.1:1/eafix_prod")
    evidence = postgres.collect(Target(SERVICES), ctx)
    assert evidence.status is Status.FAILED
    assert evidence.summary.startswith("database unreachable:")
    assert CANARY not in stored(tmp_path, evidence, ctx)


# --- git, host, redis --------------------------------------------------------------------


def test_git_lists_the_last_day_of_commits(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=Deployer", "-c", "user.email=d@eafix.example"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run(
        [*git, "commit", "-q", "--allow-empty", "-m", "Deploy risk-manager 2.4.1"], check=True
    )
    subprocess.run(
        [*git, "commit", "-q", "--allow-empty", "-m", "Deploy risk-manager 2.4.2\x1fnext"],
        check=True,
    )
    evidence = deployments.collect(Target(SERVICES), context(git_repo=str(repo)))
    assert evidence.status is Status.OK
    assert evidence.summary.startswith("2 commits in the last 24 h; latest ")
    latest, first = evidence.tables["commits"]
    assert first["subject"] == "Deploy risk-manager 2.4.1"
    # A separator in a subject stays in the subject; each deploy names the revision before it.
    assert latest["subject"] == "Deploy risk-manager 2.4.2\x1fnext"
    assert latest["parent"] == first["revision"] and len(first["revision"]) == 40
    assert first["parent"] == ""  # the first commit replaced nothing: no rollback from it
    missing = deployments.collect(Target(SERVICES), context(git_repo=str(tmp_path / "nope")))
    assert missing.status is Status.FAILED and "not a git repository" in missing.summary


def test_host_resources_and_processes_without_command_lines() -> None:
    evidence = host.collect(Target(SERVICES), context())
    assert evidence.status in (Status.OK, Status.FAILED)
    assert "cpu" in evidence.summary and "memory" in evidence.summary
    assert evidence.tables["processes"]
    assert all(
        set(p) == {"pid", "name", "user", "cpu_percent", "memory_percent"}
        for p in evidence.tables["processes"]
    )


def test_redis_ping_info_and_slowlog(redis_url: str) -> None:
    evidence = run_collector("redis", Target(SERVICES), context().__class__(redis_url=redis_url))
    assert evidence.status is Status.OK
    assert evidence.summary.startswith("PONG in ")
    assert "slowlog" in evidence.tables


# --- docker (fake Engine API) ------------------------------------------------------------


def ago(minutes: float) -> str:
    """Return the RFC 3339 time `minutes` ago, as the engine prefixes a log line with it."""
    moment = datetime.now(UTC) - timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def engine() -> FakeDockerEngine:
    fake = FakeDockerEngine(
        [
            FakeContainer(
                "risk-manager",
                health="unhealthy",
                restarts=3,
                env=[f"DB_PASSWORD={CANARY}", "TZ=UTC"],
                log_lines=[
                    f"{ago(3)} INFO started",
                    f"{ago(2)} ERROR login failed for eafix password={CANARY}",
                    f"{ago(1)} CRITICAL positions checksum mismatch POS-2",
                ],
            ),
            FakeContainer("execution-engine", state="exited", health="unhealthy"),
            FakeContainer("gui-gateway"),
            FakeContainer("postgres", project="other"),
        ]
    ).start()
    yield fake
    fake.stop()


def test_docker_compose_ps_logs_and_stats(engine: FakeDockerEngine, tmp_path: Path) -> None:
    ctx = context(docker_url=engine.url)
    target = Target(SERVICES, affected=("risk-manager",))
    evidence = containers.collect(target, ctx)
    assert evidence.status is Status.FAILED
    assert evidence.summary == (
        "2/3 containers running, 2 error lines in the last 15 min; risk-manager unhealthy, "
        "3 restarts, 2 error lines; execution-engine exited, unhealthy"
    )
    rows = {r["service"]: r for r in evidence.tables["containers"]}
    assert rows["risk-manager"]["cpu_percent"] == 20.0  # (1e9 / 1e10) * 2 CPUs * 100
    assert rows["risk-manager"]["memory_mb"] == 256.0
    assert "docker/risk-manager.errors.log" in evidence.files
    assert "docker/risk-manager.log" in evidence.files  # the alert names it: its whole hour
    written = stored(tmp_path, evidence, ctx)
    assert "CRITICAL positions checksum mismatch" in written
    assert CANARY not in written  # neither the container's env nor its log line


# Initial Diagnosis 3, "docker compose logs --since=15m | grep -i error", for every container;
# Data Collection 1, "docker compose logs --since=1h > incident_logs_...txt", for each affected
# one. The alert names risk-manager; execution-engine is a bystander.
# container, minutes ago, line, counted as an error, in the saved log of the hour
LOG_LINES = [
    ("risk-manager", 50, "ERROR an hour's error, before the 15 minutes", False, True),
    ("risk-manager", 90, "ERROR older than the hour", False, False),
    ("risk-manager", 10, "ERROR broker session reset", True, True),
    ("risk-manager", 9, "error: lower case is an error too (grep -i)", True, True),
    ("risk-manager", 8, "Traceback: ValueError Exception in check", True, True),
    ("risk-manager", 7, "CRITICAL positions checksum mismatch", True, True),
    ("risk-manager", 6, "INFO all quiet", False, True),
    ("execution-engine", 5, "ERROR order rejected by the broker", True, False),
    ("execution-engine", 4, "INFO order filled", False, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("service", "minutes", "text", "counted", "saved"),
    LOG_LINES,
    ids=[f"{row[0]} {row[2]}" for row in LOG_LINES],
)
def test_logs_as_the_runbook_reads_them(
    tmp_path: Path, service: str, minutes: int, text: str, counted: bool, saved: bool
) -> None:
    by_service: dict[str, list[str]] = {}
    for name, age, line, _, _ in sorted(LOG_LINES, key=lambda row: -row[1]):
        by_service.setdefault(name, []).append(f"{ago(age)} {line}")
    fake = FakeDockerEngine(
        [FakeContainer(name, log_lines=lines) for name, lines in by_service.items()]
    ).start()
    try:
        ctx = context(docker_url=fake.url)
        evidence = containers.collect(Target(SERVICES, affected=("risk-manager",)), ctx)
    finally:
        fake.stop()
    stored(tmp_path, evidence, ctx)
    errors = tmp_path / "docker" / f"{service}.errors.log"
    assert (text in errors.read_text() if errors.exists() else False) is counted
    hour = tmp_path / "docker" / f"{service}.log"
    assert (text in hour.read_text() if hour.exists() else False) is saved
    # Every container's errors are counted in the summary, not only the alerted one's.
    assert evidence.summary == (
        "2/2 containers running, 5 error lines in the last 15 min; risk-manager 4 error lines; "
        "execution-engine 1 error lines"
    )


def test_a_long_hour_of_logs_keeps_its_latest_lines_within_the_bound(tmp_path: Path) -> None:
    lines = [f"{ago(50 - n / 100)} INFO line {n:05d} {'x' * 200}" for n in range(4000)]
    fake = FakeDockerEngine([FakeContainer("risk-manager", log_lines=lines)]).start()
    try:
        ctx = context(docker_url=fake.url)
        evidence = containers.collect(Target(SERVICES, affected=("risk-manager",)), ctx)
    finally:
        fake.stop()
    saved = evidence.files["docker/risk-manager.log"]
    head, _, body = saved.partition("\n")
    assert len(body.encode()) <= containers.SAVED_LOG_BYTES
    assert head.startswith("[... ") and head.endswith(
        f"earlier lines of the hour cut: the latest {containers.SAVED_LOG_BYTES} bytes are kept]"
    )
    assert body.splitlines()[-1] == lines[-1]  # the latest line is kept, whole
    assert all(line in lines for line in body.splitlines())


def test_docker_without_an_engine_is_skipped_or_failed_with_the_reason(tmp_path: Path) -> None:
    skipped = containers.collect(Target(SERVICES), context())
    assert skipped.status is Status.SKIPPED and "RESPONDER_DOCKER_URL" in skipped.summary
    dead = containers.collect(Target(SERVICES), context(docker_url=f"unix://{tmp_path}/none.sock"))
    assert dead.status in (Status.FAILED, Status.SKIPPED)
    assert dead.summary.startswith(("Docker engine error", "Docker SDK cannot connect"))


# --- dead, slow and broken ---------------------------------------------------------------


def test_a_slow_service_is_a_timeout_entry_within_its_timeout() -> None:
    def slow(environ, start_response):
        time.sleep(3)
        return Response("{}")(environ, start_response)

    server = make_server("127.0.0.1", 0, slow, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = Target(
            (Service("risk-manager", f"http://127.0.0.1:{server.server_port}/healthz"),)
        )
        evidence = check_health(target, CollectorContext(redis_url="", timeout_seconds=0.5))
    finally:
        server.shutdown()
    # Had it waited for the slow answer it would have got a 200: the timeout cut it short.
    assert evidence.status is Status.TIMEOUT
    assert evidence.summary == "0/1 services healthy; risk-manager no answer within 0.5s"


def test_a_collector_that_cannot_load_is_skipped_and_says_why(monkeypatch) -> None:
    from collectors import registry

    monkeypatch.setitem(registry.BUILTIN, "broken", "collectors.does_not_exist")
    evidence = run_collector("broken", Target(SERVICES), context())
    assert evidence.status is Status.SKIPPED
    assert evidence.summary.startswith("cannot load: ModuleNotFoundError")


def test_a_collector_that_raises_becomes_a_failed_entry(monkeypatch) -> None:
    from collectors import registry

    monkeypatch.setattr(registry, "load", lambda name: lambda t, c: 1 / 0)
    evidence = run_collector("http", Target(SERVICES), context())
    assert (evidence.status, evidence.summary) == (
        Status.FAILED,
        "collector error: ZeroDivisionError: division by zero",
    )
