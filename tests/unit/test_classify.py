"""The runbook's Incident Classification, bullet by bullet, inside and outside market hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.classify import classify, most_severe
from triage.models import Alert, Classification, Incident, Priority
from triage.policy import FALLBACK_RULES, builtin, builtin_text, load

POLICY = builtin()
RULES = {rule.name for rule in POLICY.rules} | FALLBACK_RULES
RUNBOOK_TEXT = {rule.name: rule.runbook for rule in POLICY.rules}

# Wednesday 10:00 New York: the market is open. Saturday: closed.
OPEN = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
CLOSED = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def alert(annotations: dict[str, str] | None = None, **labels: str) -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": "Test", **labels},
        annotations=annotations or {},
        starts_at=OPEN,
        starts_at_raw=OPEN.isoformat(),
        ends_at=None,
        generator_url="",
        fingerprint="f",
    )


# bullet, labels, annotations, (priority, rule) in market hours, (priority, rule) outside
RUNBOOK = [
    ("P0 Complete system outage during market hours",
     {"category": "outage", "scope": "complete", "severity": "critical"}, {},
     ("P0", "complete-outage"), ("P1", "complete-outage-outside-market-hours")),
    ("P0 Data corruption affecting positions",
     {"category": "data-corruption", "service": "risk-manager", "severity": "critical"}, {},
     ("P0", "data-corruption"), ("P0", "data-corruption")),
    ("P0 Security breach with active exploitation",
     {"category": "security", "exploitation": "confirmed", "service": "gui-gateway",
      "severity": "critical"}, {},
     ("P0", "security-breach"), ("P0", "security-breach")),
    ("P0 Risk management system failure",
     {"category": "risk-management", "service": "risk-manager", "severity": "critical"}, {},
     ("P0", "risk-management-failure"), ("P0", "risk-management-failure")),
    ("P1 Partial system outage affecting trading",
     {"category": "outage", "scope": "partial", "job": "eafix-execution-engine"}, {},
     ("P1", "partial-outage"), ("P1", "partial-outage")),
    ("P1 Significant latency increase (>5s for signals)",
     {"category": "latency", "service": "signal-generator", "severity": "critical"},
     {"value_seconds": "7.2"},
     ("P1", "signal-latency-over-5s"), ("P1", "signal-latency-over-5s")),
    ("P1 Position reconciliation failure",
     {"category": "reconciliation", "service": "gui-gateway", "severity": "critical"}, {},
     ("P1", "reconciliation-failure"), ("P1", "reconciliation-failure")),
    ("P1 Market data feed interruption",
     {"category": "market-data", "service": "data-ingestor", "severity": "critical"}, {},
     ("P1", "market-data-interruption"), ("P3", "market-data-outside-market-hours")),
    ("P2 Individual service outage (non-critical path)",
     {"category": "outage", "scope": "single", "service": "reporting", "severity": "warning"}, {},
     ("P2", "non-critical-service-outage"), ("P2", "non-critical-service-outage")),
    ("P2 Performance degradation (<5s latency)",
     {"category": "latency", "service": "signal-generator", "severity": "warning"},
     {"value_seconds": "2.5"},
     ("P2", "performance-degradation"), ("P2", "performance-degradation")),
    ("P2 Data quality issues",
     {"category": "data-quality", "service": "indicator-engine", "severity": "warning"}, {},
     ("P2", "data-quality"), ("P2", "data-quality")),
    ("P2 Monitoring system issues", {"category": "monitoring", "severity": "warning"}, {},
     ("P2", "monitoring-issue"), ("P2", "monitoring-issue")),
    ("P3 Minor feature issues", {"category": "minor", "severity": "info"}, {},
     ("P3", "minor-feature-issue"), ("P3", "minor-feature-issue")),
    ("P3 Cosmetic problems", {"category": "cosmetic", "service": "gui-gateway", "severity": "info"},
     {}, ("P3", "cosmetic-problem"), ("P3", "cosmetic-problem")),
    ("P3 Documentation issues", {"category": "documentation"}, {},
     ("P3", "documentation-issue"), ("P3", "documentation-issue")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("bullet", "labels", "annotations", "in_hours", "out_of_hours"),
    RUNBOOK,
    ids=[row[0] for row in RUNBOOK],
)
def test_each_runbook_bullet(bullet, labels, annotations, in_hours, out_of_hours) -> None:
    for now, (priority, rule) in ((OPEN, in_hours), (CLOSED, out_of_hours)):
        result = classify(alert(annotations, **labels), POLICY, now)
        assert (result.priority.value, result.rule) == (priority, rule), now
        assert result.reason.startswith(RUNBOOK_TEXT[rule] + ": ")
    # In market hours the rule's own words are the runbook's bullet.
    assert RUNBOOK_TEXT[in_hours[1]] == bullet[3:]


@pytest.mark.parametrize(
    ("moment", "priority"),
    [
        (datetime(2026, 11, 27, 21, 59, tzinfo=UTC), "P0"),  # Friday 16:59 New York
        (datetime(2026, 11, 27, 22, 0, tzinfo=UTC), "P1"),  # Friday 17:00: closed
        (datetime(2026, 11, 29, 21, 59, tzinfo=UTC), "P1"),  # Sunday 16:59: still closed
        (datetime(2026, 11, 29, 22, 0, tzinfo=UTC), "P0"),  # Sunday 17:00: open
        # Daylight saving ends on Sunday 2026-11-01: 17:00 is 22:00 UTC that day (EST),
        # 21:00 UTC the Sunday before (EDT).
        (datetime(2026, 10, 25, 21, 30, tzinfo=UTC), "P0"),  # 17:30 EDT: open
        (datetime(2026, 11, 1, 21, 30, tzinfo=UTC), "P1"),  # 16:30 EST: not yet
        (datetime(2026, 11, 1, 22, 0, tzinfo=UTC), "P0"),  # 17:00 EST: open
        (datetime(2026, 12, 24, 15, 0, tzinfo=UTC), "P0"),  # Thursday before Christmas
        (datetime(2026, 12, 25, 15, 0, tzinfo=UTC), "P1"),  # Christmas: a holiday
    ],
)
def test_complete_outage_follows_market_hours(moment: datetime, priority: str) -> None:
    outage = alert(category="outage", scope="complete", severity="critical")
    assert classify(outage, POLICY, moment).priority.value == priority


def test_reason_says_what_matched() -> None:
    latency = alert({"value_seconds": "7.2"}, category="latency", severity="critical")
    reason = classify(latency, POLICY, OPEN).reason
    assert (
        reason
        == "Significant latency increase (>5s for signals): category=latency; value_seconds=7.2 > 5"
    )
    outage = alert(category="outage", scope="complete")
    assert classify(outage, POLICY, OPEN).reason.endswith("scope=complete; during market hours")


def test_severity_is_an_input_not_the_answer() -> None:
    # A bullet names it: the bullet decides, whatever the severity says.
    cosmetic = classify(alert(severity="critical", category="cosmetic"), POLICY, OPEN)
    assert (cosmetic.priority, cosmetic.rule) == (Priority.P3, "cosmetic-problem")
    # critical on the trading path with no bullet: treated as partial outage affecting trading.
    on_path = classify(alert(severity="critical", service="execution-engine"), POLICY, OPEN)
    assert (on_path.priority, on_path.rule) == (Priority.P1, "critical-on-trading-path")


# No runbook bullet names the alert: its severity label picks the priority (the policy's
# severity_fallback), anything else gets default_priority, and the reason says which.
# label set, priority, rule, reason
NO_RULE_MATCHED = [
    ("a critical DiskFull with no category pages as P1",
     {"alertname": "DiskFull", "severity": "critical"},
     "P1", "severity-fallback",
     "no runbook rule matched; the fallback for severity=critical is P1"),
    ("a severity written in capitals counts",
     {"alertname": "DiskFull", "severity": "Critical"},
     "P1", "severity-fallback",
     "no runbook rule matched; the fallback for severity=Critical is P1"),
    ("a warning with no bullet is P2",
     {"alertname": "DiskFilling", "severity": "warning", "category": "capacity"},
     "P2", "severity-fallback", "no runbook rule matched; the fallback for severity=warning is P2"),
    ("an info alert with no bullet is P3",
     {"alertname": "BackupSlow", "severity": "info"},
     "P3", "default", "no runbook rule matched; the default priority is P3 (no fallback for "
     "severity=info)"),
    ("an alert without a severity is P3",
     {"alertname": "Unlabelled"},
     "P3", "default", "no runbook rule matched; the default priority is P3 (no severity label)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "labels", "priority", "rule", "reason"),
    NO_RULE_MATCHED,
    ids=[row[0] for row in NO_RULE_MATCHED],
)
def test_never_a_silent_p3_for_a_critical_alert_no_bullet_names(
    case: str, labels: dict[str, str], priority: str, rule: str, reason: str
) -> None:
    for now in (OPEN, CLOSED):
        result = classify(alert(**labels), POLICY, now)
        assert (result.priority.value, result.rule, result.reason) == (priority, rule, reason)


@pytest.mark.parametrize(
    ("setting", "critical", "info"),
    [
        ("severity_fallback: {critical: P0, info: P2}", "P0", "P2"),
        ("severity_fallback: {}", "P3", "P3"),  # everything unmatched to the default
    ],
)
def test_an_operator_sets_the_fallbacks(setting: str, critical: str, info: str) -> None:
    text = builtin_text().replace("severity_fallback: {critical: P1, warning: P2}", setting)
    policy = load(text)
    assert classify(alert(severity="critical"), policy, OPEN).priority.value == critical
    assert classify(alert(severity="info"), policy, OPEN).priority.value == info


# The catalog says which services are on the trading path, and why; one of them down is a
# partial outage affecting trading. An Alertmanager alert names its service in its labels, the
# incident Alertmanager's PagerDuty receiver opens names it in its title.
# subject, (priority, rule), what the reason ends with
GATEWAY = "gui-gateway is on the trading path (it serves /emergency/stop-trading and the "
GATEWAY += "positions and reconciliation endpoints the runbook uses)"
ONE_SERVICE_DOWN = [
    ("gui-gateway down (ServiceDown) is a partial outage affecting trading",
     alert(alertname="ServiceDown", category="outage", scope="single", service="gui-gateway",
           severity="warning"),
     ("P1", "partial-outage"), f"category=outage; scope=single; {GATEWAY}"),
    ("the incident PagerDuty opened for it too",
     Incident("PX", "[FIRING:1] ServiceDown (warning outage single gui-gateway)", "triggered",
              "low", "", "EAFIX"),
     ("P1", "partial-outage"), f"title=[FIRING:1] ServiceDown (warning outage single gui-gateway); "
     f"{GATEWAY}"),
    ("a service the catalog does not list is off the trading path",
     alert(alertname="ServiceDown", category="outage", scope="single", service="reporting"),
     ("P2", "non-critical-service-outage"), "reporting is off the trading path"),
    ("an incident whose title names no catalog service is off the trading path",
     Incident("PX", "[FIRING:1] ServiceDown", "triggered", "low", "", "EAFIX"),
     ("P2", "non-critical-service-outage"), "EAFIX is off the trading path"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "subject", "expected", "why"),
    ONE_SERVICE_DOWN,
    ids=[row[0] for row in ONE_SERVICE_DOWN],
)
def test_p1_partial_system_outage_affecting_trading_includes_the_gateway(
    case: str, subject: Alert | Incident, expected: tuple[str, str], why: str
) -> None:
    for now in (OPEN, CLOSED):
        result = classify(subject, POLICY, now)
        assert (result.priority.value, result.rule) == expected
        assert result.reason.endswith(why), result.reason


def test_every_catalog_service_says_why_it_is_on_the_trading_path_or_not() -> None:
    assert all(service.why for service in POLICY.catalog.values())
    assert POLICY.catalog["gui-gateway"].trading_path


# "Is trading currently active? (Check market hours)": no ticks arrive while the market is
# closed, so a stale feed pages as P1 only while it is open.
STALE = alert(alertname="MarketDataStale", category="market-data", service="data-ingestor",
              severity="critical")  # fmt: skip
STALE_INCIDENT = Incident("PX", "[FIRING:1] MarketDataStale (critical market-data data-ingestor)",
                          "triggered", "high", "", "EAFIX")  # fmt: skip
INTERRUPTED = "Market data feed interruption: category=market-data; during market hours"
QUIET = (
    "Market data feed interruption outside market hours (no ticks arrive while the market "
    "is closed; P1 while it is open): category=market-data; outside market hours"
)
# when (UTC), subject, priority, rule, reason
MARKET_DATA = [
    ("Tuesday 10:00 New York", datetime(2026, 11, 24, 15, 0, tzinfo=UTC), STALE,
     "P1", "market-data-interruption", INTERRUPTED),
    ("Saturday", datetime(2026, 11, 28, 15, 0, tzinfo=UTC), STALE,
     "P3", "market-data-outside-market-hours", QUIET),
    ("Friday 16:59 New York", datetime(2026, 11, 27, 21, 59, tzinfo=UTC), STALE,
     "P1", "market-data-interruption", INTERRUPTED),
    ("Friday 17:00 New York: closed", datetime(2026, 11, 27, 22, 0, tzinfo=UTC), STALE,
     "P3", "market-data-outside-market-hours", QUIET),
    ("Sunday 17:00 New York: open", datetime(2026, 11, 29, 22, 0, tzinfo=UTC), STALE,
     "P1", "market-data-interruption", INTERRUPTED),
    ("Christmas, a holiday", datetime(2026, 12, 25, 15, 0, tzinfo=UTC), STALE,
     "P3", "market-data-outside-market-hours", QUIET),
    ("the PagerDuty incident on Saturday", datetime(2026, 11, 28, 15, 0, tzinfo=UTC),
     STALE_INCIDENT, "P3", "market-data-outside-market-hours", QUIET.replace(
         "category=market-data", f"title={STALE_INCIDENT.title}")),
    ("the PagerDuty incident on Tuesday", datetime(2026, 11, 24, 15, 0, tzinfo=UTC),
     STALE_INCIDENT, "P1", "market-data-interruption", INTERRUPTED.replace(
         "category=market-data", f"title={STALE_INCIDENT.title}")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "now", "subject", "priority", "rule", "reason"),
    MARKET_DATA,
    ids=[row[0] for row in MARKET_DATA],
)
def test_p1_market_data_feed_interruption_only_while_the_market_trades(
    case: str, now: datetime, subject: Alert | Incident, priority: str, rule: str, reason: str
) -> None:
    result = classify(subject, POLICY, now)
    assert (result.priority.value, result.rule, result.reason) == (priority, rule, reason)


def test_a_bullet_decides_over_critical_on_the_trading_path() -> None:
    # critical, on the trading path, but a latency under 5 s: the runbook says P2.
    degraded = alert({"value_seconds": "2.5"}, category="latency", severity="critical",
                     service="signal-generator")  # fmt: skip
    result = classify(degraded, POLICY, OPEN)
    assert (result.priority, result.rule) == (Priority.P2, "performance-degradation")


# "Security breach with active exploitation" is P0 on evidence of exploitation (an alert that
# says so, or one of the alerts that fire only on it); suspicious activity such as a spike of
# failed logins is P1. Both page the security team.
BREACH = "Security breach with active exploitation"
SUSPICIOUS = (
    "Suspicious security activity without evidence of exploitation (e.g. a spike of failed logins)"
)
# subject, priority, rule, reason
SECURITY = [
    ("a spike of failed logins is suspicious activity",
     alert(alertname="AuthFailureSpike", category="security", service="gui-gateway",
           severity="critical"),
     "P1", "suspicious-security-activity", f"{SUSPICIOUS}: category=security"),
    ("exploitation confirmed by the alert",
     alert(alertname="AuthFailureSpike", category="security", exploitation="confirmed",
           service="gui-gateway", severity="critical"),
     "P0", "security-breach", f"{BREACH}: exploitation=confirmed"),
    ("a trade nobody placed",
     alert(alertname="UnauthorizedTrade", category="security", service="execution-engine"),
     "P0", "security-breach", f"{BREACH}: alertname=UnauthorizedTrade"),
    ("a privilege nobody granted",
     alert(alertname="PrivilegeChange", category="security", service="gui-gateway"),
     "P0", "security-breach", f"{BREACH}: alertname=PrivilegeChange"),
    ("exploitation not confirmed is not evidence",
     alert(alertname="AuthFailureSpike", category="security", exploitation="suspected"),
     "P1", "suspicious-security-activity", f"{SUSPICIOUS}: category=security"),
    ("the incident PagerDuty opened for a spike",
     Incident("PX", "[FIRING:1] AuthFailureSpike (critical security gui-gateway)", "triggered",
              "high", "", "EAFIX"),
     "P1", "suspicious-security-activity",
     f"{SUSPICIOUS}: title=[FIRING:1] AuthFailureSpike (critical security gui-gateway)"),
    ("the incident PagerDuty opened for an unauthorized trade",
     Incident("PX", "[FIRING:1] UnauthorizedTrade (critical security)", "triggered", "high", "",
              "EAFIX"),
     "P0", "security-breach", f"{BREACH}: title=[FIRING:1] UnauthorizedTrade (critical security)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "subject", "priority", "rule", "reason"), SECURITY, ids=[row[0] for row in SECURITY]
)
def test_p0_security_breach_with_active_exploitation_and_not_a_login_spike_by_itself(
    case: str, subject: Alert | Incident, priority: str, rule: str, reason: str
) -> None:
    for now in (OPEN, CLOSED):
        result = classify(subject, POLICY, now)
        assert (result.priority.value, result.rule, result.reason) == (priority, rule, reason)
    assert POLICY.security_rule([rule]) is not None  # both page the security team


def test_the_most_severe_rule_wins_over_file_order() -> None:
    both = alert(severity="critical", service="risk-manager", category="risk-management")
    assert classify(both, POLICY, OPEN).priority is Priority.P0


@pytest.mark.parametrize(
    ("title", "urgency", "now", "priority", "rule"),
    [
        ("[FIRING:1] RiskManagerDown (risk-manager critical)", "high", OPEN, "P0",
         "risk-management-failure"),
        ("[FIRING:1] EAFIXCompleteOutage", "high", OPEN, "P0", "complete-outage"),
        ("[FIRING:1] EAFIXCompleteOutage", "high", CLOSED, "P1",
         "complete-outage-outside-market-hours"),
        ("[FIRING:1] SignalLatencyDegraded", "low", OPEN, "P2", "performance-degradation"),
        ("Disk almost full on backup host", "high", OPEN, "P1", "high-urgency-page"),
        ("Disk almost full on backup host", "low", OPEN, "P3", "low-urgency-page"),
    ],
)  # fmt: skip
def test_pagerduty_incidents_classify_by_title_and_urgency(title, urgency, now, priority, rule):
    incident = Incident(id="PX", title=title, status="triggered", urgency=urgency)
    result = classify(incident, POLICY, now)
    assert (result.priority.value, result.rule) == (priority, rule)


def test_most_severe_of_a_group() -> None:
    p2 = Classification(Priority.P2, "a", "")
    p0 = Classification(Priority.P0, "b", "")
    assert most_severe([p2, p0, p2]) is p0
    assert most_severe([]) is None


_words = st.sampled_from(
    ["outage", "latency", "security", "complete", "partial", "single", "critical", "warning",
     "risk-manager", "gui-gateway", "market-data", "data-quality", "", "7.2", "NaN", "-1", "1e9"]
)  # fmt: skip
_text = st.one_of(_words, st.text(max_size=20))
_keys = st.one_of(
    st.sampled_from(["category", "scope", "severity", "service", "job", "value_seconds"]),
    st.text(max_size=10),
)
_moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(deadline=None)
@given(
    labels=st.dictionaries(_keys, _text, max_size=6),
    annotations=st.dictionaries(_keys, _text, max_size=3),
    now=_moments,
)
def test_classification_is_total_and_deterministic(labels, annotations, now) -> None:
    subject = alert(annotations, **{k: v for k, v in labels.items() if k != "annotations"})
    first = classify(subject, POLICY, now)
    assert first.priority in Priority
    assert first.rule in RULES
    assert first.reason
    assert classify(subject, POLICY, now) == first


@settings(deadline=None)
@given(title=_text, urgency=_text, priority=_text, service=_text, now=_moments)
def test_incident_classification_is_total_and_deterministic(title, urgency, priority, service, now):
    incident = Incident("P1", title, "triggered", urgency, priority, service)
    first = classify(incident, POLICY, now)
    assert first.rule in RULES
    assert classify(incident, POLICY, now) == first


# "Never lower a page PagerDuty sent high": what no bullet names keeps the urgency PagerDuty's
# service gave it, as a priority: high pages now, low waits for business hours.
@pytest.mark.parametrize(
    ("case", "urgency", "high_is", "priority", "rule"),
    [
        ("a high-urgency page no bullet names is P1, day or night", "high", "P1", "P1",
         "high-urgency-page"),
        ("a low-urgency page no bullet names is P3", "low", "P1", "P3", "low-urgency-page"),
        ("the policy may set what high means", "high", "P2", "P2", "high-urgency-page"),
        ("a bullet that matches decides over the urgency", "low", "P1", "P1",
         "reconciliation-failure"),
    ],
)  # fmt: skip
def test_an_unmatched_pagerduty_incident_takes_its_priority_from_its_urgency(
    case: str, urgency: str, high_is: str, priority: str, rule: str
) -> None:
    text = builtin_text().replace(
        "  - name: high-urgency-page\n    priority: P1",
        f"  - name: high-urgency-page\n    priority: {high_is}",
    )
    policy = load(text)
    title = "PositionReconciliationFailed" if case.startswith("a bullet") else "Disk almost full"
    incident = Incident(id="PX", title=title, status="triggered", urgency=urgency)
    for now in (OPEN, CLOSED):
        result = classify(incident, policy, now)
        assert (result.priority.value, result.rule) == (priority, rule), case
