"""A delivery that arrives while the Sentinels elect a new primary waits for it, briefly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from redis.sentinel import MasterNotFoundError

from webhooks.intake import FAILOVER_POLL_SECONDS, record_through_failover


class Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def failing(
    times: int, error: Exception, result: str = "recorded"
) -> tuple[list[int], Callable[[], str]]:
    calls = [0]

    def record() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise error
        return result

    return calls, record


def test_a_delivery_during_the_election_is_recorded_once_a_sentinel_names_the_new_primary() -> None:
    clock = Clock()
    calls, record = failing(8, MasterNotFoundError("No master found for 'responder'"))
    assert record_through_failover(record, 5.0, clock.sleep, clock) == "recorded"
    assert calls[0] == 9
    assert clock.now == pytest.approx(8 * FAILOVER_POLL_SECONDS)


def test_a_failover_longer_than_the_grace_still_answers_503() -> None:
    clock = Clock()
    calls, record = failing(1000, MasterNotFoundError("No master found for 'responder'"))
    with pytest.raises(MasterNotFoundError):
        record_through_failover(record, 5.0, clock.sleep, clock)
    assert 5.0 <= clock.now < 5.0 + 2 * FAILOVER_POLL_SECONDS


@pytest.mark.parametrize(
    "error", [redis.ConnectionError("refused"), redis.TimeoutError("timed out")]
)
def test_a_redis_that_is_down_without_a_failover_is_not_waited_for(error: Exception) -> None:
    clock = Clock()
    calls, record = failing(1, error)
    with pytest.raises(type(error)):
        record_through_failover(record, 5.0, clock.sleep, clock)
    assert (calls[0], clock.now) == (1, 0.0)
