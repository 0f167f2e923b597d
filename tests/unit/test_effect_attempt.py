"""Where an exactly-once effect stands for the attempt about to make it: one table for the
PagerDuty notes, Slack messages and e-mails that share the rule."""

from __future__ import annotations

import pytest

from tasks.store.deliveries import IN_FLIGHT_SECONDS, EffectAttempt, effect_attempt

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("state", "owner", "expected"),
    [
        pytest.param(None, "t1", EffectAttempt(None, False, 0.0, None), id="never tried: go"),
        pytest.param("done:N1", "t1", EffectAttempt("done:N1", True, 0.0, None), id="done"),
        pytest.param(
            f"pending:t2:{NOW - 10:.3f}", "t1",
            EffectAttempt(f"pending:t2:{NOW - 10:.3f}", False, IN_FLIGHT_SECONDS - 10, None),
            id="another copy tried 10 s ago: it may be in flight, wait",
        ),
        pytest.param(
            f"pending:t2:{NOW - IN_FLIGHT_SECONDS - 1:.3f}", "t1",
            EffectAttempt(f"pending:t2:{NOW - IN_FLIGHT_SECONDS - 1:.3f}", False, 0.0,
                          NOW - IN_FLIGHT_SECONDS - 1),
            id="another copy tried long ago: interrupted, look before acting",
        ),
        pytest.param(
            f"pending:t1:{NOW - 1:.3f}", "t1",
            EffectAttempt(f"pending:t1:{NOW - 1:.3f}", False, 0.0, NOW - 1),
            id="this task's own attempt (a retry): interrupted, look before acting",
        ),
        pytest.param(
            f"pending:t2:{NOW + 5:.3f}", "t1",
            EffectAttempt(f"pending:t2:{NOW + 5:.3f}", False, IN_FLIGHT_SECONDS, None),
            id="another host's clock ahead: wait no longer than an attempt can be in flight",
        ),
        pytest.param(
            "pending", "t1", EffectAttempt("pending", False, 0.0, 0.0),
            id="an old plain pending: interrupted, since unknown",
        ),
    ],
)  # fmt: skip
def test_an_effect_attempt_is_done_waits_looks_or_goes(
    state: str | None, owner: str, expected: EffectAttempt
) -> None:
    assert effect_attempt(state, owner, NOW) == expected
