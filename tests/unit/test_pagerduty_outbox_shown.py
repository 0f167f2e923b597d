"""`make run` without a PagerDuty token shows each note as the on-call engineer would read it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tasks.gateways.pagerduty import IncidentRef, OutboxGateway


def test_each_note_written_to_the_outbox_is_logged_whole_and_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, `make run` printed Slack messages and e-mails but left the notes escaped in JSON.
    gateway = OutboxGateway(tmp_path, "responder@eafix.example")
    content = 'P0 TradingServiceDown: "gateway" down\nEvidence: 2 of 8 checks found problems'
    with caplog.at_level(logging.INFO, logger="tasks.gateways.pagerduty"):
        written = gateway.create_note(IncidentRef("outbox-abc", "k"), content)
    [record] = caplog.records
    assert record.getMessage() == (
        f"PagerDuty outbox: note on outbox-abc ({written['outbox_file']}):\n"
        '    P0 TradingServiceDown: "gateway" down\n'
        "    Evidence: 2 of 8 checks found problems"
    )
