"""The replay window's settings: defaults, and a refusal naming the variable out of range."""

from __future__ import annotations

import pytest

from tasks.settings import SettingsError, settings_from_env

AGE, SKEW = (
    "RESPONDER_PAGERDUTY_EVENT_MAX_AGE_SECONDS",
    "RESPONDER_PAGERDUTY_EVENT_MAX_SKEW_SECONDS",
)


def test_the_window_is_ten_minutes_and_a_minute_of_skew_by_default() -> None:
    settings = settings_from_env({})
    assert settings.pagerduty_event_max_age_seconds == 600
    assert settings.pagerduty_event_max_skew_seconds == 60


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (AGE, "0", f"{AGE}: must be a number of seconds from 60 to 169200, got '0'"),
        (AGE, "200000", "got '200000'"),
        (AGE, "nan", "got 'nan'"),
        (SKEW, "-1", f"{SKEW}: must be a number of seconds from 0 to 600"),
        (SKEW, "601", "got '601'"),
    ],
)
def test_a_window_out_of_range_is_refused_naming_the_variable(variable, value, says) -> None:
    with pytest.raises(SettingsError) as refused:
        settings_from_env({variable: value})
    assert says in str(refused.value)


def test_a_window_in_range_is_taken() -> None:
    settings = settings_from_env({AGE: "300", SKEW: "5"})
    assert (
        settings.pagerduty_event_max_age_seconds,
        settings.pagerduty_event_max_skew_seconds,
    ) == (
        300,
        5,
    )
