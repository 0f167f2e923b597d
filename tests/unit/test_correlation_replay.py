"""The replay fold: a history of alert groups becomes the incidents the rules would make."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from triage.correlation import FLAP, JOIN, NEW, AlertGroup, Member
from triage.correlation_replay import Ledger, group_of, replay
from triage.models import parse_alertmanager
from triage.policy import CorrelationPolicy, builtin

T0 = datetime(2027, 3, 3, 14, 0, tzinfo=UTC)
BUILTIN = builtin()  # correlation mode: shadow, the flow-outage rule (10m window, 4h lifetime)


def alert(name: str, service: str = "", firing: bool = True, **labels: str) -> Member:
    """Return one alert; `category` defaults to outage, which the flow-outage rule matches."""
    found = {"alertname": name, "category": "outage", **labels}
    if service:
        found["service"] = service
    return Member.of(found, firing)


def at(minutes: float, key: str, *alerts: Member) -> tuple[datetime, AlertGroup]:
    return T0 + timedelta(minutes=minutes), AlertGroup(key, alerts)


def short_lived(policy=BUILTIN):
    """Return the policy with the flow-outage rule's lifetime cut to 30 minutes."""
    (rule,) = policy.correlation.rules
    short = replace(rule, max_lifetime=timedelta(minutes=30))
    return replace(policy, correlation=replace(policy.correlation, rules=(short,)))


RM = alert("RiskManagerDown", "risk-manager")
EE = alert("ExecutionEngineDown", "execution-engine")
GUI = alert("GuiGatewayDown", "gui-gateway")
SIG = alert("SignalGeneratorDown", "signal-generator")
DISK = alert("DiskFilling", instance="batch-host-7")  # a host outside the catalog
LATENCY = alert("SignalLatencyHigh", "signal-generator", category="latency")

# Each row: what it encodes, the policy, the history, the incidents (their alert names), origins.
CASES = [
    (
        "an outage along the flow is one incident, risk-manager its origin, symptoms first",
        BUILTIN,
        [at(0, "g-ee", EE), at(1, "g-gui", GUI), at(2, "g-rm", RM)],
        [["ExecutionEngineDown", "GuiGatewayDown", "RiskManagerDown"]],
        ["risk-manager"],
    ),
    (
        "two unrelated problems at once stay two incidents",
        BUILTIN,
        [at(0, "g-lat", LATENCY), at(1, "g-disk", DISK), at(2, "g-sig", SIG)],
        [["SignalLatencyHigh"], ["DiskFilling"], ["SignalGeneratorDown"]],
        ["signal-generator", None, "signal-generator"],
    ),
    (
        "a member arriving after the window starts a new incident",
        BUILTIN,
        [at(0, "g-rm", RM), at(10.5, "g-ee", EE)],
        [["RiskManagerDown"], ["ExecutionEngineDown"]],
        ["risk-manager", "execution-engine"],
    ),
    (
        "a member arriving at the window's end still joins",
        BUILTIN,
        [at(0, "g-rm", RM), at(10, "g-ee", EE)],
        [["RiskManagerDown", "ExecutionEngineDown"]],
        ["risk-manager"],
    ),
    (
        "each join slides the window on",
        BUILTIN,
        [at(0, "g-sig", SIG), at(9, "g-rm", RM), at(18, "g-ee", EE)],
        [["SignalGeneratorDown", "RiskManagerDown", "ExecutionEngineDown"]],
        ["signal-generator"],
    ),
    (
        "past max_lifetime a new incident starts, however recent the last join",
        short_lived(),
        [
            at(0, "g-sig", SIG),
            at(9, "g-rm", RM),
            at(18, "g-ee", EE),
            at(27, "g-gui", GUI),
            at(31, "g-ing", alert("IngestorDown", "data-ingestor")),
        ],
        [
            ["SignalGeneratorDown", "RiskManagerDown", "ExecutionEngineDown", "GuiGatewayDown"],
            ["IngestorDown"],
        ],
        ["signal-generator", "data-ingestor"],
    ),
    (
        "a resolved member never counts: the next group starts its own incident",
        BUILTIN,
        [at(0, "g-rm", RM), at(1, "g-rm", replace(RM, firing=False)), at(2, "g-ee", EE)],
        [["RiskManagerDown"], ["ExecutionEngineDown"]],
        ["risk-manager", "execution-engine"],
    ),
    (
        "a later delivery of a group adds its new alert to the group's incident",
        BUILTIN,
        [at(0, "g-flow", RM), at(30, "g-flow", RM, EE)],
        [["RiskManagerDown", "ExecutionEngineDown"]],
        ["risk-manager"],
    ),
    (
        "a group that resolved and fires again is placed afresh",
        BUILTIN,
        [at(0, "g-rm", RM), at(5, "g-rm", replace(RM, firing=False)), at(40, "g-rm", RM)],
        [["RiskManagerDown"], ["RiskManagerDown"]],
        ["risk-manager", "risk-manager"],
    ),
    (
        "a group that resolves and fires again within the flap window goes back to its incident",
        BUILTIN,
        [at(0, "g-rm", RM), at(5, "g-rm", replace(RM, firing=False)), at(8, "g-rm", RM)],
        [["RiskManagerDown"]],
        ["risk-manager"],
    ),
    (
        "a flap window of zero never counts a group as flapping",
        replace(BUILTIN, correlation=replace(BUILTIN.correlation, flap_window=timedelta(0))),
        [at(0, "g-rm", RM), at(5, "g-rm", replace(RM, firing=False)), at(8, "g-rm", RM)],
        [["RiskManagerDown"], ["RiskManagerDown"]],
        ["risk-manager", "risk-manager"],
    ),
    (
        "a delivery with nothing firing starts nothing",
        BUILTIN,
        [at(0, "g-rm", replace(RM, firing=False))],
        [],
        [],
    ),
    (
        "a policy with correlation off is replayed by its rules all the same",
        replace(BUILTIN, correlation=replace(BUILTIN.correlation, mode="off")),
        [at(0, "g-rm", RM), at(1, "g-ee", EE)],
        [["RiskManagerDown", "ExecutionEngineDown"]],
        ["risk-manager"],
    ),
    (
        "a policy without rules keeps every group apart",
        replace(BUILTIN, correlation=CorrelationPolicy("on", ())),
        [at(0, "g-rm", RM), at(1, "g-ee", EE)],
        [["RiskManagerDown"], ["ExecutionEngineDown"]],
        ["risk-manager", "execution-engine"],
    ),
]


@pytest.mark.parametrize(
    ("policy", "history", "names", "origins"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_replay_makes_the_incidents_the_rules_would(policy, history, names, origins) -> None:
    incidents = replay(history, policy)
    assert [[m.name for m in i.members] for i in incidents] == names
    assert [i.origin for i in incidents] == origins


def test_each_joined_member_carries_the_rule_edge_and_window_that_tied_it_in() -> None:
    (incident,) = replay([at(0, "g-rm", RM), at(3, "g-ee", EE)], BUILTIN)
    first, joined = incident.members
    assert first.tie is None and first.how == "started the incident"
    assert joined.tie is not None
    assert (joined.tie.rule, joined.tie.group_service, joined.tie.member_service) == (
        "flow-outage",
        "execution-engine",
        "risk-manager",
    )
    assert joined.tie.hops == 1 and joined.tie.window == timedelta(minutes=10)
    assert joined.how.startswith("joins #1 by rule flow-outage; execution-engine is 1 hop")
    assert joined.at == T0 + timedelta(minutes=3)
    assert incident.first_seen == T0 and incident.last_joined == T0 + timedelta(minutes=3)


def test_resolved_deliveries_leave_members_resolved_in_the_result() -> None:
    (incident,) = replay(
        [at(0, "g-rm", RM), at(1, "g-ee", EE), at(9, "g-ee", replace(EE, firing=False))], BUILTIN
    )
    assert [(m.name, m.firing) for m in incident.members] == [
        ("RiskManagerDown", True),
        ("ExecutionEngineDown", False),
    ]


def test_an_alertmanager_notification_becomes_a_group_of_its_alerts() -> None:
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "responder",
        "groupKey": '{}:{alertname="RiskManagerDown"}',
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "RiskManagerDown", "service": "risk-manager", "pod": pod},
                "annotations": {},
                "startsAt": "2027-03-03T14:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"f{pod}",
            }
            for pod, status in (("1", "firing"), ("2", "resolved"))
        ],
    }
    group = group_of(parse_alertmanager(payload))
    assert group.key == '{}:{alertname="RiskManagerDown"}'
    assert [(a.service, a.labels["pod"], a.firing) for a in group.alerts] == [
        ("risk-manager", "1", True),
        ("risk-manager", "2", False),
    ]
    assert group.alerts[0].first_seen == T0


def test_a_flapping_group_is_told_how_long_it_was_gone_and_how_often_it_came_back() -> None:
    ledger, policy = Ledger(), replace(BUILTIN, correlation=replace(BUILTIN.correlation, mode="on"))
    resolved = replace(RM, firing=False)
    seen = []
    for minutes, member in ((0, RM), (2, resolved), (5, RM), (6, resolved), (9, RM)):
        moment, group = at(minutes, "g-rm", member)
        seen.append(ledger.observe(group, moment, policy, lambda: "inc-1").decision)
    decisions = [d for d in seen if d is not None]
    assert [d.action for d in decisions] == [NEW, FLAP, FLAP]
    assert decisions[1].why == (
        "flapping: RiskManagerDown resolved 3m before and fired again, once within the 15m "
        "flap window"
    )
    assert decisions[2].why.endswith(
        "3m before and fired again, 2 times within the 15m flap window"
    )
    assert [i.id for i in ledger.incidents] == ["inc-1"]


def test_in_shadow_mode_the_ledger_builds_the_same_incidents_and_says_shadow() -> None:
    shadow = replace(BUILTIN, correlation=replace(BUILTIN.correlation, mode="shadow"))
    ledger, names = Ledger(), iter(["inc-1", "inc-2"])
    first = ledger.observe(AlertGroup("g-rm", (RM,)), T0, shadow, lambda: next(names))
    joined = ledger.observe(AlertGroup("g-ee", (EE,)), T0, shadow, lambda: next(names))
    assert first.decision is not None and joined.decision is not None
    assert (joined.decision.action, joined.decision.shadow, joined.decision.incident) == (
        JOIN,
        True,
        "inc-1",
    )
    assert [i.id for i in ledger.incidents] == ["inc-1"]


def test_the_ledger_survives_a_round_trip_through_json_unchanged() -> None:
    ledger = Ledger()
    policy = replace(BUILTIN, correlation=replace(BUILTIN.correlation, mode="on"))
    for moment, group in [
        at(0, "g-rm", RM),
        at(1, "g-ee", EE),
        at(2, "g-ee", replace(EE, firing=False)),
    ]:
        ledger.observe(group, moment, policy, lambda: f"inc-{len(ledger.incidents) + 1}")
    ledger.incidents[0].facts["run_id"] = "run-1"
    again = Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert again == ledger
