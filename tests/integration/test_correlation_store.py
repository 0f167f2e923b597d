"""The live correlation ledger in Redis: changes under one lock, kept whole, never half-saved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from tasks.store.correlation import LEDGER_KEY, LOCK_KEY, CorrelationLedger, LedgerBusy
from triage.correlation import AlertGroup, Member
from triage.policy import builtin

NOW = datetime(2027, 3, 3, 14, 0, tzinfo=UTC)
RISK = Member.of({"alertname": "RiskManagerDown", "category": "outage",
                  "service": "risk-manager"}, True)  # fmt: skip


@pytest.fixture
def ledger(redis_client: redis.Redis):
    redis_client.delete(LEDGER_KEY, LOCK_KEY)
    yield CorrelationLedger(redis_client, wait_seconds=0.2)
    redis_client.delete(LEDGER_KEY, LOCK_KEY)


def test_a_change_is_saved_and_read_back_whole(ledger: CorrelationLedger) -> None:
    ledger.update(
        lambda held: held.observe(AlertGroup("g", (RISK,)), NOW, builtin(), lambda: "run-1"),
        NOW,
        timedelta(hours=4),
    )
    again = ledger.read()
    assert [i.id for i in again.incidents] == ["run-1"]
    assert again.home == {"g": "run-1"}


def test_a_held_lock_makes_a_change_fail_saying_so_and_changes_nothing(
    ledger: CorrelationLedger, redis_client: redis.Redis
) -> None:
    redis_client.set(LOCK_KEY, "someone else", ex=5)
    with pytest.raises(LedgerBusy, match="stayed locked for 0.2 s"):
        ledger.update(lambda held: held.incidents.append(None), NOW, timedelta(hours=4))
    assert redis_client.get(LEDGER_KEY) is None


def test_a_change_that_fails_midway_saves_nothing(ledger: CorrelationLedger) -> None:
    def broken(held):
        held.observe(AlertGroup("g", (RISK,)), NOW, builtin(), lambda: "run-1")
        raise ValueError("midway")

    with pytest.raises(ValueError, match="midway"):
        ledger.update(broken, NOW, timedelta(hours=4))
    assert ledger.read().incidents == []
