"""Settings from the environment; secrets never print themselves."""

import pytest

from tasks.settings import Secret, SettingsError, settings_from_env


def test_defaults_mean_outbox_mode_and_no_unauthenticated_posts() -> None:
    settings = settings_from_env({})
    assert settings.outbox_mode
    assert settings.allow_unauthenticated is False
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_secrets_do_not_show_in_repr_str_or_format() -> None:
    settings = settings_from_env(
        {"RESPONDER_PAGERDUTY_TOKEN": "pd-real-token", "RESPONDER_ALERTMANAGER_TOKEN": "am-tok"}
    )
    for rendering in (repr(settings), str(settings), f"{settings.pagerduty_token}"):
        assert "pd-real-token" not in rendering
        assert "am-tok" not in rendering
    assert settings.pagerduty_token == Secret("pd-real-token")
    assert not settings.outbox_mode


def test_secrets_list_includes_the_basic_auth_password_alone() -> None:
    settings = settings_from_env({"RESPONDER_ALERTMANAGER_BASIC_AUTH": "am:pa55word"})
    assert "pa55word" in settings.secrets()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RESPONDER_ALLOW_UNAUTHENTICATED", "maybe", "RESPONDER_ALLOW_UNAUTHENTICATED: expected 1"),
        ("RESPONDER_COLLECTOR_TIMEOUT", "fast", "RESPONDER_COLLECTOR_TIMEOUT:"),
        ("RESPONDER_ALERTMANAGER_BASIC_AUTH", "nocolon", "expected user:password"),
        ("RESPONDER_SLA_CLAIM_LEASE", "0", "RESPONDER_SLA_CLAIM_LEASE: at least 2 seconds, got 0"),
        ("RESPONDER_SLA_CLAIM_LEASE", "nan", "RESPONDER_SLA_CLAIM_LEASE: at least 2 seconds"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from_env({variable: value})
