"""The example Alertmanager configuration's inhibit_rules, run by the real Alertmanager binary:
an alert that explains others mutes them, and nothing it does not explain."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml

from demo.world import EXAMPLE_ALERTMANAGER, OWN_RULES, SHARED_RULES, inhibit_rules, rules_path
from tasks.store.deliveries import DeliveryStore
from tests.integration.test_alertmanager_binary import alertmanager_binary, start_alertmanager
from tests.support import TOKEN, wait_for

# One group_wait later every group is flushed; by then the inhibitor has seen the whole batch.
ROUTE = {"receiver": "responder", "group_by": ["alertname"], "group_wait": "1s",
         "group_interval": "1s", "repeat_interval": "1h"}  # fmt: skip


def alert(alertname: str, **labels: str) -> dict[str, str]:
    """Return the labels of one alert as EAFIX's Prometheus rules would label it."""
    return {"alertname": alertname, **labels}


def down(service: str) -> dict[str, str]:
    """Return TradingServiceDown for one service: it carries `job`, never `service`."""
    return alert("TradingServiceDown", job=f"eafix-{service}", severity="critical", scope="partial")


OUTAGE = alert("EAFIXCompleteOutage", severity="critical", category="outage", scope="complete")
RISK_DOWN = alert("RiskManagerDown", job="eafix-risk-manager", service="risk-manager")
GATEWAY_DOWN = alert("ServiceDown", job="eafix-gui-gateway", service="gui-gateway")
LATENCY = alert("SignalLatencyHigh", service="signal-generator", category="latency")
STALE = alert("MarketDataStale", job="eafix-data-ingestor", service="data-ingestor")
RISK_ERRORS = alert("RiskCheckErrors", job="eafix-risk-manager", service="risk-manager")
CHECKSUM = alert("PositionChecksumMismatch", job="eafix-risk-manager", service="risk-manager")
AUTH = alert("AuthFailureSpike", category="security", service="gui-gateway")
ASSETS = alert("GatewayStaticAssetErrors", job="eafix-gui-gateway", service="gui-gateway")


def key(labels: dict[str, str]) -> str:
    """Name an alert in a test's expectations: its alertname and what tells it apart."""
    extra = labels.get("job") or labels.get("service") or ""
    env = labels.get("environment")
    return "/".join(p for p in (labels["alertname"], extra, env) if p)


# (alerts fired in one batch, as Prometheus sends one evaluation's; what mutes what). Each case
# ends with an inhibition it must show (ServiceDown muting the gateway's asset errors), so that
# when that one shows, the inhibitor has taken in every source before it: the cases that expect
# an alert NOT to be muted cannot pass merely by being looked at too early.
CONTROL = [GATEWAY_DOWN, ASSETS]
CASES = {
    "a complete outage mutes each service's down alert and the flow's symptoms, not the rest": (
        [OUTAGE, RISK_DOWN, *map(down, ("data-ingestor", "indicator-engine", "signal-generator",
         "execution-engine")), LATENCY, STALE, RISK_ERRORS, CHECKSUM, AUTH, *CONTROL],
        {
            "RiskManagerDown/eafix-risk-manager": ["EAFIXCompleteOutage"],
            "ServiceDown/eafix-gui-gateway": ["EAFIXCompleteOutage"],
            "TradingServiceDown/eafix-data-ingestor": ["EAFIXCompleteOutage"],
            "TradingServiceDown/eafix-indicator-engine": ["EAFIXCompleteOutage"],
            "TradingServiceDown/eafix-signal-generator": ["EAFIXCompleteOutage"],
            "TradingServiceDown/eafix-execution-engine": ["EAFIXCompleteOutage"],
            # Alertmanager names the first rule that mutes an alert: the outage, listed first.
            "SignalLatencyHigh/signal-generator": ["EAFIXCompleteOutage"],
            "MarketDataStale/eafix-data-ingestor": ["EAFIXCompleteOutage"],
            "RiskCheckErrors/eafix-risk-manager": ["EAFIXCompleteOutage"],
            "GatewayStaticAssetErrors/eafix-gui-gateway": ["EAFIXCompleteOutage"],
        },
    ),
    "a service that is down mutes its own latency and errors, not another service's": (
        [down("signal-generator"), LATENCY, down("execution-engine"), RISK_DOWN, RISK_ERRORS,
         CHECKSUM, STALE, *CONTROL],
        {
            "SignalLatencyHigh/signal-generator": ["TradingServiceDown/eafix-signal-generator"],
            "RiskCheckErrors/eafix-risk-manager": ["RiskManagerDown/eafix-risk-manager"],
            "GatewayStaticAssetErrors/eafix-gui-gateway": ["ServiceDown/eafix-gui-gateway"],
        },
    ),
    "an outage in one environment does not mute another's alerts": (
        [OUTAGE | {"environment": "staging"}, RISK_DOWN | {"environment": "staging"},
         RISK_DOWN | {"environment": "production"}, *CONTROL],
        {
            "RiskManagerDown/eafix-risk-manager/staging": ["EAFIXCompleteOutage/staging"],
            "GatewayStaticAssetErrors/eafix-gui-gateway": ["ServiceDown/eafix-gui-gateway"],
        },
    ),
    "two alerts that both lack the service label are not the same service": (
        [alert("ServiceDown", job="legacy-gateway"), alert("SignalLatencyHigh", job="legacy"),
         *CONTROL],
        {"GatewayStaticAssetErrors/eafix-gui-gateway": ["ServiceDown/eafix-gui-gateway"]},
    ),
}  # fmt: skip


def post(alertmanager: str, alerts: list[dict[str, str]]) -> None:
    """Post the alerts to Alertmanager in one batch, firing now."""
    now = datetime.now(UTC).isoformat()
    body = [{"labels": labels, "startsAt": now} for labels in alerts]
    answer = requests.post(f"{alertmanager}/api/v2/alerts", json=body, timeout=5)
    assert answer.status_code == 200, answer.text


def muted(alertmanager: str) -> dict[str, list[str]]:
    """Return each alert Alertmanager shows as inhibited, with the alerts that inhibit it."""
    shown = requests.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    names = {a["fingerprint"]: key(a["labels"]) for a in shown}
    return {
        key(a["labels"]): sorted(names[f] for f in a["status"]["inhibitedBy"])
        for a in shown
        if a["status"]["inhibitedBy"]
    }


@pytest.fixture
def example_inhibition(tmp_path: Path, receiver: str) -> Iterator[str]:
    """Run Alertmanager with the example configuration's inhibit_rules; yield its API URL."""
    yield from start_alertmanager(
        tmp_path, receiver, TOKEN, {"route": ROUTE, "inhibit_rules": inhibit_rules()}
    )


@pytest.mark.parametrize(("alerts", "expected"), CASES.values(), ids=CASES.keys())
def test_the_example_inhibit_rules_mute_what_an_alert_explains(
    example_inhibition: str, alerts: list[dict[str, str]], expected: dict[str, list[str]]
) -> None:
    post(example_inhibition, alerts)
    control = "GatewayStaticAssetErrors/eafix-gui-gateway"
    wait_for(lambda: control in muted(example_inhibition), what=f"{control} to be inhibited")
    assert muted(example_inhibition) == expected


def test_in_a_complete_outage_the_responder_hears_only_the_outage_and_the_unrelated(
    example_inhibition: str, redis_client
) -> None:
    post(example_inhibition, CASES[next(iter(CASES))][0])
    store = DeliveryStore(redis_client)

    def delivered() -> set[str]:
        keys = (store.get(i)["group_key"] for i in store.list_ids())
        return {k.partition('alertname="')[2].rstrip('"}') for k in keys}

    # Every group is flushed at the same group_wait; the muted ones are dropped at that flush.
    wait_for(lambda: len(delivered()) >= 3, what="the three groups that are not muted")
    assert delivered() == {"EAFIXCompleteOutage", "PositionChecksumMismatch", "AuthFailureSpike"}
    statuses = requests.get(f"{example_inhibition}/api/v2/alerts", timeout=5).json()
    suppressed = {
        a["labels"]["alertname"] for a in statuses if a["status"]["state"] == "suppressed"
    }
    assert "RiskManagerDown" in suppressed and "TradingServiceDown" in suppressed


def test_the_example_configuration_passes_amtool_check_config() -> None:
    amtool = str(Path(alertmanager_binary()).with_name("amtool"))
    result = subprocess.run(
        [amtool, "check-config", str(EXAMPLE_ALERTMANAGER)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 inhibit rules" in result.stdout


def eafix_rules() -> Path:
    """Return EAFIX's own alert rules; fail in CI, or report as not run elsewhere, without them.

    The demo's copy holds one rule per scenario only, so it cannot say which alerts EAFIX
    raises: a user's clone has no ../shared beside it; CI always has.
    """
    path = rules_path()
    if path != OWN_RULES:
        return path
    where = f"EAFIX's alert rules are not in {SHARED_RULES}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{where}; CI requires them")
    pytest.skip(f"{where} (a clone without ../shared); CI runs this")


def test_every_alert_the_inhibit_rules_name_is_one_eafix_raises() -> None:
    # A misspelt name in a matcher mutes nothing, silently: the rules must name real alerts.
    raised = {
        rule["alert"]
        for group in yaml.safe_load(eafix_rules().read_text())["groups"]
        for rule in group["rules"]
    }
    named = {
        name
        for rule in inhibit_rules()
        for matcher in rule["source_matchers"] + rule["target_matchers"]
        if matcher.startswith("alertname")
        for name in matcher.partition('"')[2].rstrip('"').split("|")
    }
    assert named and named <= raised, named - raised


def test_a_compared_service_must_be_on_both_sides_of_every_rule() -> None:
    # A label missing on both sides counts as equal: without the guard, two alerts that both
    # lack `service` would be "the same service" and one would mute the other.
    for rule in inhibit_rules():
        for label in set(rule.get("equal", [])) - {"environment"}:
            for side in ("source_matchers", "target_matchers"):
                assert f'{label}=~".+"' in rule[side], (label, side, rule)
