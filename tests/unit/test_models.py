"""Parsing Alertmanager's version-4 payload into triage models."""

import copy
import json

import pytest

from tests.support import SAMPLE
from triage.models import PayloadError, parse_alertmanager

SAMPLE_PAYLOAD = json.loads(SAMPLE.read_text())


def test_sample_parses_into_one_firing_alert() -> None:
    group = parse_alertmanager(SAMPLE_PAYLOAD)
    assert group.status == "firing"
    [alert] = group.alerts
    assert alert.name == "SignalLatencyHigh"
    assert alert.labels["service"] == "signal-generator"
    assert alert.summary == "p99 signal latency is 7.2s (over 5s)"
    assert alert.ends_at is None  # Go's zero time means "still firing"
    assert alert.dedup_key == "5f1c6a2b9d3e4f70:firing:2026-11-27T14:30:00.000Z"
    assert group.firing == (alert,)


def test_incident_key_is_sha256_of_group_key_as_alertmanager_computes_it() -> None:
    # The vector from external-apis.md E.4 (Alertmanager's notify.Key.Hash()).
    payload = copy.deepcopy(SAMPLE_PAYLOAD)
    payload["groupKey"] = '{}/{env="prod"}:{alertname="HighErrorRate", cluster="aa", service="api"}'
    assert (
        parse_alertmanager(payload).incident_key
        == "7d0a30fb280de54eb03a3f9881b0e2247250f20601b3be73c4a4e7de43be1504"
    )


def test_nanosecond_timestamps_and_newer_optional_fields_are_accepted() -> None:
    payload = copy.deepcopy(SAMPLE_PAYLOAD)
    payload["alerts"][0]["startsAt"] = "2026-11-27T14:30:00.123456789Z"
    payload["notification_reason"] = "first notification"
    payload["routeLabels"] = {}
    group = parse_alertmanager(payload)
    assert group.alerts[0].starts_at.microsecond == 123456
    assert group.notification_reason == "first notification"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.update(alerts=[]), "alerts"),
        (lambda p: p.pop("groupKey"), "groupKey"),
        (lambda p: p.update(status="burning"), "status"),
        (lambda p: p.update(truncatedAlerts=-1), "truncatedAlerts"),
        (lambda p: p["alerts"][0].update(labels={"a": 1}), "alerts[0].labels.a"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda p: p["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint"),
        (lambda p: p["alerts"].append("not an object"), "alerts[1]"),
    ],
)
def test_bad_payloads_name_the_field(change, field: str) -> None:
    payload = copy.deepcopy(SAMPLE_PAYLOAD)
    change(payload)
    with pytest.raises(PayloadError) as caught:
        parse_alertmanager(payload)
    assert caught.value.field == field


def test_a_body_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(PayloadError, match=r"\(body\)"):
        parse_alertmanager([1, 2])
