"""PagerDuty's request budget against real Redis: never more than the limit in any window."""

from __future__ import annotations

import bisect
import itertools

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.lanes import Lane
from tasks.pagerduty.budget import RequestBudget

LIMIT, WINDOW, SHARE = 12, 60.0, 0.5


def most_in_any_window(times: list[float], window: float) -> int:
    """Return the most of `times` that fall in any half-open window [t, t + window)."""
    ordered = sorted(times)
    # The busiest window can be taken to start at a grant.
    return max(
        (bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0
    )


arrivals = st.lists(
    st.tuples(st.floats(min_value=0, max_value=300, allow_nan=False), st.sampled_from(Lane)),
    min_size=1,
    max_size=200,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=arrivals)
def test_the_budget_never_grants_more_than_its_limit_in_any_window(
    redis_client: redis.Redis, calls: list[tuple[float, Lane]]
) -> None:
    budget = RequestBudget(redis_client, "property", LIMIT, WINDOW, SHARE)
    redis_client.delete(*budget._keys)
    granted: dict[Lane, list[float]] = {Lane.URGENT: [], Lane.ROUTINE: []}
    for now, lane in sorted(calls, key=lambda call: call[0]):
        wait = budget.take(lane, now=1_800_000_000 + now)
        if wait == 0:
            granted[lane].append(now)
        else:  # a refusal says how long: by then this lane is granted (nothing else came)
            assert wait > 0
    everything = granted[Lane.URGENT] + granted[Lane.ROUTINE]
    assert most_in_any_window(everything, WINDOW) <= LIMIT
    # Routine work never takes the headroom left for urgent work.
    assert most_in_any_window(granted[Lane.ROUTINE], WINDOW) <= int(LIMIT * SHARE)


def test_a_refused_lane_is_granted_after_the_wait_it_was_told(redis_client: redis.Redis) -> None:
    budget = RequestBudget(redis_client, "wait", 4, 10.0, 0.5)
    redis_client.delete(*budget._keys)
    start = 1_800_000_000.0
    assert [budget.take(Lane.ROUTINE, now=start + i) for i in range(2)] == [0, 0]
    wait = budget.take(Lane.ROUTINE, now=start + 2)
    assert wait == pytest.approx(8.0)  # the first routine grant leaves the window at start + 10
    assert budget.take(Lane.ROUTINE, now=start + 2 + wait) == 0
    # Routine work has its share; the urgent headroom is still there.
    assert budget.take(Lane.ROUTINE, now=start + 10.5) > 0
    assert budget.take(Lane.URGENT, now=start + 10.5) == 0


def test_a_block_holds_both_lanes_back(redis_client: redis.Redis) -> None:
    budget = RequestBudget(redis_client, "blocked", 100, 60.0, 0.6)
    redis_client.delete(*budget._keys)
    budget.block(30)
    waits = [budget.take(lane) for lane in itertools.islice(itertools.cycle(Lane), 2)]
    assert all(25 < wait <= 30 for wait in waits)
    assert budget.used() == 0
