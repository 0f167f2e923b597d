"""Correlation: when a new alert group joins an open incident, and when it starts its own."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from triage.correlation import JOIN, NEW, AlertGroup, Member, OpenIncident, correlate
from triage.policy import CorrelationPolicy, CorrelationRule, Matcher, builtin

NOW = datetime(2027, 3, 3, 14, 0, tzinfo=UTC)
OUTAGE = (("category", Matcher("in", ("outage", "risk-management", "market-data"))),)


def rule(**changes) -> CorrelationRule:
    """Return the flow-outage rule of the built-in policy, with `changes`."""
    base = CorrelationRule(
        "flow-outage", OUTAGE, (), timedelta(minutes=10), timedelta(hours=4), max_distance=1
    )
    return replace(base, **changes)


def policy_with(*rules: CorrelationRule, mode: str = "on"):
    return replace(builtin(), correlation=CorrelationPolicy(mode, rules))


def down(service: str, firing: bool = True, category: str = "outage", **labels: str) -> Member:
    return Member.of({"category": category, "service": service, **labels}, firing)


def incident(
    *members: Member, began: timedelta = timedelta(minutes=5), idle: timedelta = timedelta(0)
) -> OpenIncident:
    return OpenIncident("INC-1", members, NOW - began, NOW - idle)


def group(*alerts: Member) -> AlertGroup:
    return AlertGroup("group-2", alerts)


# Each row: what it encodes, the rule, the open incident, the new group, join or new.
CASES = [
    (
        "a downstream service one hop away joins at max_distance 1",
        rule(),
        incident(down("risk-manager")),
        group(down("execution-engine")),
        JOIN,
    ),
    (
        "two hops away does not join at max_distance 1",
        rule(),
        incident(down("risk-manager")),
        group(down("indicator-engine")),
        NEW,
    ),
    (
        "two hops away joins at max_distance 2",
        rule(max_distance=2),
        incident(down("risk-manager")),
        group(down("indicator-engine")),
        JOIN,
    ),
    (
        "max_distance 0 joins the same service only",
        rule(max_distance=0),
        incident(down("risk-manager")),
        group(down("risk-manager", category="risk-management")),
        JOIN,
    ),
    (
        "max_distance 0 keeps a neighbour apart",
        rule(max_distance=0),
        incident(down("risk-manager")),
        group(down("execution-engine")),
        NEW,
    ),
    (
        "last joined just inside the window joins",
        rule(),
        incident(down("risk-manager"), idle=timedelta(minutes=10)),
        group(down("execution-engine")),
        JOIN,
    ),
    (
        "last joined just outside the window starts a new incident",
        rule(),
        incident(down("risk-manager"), idle=timedelta(minutes=10, seconds=1)),
        group(down("execution-engine")),
        NEW,
    ),
    (
        "an incident just under its max lifetime still takes members",
        rule(),
        incident(down("risk-manager"), began=timedelta(hours=4) - timedelta(seconds=1)),
        group(down("execution-engine")),
        JOIN,
    ),
    (
        "at its max lifetime a new incident starts, however recently it was joined",
        rule(),
        incident(down("risk-manager"), began=timedelta(hours=4)),
        group(down("execution-engine")),
        NEW,
    ),
    (
        "alerts sharing the group key join",
        rule(group_by=("env",)),
        incident(down("risk-manager", env="prod")),
        group(down("execution-engine", env="prod")),
        JOIN,
    ),
    (
        "a different group key value keeps them apart",
        rule(group_by=("env",)),
        incident(down("risk-manager", env="prod")),
        group(down("execution-engine", env="dr")),
        NEW,
    ),
    (
        "a missing group key means the rule does not apply: no catch-all bucket",
        rule(group_by=("env",)),
        incident(Member.of({"category": "outage", "service": "risk-manager"}, True)),
        group(down("execution-engine")),
        NEW,
    ),
    (
        "a resolved member does not tie anything",
        rule(),
        incident(down("risk-manager", firing=False)),
        group(down("execution-engine")),
        NEW,
    ),
    (
        "a resolved alert in the new group does not join",
        rule(),
        incident(down("risk-manager")),
        group(down("execution-engine", firing=False)),
        NEW,
    ),
    (
        "min_firing 2 needs two firing related members",
        rule(min_firing=2),
        incident(down("risk-manager"), down("gui-gateway")),
        group(down("execution-engine")),
        JOIN,
    ),
    (
        "min_firing 2 does not count a resolved member",
        rule(min_firing=2),
        incident(down("risk-manager"), down("gui-gateway", firing=False)),
        group(down("execution-engine")),
        NEW,
    ),
    (
        "an alert the rule does not match does not join",
        rule(),
        incident(down("risk-manager")),
        group(down("execution-engine", category="cosmetic")),
        NEW,
    ),
    (
        "a rule without max_distance ties by the shared key alone",
        rule(max_distance=None, group_by=("host",), match=()),
        incident(Member.of({"alertname": "DiskFilling", "host": "db-7"}, True)),
        group(Member.of({"alertname": "DiskIOHigh", "host": "db-7"}, True)),
        JOIN,
    ),
]


@pytest.mark.parametrize(
    ("rule_", "open_", "new_group", "action"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_correlation_rules(rule_, open_, new_group, action) -> None:
    decision = correlate(new_group, [open_], policy_with(rule_), NOW)
    assert decision.action == action, decision.why
    assert (decision.incident == "INC-1") == (action == JOIN)


def test_two_unrelated_problems_stay_two_incidents_under_the_builtin_policy() -> None:
    # Signal latency on the flow, and a disk filling on a host outside the catalog.
    policy = replace(builtin(), correlation=replace(builtin().correlation, mode="on"))
    latency = Member.of(
        {"alertname": "SignalLatencyHigh", "category": "latency", "service": "signal-generator"},
        True,
    )
    disk = Member.of({"alertname": "NodeDiskFilling", "instance": "db-host-7:9100"}, True)
    first = correlate(AlertGroup("latency", (latency,)), [], policy, NOW)
    open_ = OpenIncident("INC-LAT", (latency,), NOW, NOW)
    second = correlate(AlertGroup("disk", (disk,)), [open_], policy, NOW)
    assert (first.action, second.action) == (NEW, NEW)
    assert "flow-outage: no firing alert of the group matches" in second.why


def test_the_builtin_policy_makes_an_outage_along_the_flow_one_incident() -> None:
    policy = builtin()
    risk = Member.of({"alertname": "RiskManagerDown", "category": "risk-management",
                      "service": "risk-manager"}, True)  # fmt: skip
    open_ = OpenIncident(
        "INC-RISK", (risk,), NOW - timedelta(minutes=2), NOW - timedelta(minutes=2)
    )
    # TradingServiceDown names its services by job, as classification reads them.
    trading = tuple(
        Member.of(
            {
                "alertname": "TradingServiceDown",
                "category": "outage",
                "scope": "partial",
                "job": f"eafix-{name}",
            },
            True,
        )  # fmt: skip
        for name in ("data-ingestor", "execution-engine")
    )
    decision = correlate(AlertGroup("trading", trading), [open_], policy, NOW)
    assert (decision.action, decision.incident, decision.shadow) == (JOIN, "INC-RISK", False)
    assert decision.tie is not None
    assert (decision.tie.group_service, decision.tie.member_service, decision.tie.hops) == (
        "execution-engine", "risk-manager", 1,
    )  # fmt: skip
    assert decision.why == (
        "joins INC-RISK by rule flow-outage; execution-engine is 1 hop from risk-manager, "
        "firing in it; last joined 2m ago, within the 10m window"
    )


def test_an_alert_about_the_whole_flow_is_zero_hops_from_every_service_both_ways() -> None:
    policy = builtin()
    complete = Member.of({"alertname": "EAFIXCompleteOutage", "category": "outage",
                          "scope": "complete"}, True)  # fmt: skip
    risk = Member.of({"alertname": "RiskManagerDown", "category": "risk-management",
                      "service": "risk-manager"}, True)  # fmt: skip
    since = NOW - timedelta(minutes=1)
    joins_service = correlate(
        AlertGroup("complete", (complete,)), [OpenIncident("INC-RISK", (risk,), since, since)],
        policy, NOW,
    )  # fmt: skip
    service_joins = correlate(
        AlertGroup("risk", (risk,)), [OpenIncident("INC-ALL", (complete,), since, since)],
        policy, NOW,
    )  # fmt: skip
    assert (joins_service.action, joins_service.tie and joins_service.tie.hops) == (JOIN, 0)
    assert (service_joins.action, service_joins.tie and service_joins.tie.hops) == (JOIN, 0)


def test_correlation_off_decides_nothing() -> None:
    decision = correlate(
        group(down("execution-engine")), [incident(down("risk-manager"))],
        policy_with(rule(), mode="off"), NOW,
    )  # fmt: skip
    assert (decision.action, decision.why) == (NEW, "correlation is off")


def test_of_two_joinable_incidents_the_closer_on_the_topology_wins() -> None:
    far = OpenIncident("INC-FAR", (down("signal-generator"),), NOW - timedelta(hours=1), NOW)
    near = OpenIncident("INC-NEAR", (down("execution-engine"),), NOW - timedelta(minutes=1), NOW)
    decision = correlate(
        group(down("gui-gateway")), [far, near], policy_with(rule(max_distance=2)), NOW
    )
    assert decision.incident == "INC-NEAR"


def test_a_new_incident_says_why_nothing_matched() -> None:
    decision = correlate(
        group(down("indicator-engine")),
        [incident(down("risk-manager"), idle=timedelta(minutes=11))],
        policy_with(rule()), NOW,
    )  # fmt: skip
    assert decision.why == "flow-outage: INC-1 was last joined 11m ago, outside the 10m window"
