"""A beat that takes the lease over sends at once what the dead holder may have left unsent."""

from __future__ import annotations

import pytest

from tasks.beat import missed_on_takeover

# A 10 s lease looked at every 3.3 s: the dead holder renewed at most 13.3 s before the takeover.
WINDOW = 13.3
NOW = 1000.0


@pytest.mark.parametrize(
    ("passed", "sent"),
    [
        # The SLA tick and the heartbeat came due while the holder was dying: sent now.
        ({"sla-tick": NOW - 1.0, "heartbeat": NOW - 9.0}, ["heartbeat", "sla-tick"]),
        # An hourly job that came due in the gap would otherwise wait an hour.
        ({"prune-bundles": NOW - 5.0}, ["prune-bundles"]),
        # Due before the holder's last renewal: the holder was alive and sent it.
        ({"sla-audit": NOW - 40.0, "recover": NOW - 2.0}, ["recover"]),
        ({"sla-tick": NOW - WINDOW}, ["sla-tick"]),
        # Nothing came due while standing by (a beat that just started, say).
        ({}, []),
    ],
)
def test_a_beat_taking_the_lease_over_sends_each_job_that_came_due_since_the_last_renewal(
    passed: dict[str, float], sent: list[str]
) -> None:
    assert missed_on_takeover(passed, NOW, WINDOW) == sent
