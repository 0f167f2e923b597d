"""`responder status` says which host holds the beat lease, or warns that none does."""

from __future__ import annotations

import pytest

from tasks.backlog import Backlog
from tasks.cli.status import describe
from tasks.lanes import Lane
from tasks.store.beat_lease import LeaseHolder

HOLDER = LeaseHolder("host-a", 4242, "2027-03-02T10:00:00+00:00", 7.5)


def backlog(beat: LeaseHolder | None, sla_requeued: int = 0) -> Backlog:
    return Backlog(
        queued={Lane.URGENT: 0, Lane.ROUTINE: 0},
        oldest_seconds={Lane.URGENT: None, Lane.ROUTINE: None},
        held=0, workers=1, budget_used=0, budget_limit=960, coalesced=0, dead_letters=0,
        joined_notes_due=0, sla_requeued=sla_requeued, beat=beat,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("beat", "sla_requeued", "line"),
    [
        (
            HOLDER,
            0,
            "beat: host-a (pid 4242) holds the beat lease since 2027-03-02T10:00:00+00:00, "
            "7.5 s left unless renewed",
        ),
        (None, 0, "WARNING: no beat holds the beat lease: no SLA clock, no recovery"),
        (HOLDER, 2, "SLA auditor: 2 due deadlines were not acted on and queued again"),
    ],
)
def test_status_names_the_beat_lease_holder_and_the_auditors_requeues(
    beat: LeaseHolder | None, sla_requeued: int, line: str
) -> None:
    assert line in describe(backlog(beat, sla_requeued))


def test_status_says_nothing_of_the_auditor_while_it_found_nothing() -> None:
    assert not any(line.startswith("SLA auditor") for line in describe(backlog(HOLDER)))
