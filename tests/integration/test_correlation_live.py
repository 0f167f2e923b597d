"""Correlation acting live: one outage along the trading flow is one incident, through the real
receiver, a real Celery worker (with beat, for the joined note) and the fake PagerDuty.

Each policy variant runs its own worker on its own queue (the policy is read once per process);
shadow mode uses the session's worker, whose policy is the built-in one in shadow mode.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from click.testing import CliRunner

from tasks.cli import main
from tasks.evidence.links import incident_link
from tasks.lanes import notify_queue, urgent_queue
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.store.correlation import LEDGER_KEY, CorrelationLedger
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import TOKEN, clear_responder_keys, sample_payload, wait_for
from tests.support.workers import start_worker, stop_worker
from triage.correlation_replay import group_of, replay
from triage.models import parse_alertmanager
from triage.policy import load_file
from webhooks import create_app

FIRST_NOTE = "Collecting evidence now"


def alert(name: str, labels: dict[str, str], summary: str, fingerprint: str) -> dict[str, Any]:
    """Return one firing Alertmanager alert."""
    return {
        "status": "firing",
        "labels": {"alertname": name, "severity": "critical", **labels},
        "annotations": {"summary": summary},
        "startsAt": "2026-11-27T14:30:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }


def group(name: str, test: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    """Return an Alertmanager notification of one group (its key unique to the test)."""
    return sample_payload(
        alerts=list(alerts),
        groupLabels={"alertname": name},
        commonLabels={"alertname": name},
        commonAnnotations={},
        groupKey=f'{{}}:{{alertname="{name}", test="{test}"}}',
    )


def execution_engine_down(test: str) -> dict[str, Any]:
    """The execution engine stops answering: P1 (TradingServiceDown, partial)."""
    labels = {"category": "outage", "scope": "partial", "job": "eafix-execution-engine"}
    down = alert("TradingServiceDown", labels, "execution-engine is down", f"ee-{test}")
    return group("TradingServiceDown", test, down)


def risk_manager_down(test: str) -> dict[str, Any]:
    """The risk manager stops answering: P0 (risk management down)."""
    labels = {"category": "risk-management", "service": "risk-manager"}
    down = alert("RiskManagerDown", labels, "Risk manager is down", f"rm-{test}")
    return group("RiskManagerDown", test, down)


def gateway_down(test: str) -> dict[str, Any]:
    """The GUI gateway stops answering (ServiceDown, single)."""
    labels = {"category": "outage", "scope": "single", "service": "gui-gateway"}
    labels["severity"] = "warning"
    down = alert("ServiceDown", labels, "GUI gateway is down", f"gw-{test}")
    return group("ServiceDown", test, down)


def incident_key(payload: dict[str, Any]) -> str:
    """Return the incident key the receiver (and Alertmanager's PagerDuty receiver) uses."""
    return hashlib.sha256(payload["groupKey"].encode()).hexdigest()


@contextmanager
def own_worker(
    responder_env: dict[str, str], policy: Path, queue: str, log: Path
) -> Iterator[None]:
    """Run a real worker with beat inside, on its own policy and queue."""
    env = {
        **responder_env,
        "RESPONDER_POLICY": str(policy),
        "RESPONDER_QUEUE": queue,
        "RESPONDER_SLA_TICK_SECONDS": "0.5",
        "RESPONDER_PAGERDUTY_ROUTING_KEY": "R" * 32,
        "RESPONDER_PAGERDUTY_EVENTS_URL": responder_env["RESPONDER_PAGERDUTY_API_URL"],
    }
    queues = [queue, urgent_queue(queue), notify_queue(queue, "P0"), notify_queue(queue, "P3")]
    extra = ["-B", "--schedule", str(log.with_suffix(".beat")), "--queues", ",".join(queues)]
    process = start_worker(env, log, log.stem, concurrency=3, extra=extra)
    try:
        yield
    finally:
        stop_worker(process)


def policy_file(test_policy: Path, directory: Path, name: str, **changes: Any) -> Path:
    """Write the test policy with correlation on (and `changes` to its sections)."""
    policy = yaml.safe_load(test_policy.read_text())
    policy["correlation"].update(mode="on", note_after="1s")
    for section, values in changes.items():
        policy[section].update(values)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@pytest.fixture
def ledger(redis_client: redis.Redis) -> Iterator[None]:
    """Start from an empty ledger: other tests' shadow incidents must not be joined."""
    redis_client.delete(LEDGER_KEY)
    yield
    redis_client.delete(LEDGER_KEY)


@dataclass(frozen=True)
class OnWorld:
    """A test's policy with correlation on, the settings that use it, and its own worker."""

    policy: Path
    settings: Settings
    worker: Callable[[], AbstractContextManager[None]]


@pytest.fixture
def correlation_on(
    settings: Settings,
    responder_env: dict[str, str],
    test_policy: Path,
    tmp_path: Path,
    ledger: None,
) -> Callable[..., OnWorld]:
    """Return a maker of a world named `name` with correlation on (`changes` to the policy's
    sections; `extra` to the settings)."""

    def make(name: str, extra: dict[str, Any] | None = None, **changes: Any) -> OnWorld:
        policy = policy_file(test_policy, tmp_path, name, **changes)
        queue = f"responder-correlation-{name}"
        on = replace(settings, policy_path=str(policy), queue=queue, **(extra or {}))
        log = tmp_path / f"{name}.log"
        return OnWorld(policy, on, lambda: own_worker(responder_env, policy, queue, log))

    return make


@pytest.fixture(scope="module")
def on_world(
    settings: Settings,
    responder_env: dict[str, str],
    test_policy: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OnWorld]:
    """One worker for the tests that share the plain policy with correlation on: their groups
    are their own (each test's name is in its group keys), and each starts from an empty
    ledger (`ledger`)."""
    folder = tmp_path_factory.mktemp("correlation-on")
    policy = policy_file(test_policy, folder, "on")
    queue = "responder-correlation-on"
    # Module fixtures start before the first test clears the keys, and this worker's beat acts
    # at once on what it finds: deadlines of whatever file ran before on this test process
    # would reach the fake PagerDuty, reset for this test, as calls on incidents it never had.
    state = redis.Redis.from_url(responder_env["RESPONDER_REDIS_URL"])
    clear_responder_keys(state)
    state.close()
    with own_worker(responder_env, policy, queue, folder / "on.log"):
        yield OnWorld(policy, replace(settings, policy_path=str(policy), queue=queue), nullcontext)


def post(settings: Settings, payload: dict[str, Any]) -> str:
    """Post an Alertmanager notification to the receiver; return its delivery id."""
    answer = (
        create_app(settings)
        .test_client()
        .post("/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {TOKEN}"})
    )
    assert answer.status_code == 202, answer.get_data(as_text=True)
    return str(answer.get_json()["delivery_id"])


def notes(pagerduty: FakePagerDuty, incident_id: str) -> list[str]:
    """Return the contents of an incident's notes."""
    return [n["content"] for n in pagerduty.notes_for(incident_id)]


def test_an_outage_along_the_flow_is_one_incident_merged_into_with_its_origin_named(
    pagerduty: FakePagerDuty,
    redis_client: redis.Redis,
    on_world: OnWorld,
    ledger: None,
) -> None:
    world = on_world
    policy, on = world.policy, world.settings
    first, risk, gateway = (
        execution_engine_down("attach"),
        risk_manager_down("attach"),
        gateway_down("attach"),
    )
    # Alertmanager's own PagerDuty receiver opened one incident per group, as it does.
    ids = {incident_key(p): pagerduty.add_incident(incident_key(p)) for p in (first, risk, gateway)}
    target = ids[incident_key(first)]
    with world.worker():
        delivered = [post(on, first)]
        wait_for(lambda: any(FIRST_NOTE in n for n in notes(pagerduty, target)), 60, "1st note")
        delivered += [post(on, risk), post(on, gateway)]
        wait_for(lambda: len(pagerduty.merges) == 2, 60, "both symptom incidents merged")
        wait_for(
            lambda: any("Tied in by correlation" in n for n in notes(pagerduty, target)),
            60,
            "the joined note",
        )
        wait_for(
            lambda: any("Priority raised from P1 to P0" in n for n in notes(pagerduty, target)),
            60,
            "the priority raised",
        )
        wait_for(
            lambda: any(" evidence: " in n.splitlines()[0] for n in notes(pagerduty, target)),
            60,
            "the evidence note",
        )
    said = notes(pagerduty, target)
    assert sorted(pagerduty.merges) == sorted(
        [(target, [ids[incident_key(risk)]]), (target, [ids[incident_key(gateway)]])]
    )
    assert [pagerduty.incidents[ids[incident_key(p)]]["status"] for p in (risk, gateway)] == [
        "resolved",
        "resolved",
    ]
    # One first note, on the origin incident; nothing on the merged ones.
    assert sum(FIRST_NOTE in n for n in said) == 1
    assert notes(pagerduty, ids[incident_key(risk)]) == []
    assert notes(pagerduty, ids[incident_key(gateway)]) == []
    joined = next(n for n in said if "Tied in by correlation" in n)
    assert "Probable origin: risk-manager; downstream symptoms: " in joined
    assert "rule flow-outage: risk-manager is 1 hop from execution-engine" in joined
    assert f"its PagerDuty incident {ids[incident_key(risk)]} was merged into this one" in joined
    raised = next(n for n in said if "Priority raised" in n)
    assert raised.startswith("[P0 (PagerDuty: P1)] Priority raised from P1 to P0: ")
    assert pagerduty.incidents[target]["priority"]["summary"] == "P1"  # PagerDuty's name for P0
    # One evidence run for the incident: proposals come from it alone, one per target (the
    # joining groups' services were in its evidence, so they are not diagnosed again).
    assert sum(" evidence: " in n.splitlines()[0] for n in said) == 1
    assert "Not diagnosed again: this incident's evidence already covers their services." in joined
    # The replay of the same deliveries makes the incident the live ledger made.
    live = CorrelationLedger(redis_client).read()
    [incident] = [
        i for i in live.incidents if any(m.group.endswith('test="attach"}') for m in i.members)
    ]
    rt = Runtime(on)
    history = []
    for delivery_id in delivered:
        stored = rt.deliveries.load(delivery_id)
        assert stored is not None
        received = datetime.fromisoformat(str(stored.record["received_at"]))
        history.append((received, group_of(parse_alertmanager(stored.payload()))))
    [replayed] = replay(history, load_file(policy))
    assert [(m.group, m.name, m.how.split(";")[0].split(" by ")[-1]) for m in replayed.members] == [
        (m.group, m.name, m.how.split(";")[0].split(" by ")[-1]) for m in incident.members
    ]
    assert replayed.origin == "risk-manager"
    # The incident page and `responder correlate --live` list the members and their ties.
    expires = int(datetime.now(UTC).timestamp()) + 600
    link = incident_link("", target, expires, on.link_secret.reveal())
    page = create_app(on).test_client().get(link)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Correlated alerts" in html and "Probable origin: <strong>risk-manager</strong>" in html
    assert "edge risk-manager -&gt; execution-engine (1 hop), window 10m" in html
    shown = CliRunner().invoke(
        main,
        ["correlate", "--live", "--json"],
        env={"RESPONDER_REDIS_URL": on.redis_url, "RESPONDER_POLICY": str(policy)},
    )
    assert shown.exit_code == 0, shown.output
    [held] = [i for i in json.loads(shown.output)["incidents"] if i["pagerduty"] == target]
    assert held["origin"] == "risk-manager"
    assert [m["alert"] for m in held["members"]] == [m.name for m in incident.members]


def test_two_unrelated_problems_at_once_stay_two_incidents(
    pagerduty: FakePagerDuty,
    on_world: OnWorld,
    ledger: None,
) -> None:
    world = on_world
    on = world.settings
    latency = group(
        "SignalLatencyHigh",
        "unrelated",
        alert("SignalLatencyHigh", {"category": "latency", "service": "signal-generator"},
              "p99 signal latency is 7s", "lat-unrelated"),
    )  # fmt: skip
    disk = group(
        "DiskFilling",
        "unrelated",
        alert("DiskFilling", {"category": "capacity", "instance": "backup-host"},
              "the backup host's disk is 95% full", "disk-unrelated"),
    )  # fmt: skip
    ids = [pagerduty.add_incident(incident_key(p)) for p in (latency, disk)]
    with world.worker():
        for payload in (latency, disk):
            post(on, payload)
        for incident_id in ids:
            wait_for(
                lambda i=incident_id: any(FIRST_NOTE in n for n in notes(pagerduty, i)),
                60,
                f"the first note on {incident_id}",
            )
    assert pagerduty.merges == []


def test_in_trigger_mode_a_joining_group_opens_no_incident_and_pages_once(
    pagerduty: FakePagerDuty,
    correlation_on: Callable[..., OnWorld],
) -> None:
    world = correlation_on(
        "trigger",
        {"pagerduty_routing_key": Secret("R" * 32), "pagerduty_events_url": pagerduty.base_url},
        pagerduty={"incident": "trigger", "set_priority": True},
    )
    on = world.settings
    first, risk = execution_engine_down("trigger"), risk_manager_down("trigger")
    with world.worker():
        post(on, first)
        target = wait_for(lambda: pagerduty.incident_id_for_key(incident_key(first)), 60, "page")
        wait_for(lambda: any(FIRST_NOTE in n for n in notes(pagerduty, target)), 60, "1st note")
        post(on, risk)
        wait_for(
            lambda: any("Tied in by correlation" in n for n in notes(pagerduty, target)),
            60,
            "the joined note",
        )
    assert len(pagerduty.incidents) == 1  # one page
    assert [e["dedup_key"] for e in pagerduty.events] == [incident_key(first)]
    assert pagerduty.merges == []
    assert sum(FIRST_NOTE in n for n in notes(pagerduty, target)) == 1


def test_shadow_mode_acts_on_nothing_and_the_first_note_says_would_have_joined(
    settings: Settings,
    worker: Path,
    pagerduty: FakePagerDuty,
    redis_client: redis.Redis,
    ledger: None,
) -> None:
    first, risk = execution_engine_down("shadow"), risk_manager_down("shadow")
    ids = [pagerduty.add_incident(incident_key(p)) for p in (first, risk)]
    post(settings, first)
    wait_for(lambda: any(FIRST_NOTE in n for n in notes(pagerduty, ids[0])), 60, "1st note")
    delivery = post(settings, risk)
    said = wait_for(
        lambda: [n for n in notes(pagerduty, ids[1]) if FIRST_NOTE in n], 60, "2nd first note"
    )
    assert "Correlation (shadow mode: nothing acted on): would have joined " + ids[0] in said[0]
    assert "rule flow-outage: risk-manager is 1 hop from execution-engine" in said[0]
    assert pagerduty.merges == []
    record = json.loads(redis_client.hget(f"responder:delivery:{delivery}", "correlation"))
    assert (record["action"], record["mode"], record["acts"]) == ("join", "shadow", False)


def test_a_resolved_incident_is_never_joined_the_group_is_answered_on_its_own(
    pagerduty: FakePagerDuty,
    on_world: OnWorld,
    ledger: None,
) -> None:
    world = on_world
    on = world.settings
    first, risk = execution_engine_down("resolved"), risk_manager_down("resolved")
    ids = [pagerduty.add_incident(incident_key(p)) for p in (first, risk)]
    with world.worker():
        post(on, first)
        wait_for(lambda: any(FIRST_NOTE in n for n in notes(pagerduty, ids[0])), 60, "1st note")
        pagerduty.incidents[ids[0]]["status"] = "resolved"  # a person resolved it meanwhile
        post(on, risk)
        said = wait_for(
            lambda: [n for n in notes(pagerduty, ids[1]) if FIRST_NOTE in n], 60, "own first note"
        )
    assert pagerduty.merges == []
    assert "but answered on its own: PagerDuty refused to merge" in said[0]


def test_a_group_that_resolves_and_fires_again_goes_back_to_its_incident_as_flapping(
    pagerduty: FakePagerDuty,
    on_world: OnWorld,
    ledger: None,
) -> None:
    world = on_world
    on = world.settings
    firing = execution_engine_down("flapping")
    resolved = json.loads(json.dumps(firing))
    resolved["status"] = "resolved"
    resolved["alerts"][0].update(status="resolved", endsAt="2026-11-27T14:33:00.000Z")
    again = json.loads(json.dumps(firing))
    again["alerts"][0]["startsAt"] = "2026-11-27T14:36:00.000Z"
    incident = pagerduty.add_incident(incident_key(firing))
    with world.worker():
        post(on, firing)
        wait_for(lambda: any(FIRST_NOTE in n for n in notes(pagerduty, incident)), 60, "1st note")
        post(on, resolved)
        wait_for(
            lambda: any(
                "resolved" in n.splitlines()[0].lower() for n in notes(pagerduty, incident)
            ),
            60,
            "the resolved note",
        )
        post(on, again)
        joined = wait_for(
            lambda: [n for n in notes(pagerduty, incident) if "flapping: " in n], 60, "flapping"
        )
    assert sum(FIRST_NOTE in n for n in notes(pagerduty, incident)) == 1
    assert "TradingServiceDown resolved " in joined[0]
    assert "fired again, once within the 15m flap window" in joined[0]
    assert len(pagerduty.incidents) == 1 and pagerduty.merges == []
