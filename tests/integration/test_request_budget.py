"""PagerDuty's request budget against real Redis: never more than the limit in any window."""

from __future__ import annotations

import bisect
import itertools

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.gateways.request_budget import RequestBudget
from tasks.lanes import Lane, first_response, writing_first_response

LIMIT, WINDOW, SHARE = 12, 60.0, 0.5


def most_in_any_window(times: list[float], window: float) -> int:
    """Return the most of `times` that fall in any half-open window [t, t + window)."""
    ordered = sorted(times)
    # The busiest window can be taken to start at a grant.
    return max(
        (bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0
    )


KINDS = [(Lane.URGENT, False), (Lane.ROUTINE, True), (Lane.ROUTINE, False)]  # True: first note
arrivals = st.lists(
    st.tuples(st.floats(min_value=0, max_value=300, allow_nan=False), st.sampled_from(KINDS)),
    min_size=1,
    max_size=200,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=arrivals)
def test_the_budget_never_grants_more_than_its_limit_in_any_window(
    redis_client: redis.Redis, calls: list[tuple[float, tuple[Lane, bool]]]
) -> None:
    budget = RequestBudget(redis_client, "property", LIMIT, WINDOW, SHARE)
    redis_client.delete(*budget._keys)
    granted: dict[tuple[Lane, bool], list[float]] = {kind: [] for kind in KINDS}
    for now, (lane, first) in sorted(calls, key=lambda call: call[0]):
        token = first_response.set(first)
        try:
            wait = budget.take(lane, now=1_800_000_000 + now)
        finally:
            first_response.reset(token)
        if wait == 0:
            granted[lane, first].append(now)
        else:  # a refusal says how long: by then this lane is granted (nothing else came)
            assert wait > 0
    everything = [t for times in granted.values() for t in times]
    assert most_in_any_window(everything, WINDOW) <= LIMIT
    # Routine work never takes the headroom left for urgent work, and routine follow-ups
    # never the part of it kept for first notes.
    routine = granted[Lane.ROUTINE, True] + granted[Lane.ROUTINE, False]
    assert most_in_any_window(routine, WINDOW) <= int(LIMIT * SHARE)
    assert most_in_any_window(granted[Lane.ROUTINE, False], WINDOW) <= budget.follow_up_ceiling


def test_a_refused_lane_is_granted_after_the_wait_it_was_told(redis_client: redis.Redis) -> None:
    with writing_first_response():  # the lane's whole share (follow-ups get less)
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


def test_routine_first_notes_keep_a_share_follow_ups_cannot_take(redis_client: redis.Redis) -> None:
    budget = RequestBudget(redis_client, "first", 20, 60.0, 0.5)  # routine 10, follow-ups 8
    redis_client.delete(*budget._keys)
    start = 1_800_000_000.0
    assert [budget.take(Lane.ROUTINE, now=start + i) for i in range(8)] == [0] * 8
    assert budget.take(Lane.ROUTINE, now=start + 8) > 0  # a priority update, an evidence note
    with writing_first_response():  # a new incident's first note still gets through
        assert budget.take(Lane.ROUTINE, now=start + 8) == 0


def test_routine_follow_ups_wait_while_first_responses_are_in_progress(
    redis_client: redis.Redis,
) -> None:
    budget = RequestBudget(redis_client, "first-pending", 100, 60.0, 0.6)
    redis_client.delete(*budget._keys)
    start = 1_800_000_000.0
    budget.first_response_begins("run-a", now=start)
    budget.first_response_begins("run-b", now=start)
    assert budget.take(Lane.ROUTINE, now=start + 1) == pytest.approx(0.5)  # a status update
    with writing_first_response():  # the first notes themselves go on
        assert budget.take(Lane.ROUTINE, now=start + 1) == 0
    assert budget.take(Lane.URGENT, now=start + 1) == 0  # urgent work never waits for them
    budget.first_response_ends("run-a")
    assert budget.take(Lane.ROUTINE, now=start + 2) > 0  # run-b is still in progress
    budget.first_response_ends("run-b")
    assert budget.take(Lane.ROUTINE, now=start + 3) == 0
    # A first response whose task died holds follow-ups back for its lease only.
    budget.first_response_begins("run-dead", now=start + 3)
    assert budget.take(Lane.ROUTINE, now=start + 4) > 0
    assert budget.take(Lane.ROUTINE, now=start + 3 + 31) == 0
