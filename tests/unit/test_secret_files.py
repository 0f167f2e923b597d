"""Every secret setting may be read from a file: RESPONDER_<NAME>_FILE (Docker secrets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.settings import Secret, SettingsError, secret_variables, settings_from_env

# The variables whose settings are typed Secret, as the settings object declares them today;
# a new secret setting must be added here, and so to compose.yaml's secrets.
EXPECTED_SECRETS = {
    "RESPONDER_REDIS_SENTINEL_PASSWORD",
    "RESPONDER_ALERTMANAGER_TOKEN",
    "RESPONDER_ALERTMANAGER_BASIC_AUTH",
    "RESPONDER_PAGERDUTY_TOKEN",
    "RESPONDER_PAGERDUTY_WEBHOOK_SECRETS",
    "RESPONDER_PAGERDUTY_ROUTING_KEY",
    "RESPONDER_POSTGRES_DSN",
    "RESPONDER_LINK_SECRET",
    "RESPONDER_ACTIONS_TOKEN",
    "RESPONDER_CONSOLE_TOKEN",
    "RESPONDER_SLACK_TOKEN",
    "RESPONDER_SLACK_SIGNING_SECRET",
    "RESPONDER_SMTP_PASSWORD",
    "RESPONDER_S3_ACCESS_KEY_ID",
    "RESPONDER_S3_SECRET_ACCESS_KEY",
}

# A value each secret setting accepts (the DSN and basic auth have a shape to keep).
VALUES = {
    "RESPONDER_ALERTMANAGER_BASIC_AUTH": "alertmanager:s3cret-pass",
    "RESPONDER_POSTGRES_DSN": "postgresql://reader:s3cret-pass@db.internal:5432/eafix",
}
# The S3 key pair is taken whole or not at all: each half is tested with the other set.
PARTNER = {
    "RESPONDER_S3_ACCESS_KEY_ID": {"RESPONDER_S3_SECRET_ACCESS_KEY": "other-half"},
    "RESPONDER_S3_SECRET_ACCESS_KEY": {"RESPONDER_S3_ACCESS_KEY_ID": "other-half"},
}


def test_the_secret_settings_are_the_ones_typed_secret() -> None:
    assert set(secret_variables()) == EXPECTED_SECRETS


@pytest.mark.parametrize("variable", sorted(EXPECTED_SECRETS))
def test_each_secret_is_read_from_its_file_without_the_trailing_newline(
    variable: str, tmp_path: Path
) -> None:
    value = VALUES.get(variable, "s3cret-value")
    path = tmp_path / "secret"
    path.write_text(value + "\n")
    partner = PARTNER.get(variable, {})
    from_file = settings_from_env({f"{variable}_FILE": str(path), **partner})
    from_value = settings_from_env({variable: value, **partner})
    assert from_file == from_value
    assert from_file.secrets() and value in from_file.secrets()


@pytest.mark.parametrize(
    ("content", "meant"),
    [
        ("token\n", "token"),
        ("token\r\n", "token"),
        ("token", "token"),
        ("to ken \n\n", "to ken "),  # only line ends go: spaces may be part of a secret
    ],
)
def test_only_the_line_ends_at_the_end_of_a_secret_file_are_dropped(
    content: str, meant: str, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content.encode())
    settings = settings_from_env({"RESPONDER_CONSOLE_TOKEN_FILE": str(path)})
    assert settings.console_token == Secret(meant)


def test_webhook_secrets_from_a_file_are_comma_separated_like_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text("old-secret,new-secret\n")
    settings = settings_from_env({"RESPONDER_PAGERDUTY_WEBHOOK_SECRETS_FILE": str(path)})
    assert settings.pagerduty_webhook_secrets == (Secret("old-secret"), Secret("new-secret"))


def test_an_empty_secret_file_leaves_the_setting_unset(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_text("\n")
    settings = settings_from_env({"RESPONDER_PAGERDUTY_TOKEN_FILE": str(path)})
    assert settings.outbox_mode


def test_a_secret_set_both_ways_is_refused_naming_both_never_the_value(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-the-file\n")
    with pytest.raises(SettingsError) as refused:
        settings_from_env(
            {"RESPONDER_SLACK_TOKEN": "xoxb-inline", "RESPONDER_SLACK_TOKEN_FILE": str(path)}
        )
    message = str(refused.value)
    assert message.startswith("RESPONDER_SLACK_TOKEN and RESPONDER_SLACK_TOKEN_FILE: ")
    assert "xoxb-inline" not in message and "from-the-file" not in message


def test_a_missing_secret_file_is_refused_naming_the_variable_and_the_path(tmp_path: Path) -> None:
    path = tmp_path / "no-such-file"
    with pytest.raises(SettingsError, match="^RESPONDER_LINK_SECRET_FILE: cannot read ") as refused:
        settings_from_env({"RESPONDER_LINK_SECRET_FILE": str(path)})
    assert str(path) in str(refused.value)
    assert "No such file" in str(refused.value)


def test_a_secret_file_that_is_not_text_is_refused_without_its_content(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe s3cret-value")
    with pytest.raises(SettingsError) as refused:
        settings_from_env({"RESPONDER_SMTP_PASSWORD_FILE": str(path)})
    message = str(refused.value)
    assert message == f"RESPONDER_SMTP_PASSWORD_FILE: cannot read {str(path)!r}: not UTF-8 text"


def test_a_bad_secret_read_from_a_file_is_refused_like_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "basic"
    path.write_text("no-colon-here\n")
    with pytest.raises(SettingsError) as refused:
        settings_from_env({"RESPONDER_ALERTMANAGER_BASIC_AUTH_FILE": str(path)})
    assert str(refused.value) == "RESPONDER_ALERTMANAGER_BASIC_AUTH: expected user:password"


def test_a_directory_given_as_a_secret_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="Is a directory"):
        settings_from_env({"RESPONDER_CONSOLE_TOKEN_FILE": str(tmp_path)})
