"""A PagerDuty call that cannot be sent is named by its exception type, never by its payload:
a UnicodeEncodeError's repr holds the whole Events API body, routing key included."""

from __future__ import annotations

import logging
import traceback

import pagerduty
import pytest

from tasks.gateways.pagerduty import PagerDutyUnavailable, RestGateway
from tasks.retries import decide

CANARY = "CANARY-ROUTING-KEY-7e1d0c4b9a2f"


def test_an_events_call_that_cannot_be_encoded_names_the_type_and_hides_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = pagerduty.EventsApiV2Client(CANARY, base_url="https://127.0.0.1:9")
    gateway = RestGateway(pagerduty.RestApiV2Client("token"), lambda text: text, events=events)
    event = {
        "dedup_key": "k",
        "payload": {"summary": "risk\ud800manager down", "source": "s", "severity": "critical"},
    }
    with pytest.raises(PagerDutyUnavailable) as failed, caplog.at_level(logging.DEBUG):
        gateway.trigger(event)
    logging.getLogger("tasks.pipeline").exception("run r-1: trigger failed: %s", failed.value)
    logged = caplog.text + "".join(traceback.format_exception(failed.value))
    assert str(failed.value) == (
        "PagerDuty POST /v2/enqueue failed: UnicodeEncodeError: the request could not be encoded"
    )
    assert CANARY not in logged and CANARY not in repr(failed.value)
    assert "UnicodeEncodeError" in logged
    assert failed.value.status == 400 and not decide(400, {}, 1).retry  # not requeued
