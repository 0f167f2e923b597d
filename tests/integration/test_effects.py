"""`once`, the one exactly-once protocol of PagerDuty notes, Slack posts and e-mails, over the
delivery log's once-records in the test Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from tasks.store.deliveries import DEDUP_TTL, PREFIX, DeliveryStore, current_attempt
from tasks.store.effects import CLAIMED, IN_FLIGHT, HeldWhy, Once, once

SCOPE, STEP = "20261207T120000Z-0badcafe-r1", "first_note"
KEY = f"{PREFIX}effect:{SCOPE}:{STEP}"  # the key every version before this one wrote


class Held(Exception):
    """What the test's `held` raises: why and how long."""

    def __init__(self, why: HeldWhy, wait: float) -> None:
        super().__init__(f"{why} {wait}")
        self.why, self.wait = why, wait


class Refused(Exception):
    """A remote refusal; `surely_not_applied` as the gateways' errors say it."""

    def __init__(self, surely_not_applied: bool) -> None:
        super().__init__("refused")
        self.surely_not_applied = surely_not_applied


@pytest.fixture
def ledger(redis_client: redis.Redis) -> DeliveryStore:
    """Return the delivery log whose once-records `once` keeps."""
    return DeliveryStore(redis_client, timedelta(days=1))


@pytest.fixture
def attempt() -> Iterator[None]:
    """Run the test as task `t1` (the worker sets it per task)."""
    token = current_attempt.set("t1")
    yield
    current_attempt.reset(token)


def applying(calls: list[str], value: str = "N1") -> Callable[[Callable[[str], None]], str]:
    """Return an `apply` that notes its call and returns `value`."""

    def apply(done: Callable[[str], None]) -> str:
        calls.append("apply")
        return value

    return apply


def run_once(
    ledger: DeliveryStore, apply: Callable[[Callable[[str], None]], str], **kw: Any
) -> Once[str]:
    """Call `once` on the test's effect with the test's `held`."""
    return once(ledger, SCOPE, STEP, apply, record=lambda v: f"id {v}", held=Held, **kw)


def test_an_effect_is_applied_once_and_a_retry_does_nothing(
    ledger: DeliveryStore, redis_client: redis.Redis, attempt: None
) -> None:
    calls: list[str] = []
    first = run_once(ledger, applying(calls))
    second = run_once(ledger, applying(calls))
    assert (first.how, first.value, second.how, second.value) == (
        "applied",
        "N1",
        "done before",
        None,
    )
    assert calls == ["apply"]
    assert redis_client.get(KEY) == b"done:id N1"
    assert 0 < redis_client.ttl(KEY) <= DEDUP_TTL.total_seconds()


def test_another_copys_fresh_attempt_holds_this_one_back_without_applying(
    ledger: DeliveryStore, redis_client: redis.Redis, attempt: None
) -> None:
    redis_client.set(KEY, f"pending:t2:{time.time():.3f}")
    calls: list[str] = []
    with pytest.raises(Held) as held:
        run_once(ledger, applying(calls))
    assert held.value.why == IN_FLIGHT and 0 < held.value.wait <= 30
    assert calls == []


def test_an_interrupted_attempt_found_on_the_remote_side_is_recorded_not_applied_again(
    ledger: DeliveryStore, redis_client: redis.Redis, attempt: None
) -> None:
    redis_client.set(KEY, "pending:t1:1000.000")  # this task's own, before a retry
    looked: list[float] = []

    def find(since: float) -> tuple[str, str] | None:
        looked.append(since)
        return "N0", "found after an interrupted attempt"

    calls: list[str] = []
    outcome = run_once(ledger, applying(calls), find=find)
    assert (outcome.how, outcome.value, looked, calls) == ("found", "N0", [1000.0], [])
    assert redis_client.get(KEY) == b"done:found after an interrupted attempt"


def test_a_plain_pending_of_an_older_version_is_looked_for_then_applied_when_not_found(
    ledger: DeliveryStore, redis_client: redis.Redis, attempt: None
) -> None:
    # Written by a worker of a version before `once` (begin_effect): an upgrade mid-flight.
    redis_client.set(KEY, "pending")
    looked: list[float] = []
    calls: list[str] = []
    outcome = run_once(ledger, applying(calls), find=lambda since: looked.append(since))
    assert (outcome.how, looked, calls) == ("applied", [0.0], ["apply"])
    assert redis_client.get(KEY) == b"done:id N1"


@pytest.mark.parametrize(("surely_not_applied", "left"), [(True, None), (False, b"pending:t1:")])
def test_a_failure_clears_the_claim_only_when_the_effect_surely_did_not_happen(
    ledger: DeliveryStore,
    redis_client: redis.Redis,
    attempt: None,
    surely_not_applied: bool,
    left: bytes | None,
) -> None:
    def apply(done: Callable[[str], None]) -> str:
        raise Refused(surely_not_applied)

    with pytest.raises(Refused):
        run_once(ledger, apply)
    stored = redis_client.get(KEY)
    assert stored == left if left is None else (stored or b"").startswith(left)


def test_an_effect_marked_done_by_apply_keeps_that_record(
    ledger: DeliveryStore, redis_client: redis.Redis, attempt: None
) -> None:
    # SMTP: done at the server's 250, before QUIT; what follows does not write it again.
    seen: list[bytes | None] = []

    def apply(done: Callable[[str], None]) -> str:
        done("<mid@eafix>")
        seen.append(redis_client.get(KEY))
        return "outbox/file.eml"

    assert run_once(ledger, apply).how == "applied"
    assert seen == [b"done:<mid@eafix>"]
    assert redis_client.get(KEY) == b"done:<mid@eafix>"


def test_a_hold_before_the_claim_leaves_no_record(
    ledger: DeliveryStore, redis_client: redis.Redis, attempt: None
) -> None:
    def paced() -> None:
        raise Held(IN_FLIGHT, 0.5)  # e.g. the channel's one message a second

    calls: list[str] = []
    with pytest.raises(Held):
        run_once(ledger, applying(calls), before_claim=paced)
    assert calls == [] and redis_client.get(KEY) is None


def test_a_claim_lost_to_another_copy_holds_this_one_back(
    ledger: DeliveryStore, redis_client: redis.Redis, attempt: None
) -> None:
    def other_copy_claims() -> None:  # between this attempt's read and its claim
        redis_client.set(KEY, f"pending:t2:{time.time():.3f}")

    calls: list[str] = []
    with pytest.raises(Held) as held:
        run_once(ledger, applying(calls), before_claim=other_copy_claims)
    assert (held.value.why, held.value.wait, calls) == (CLAIMED, 1.0, [])
    assert (redis_client.get(KEY) or b"").startswith(b"pending:t2:")
