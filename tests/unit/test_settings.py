"""Settings from the environment; secrets never print themselves."""

from dataclasses import fields

import pytest

from tasks.retries import MAX_DELAY_SECONDS
from tasks.settings import (
    _ENV,
    AUDIT_RETRY_WAIT,
    RANGES,
    Secret,
    Settings,
    SettingsError,
    settings_from_env,
    shown_url,
)


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
        (
            "RESPONDER_SLA_CLAIM_LEASE",
            "0",
            "RESPONDER_SLA_CLAIM_LEASE: must be a number of seconds from 2 to 3600, got '0'",
        ),
        (
            "RESPONDER_SLA_CLAIM_LEASE",
            "nan",
            "RESPONDER_SLA_CLAIM_LEASE: must be a number of seconds from 2",
        ),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from_env({variable: value})


PASSWORD = "hunter2-5e1f"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "RESPONDER_REDIS_URL",
            "not-a-url",
            "not a URL: expected one starting with redis://, rediss:// or sentinel://",
        ),
        (
            "RESPONDER_REDIS_URL",
            f"http://:{PASSWORD}@127.0.0.1:6379/0",
            "scheme 'http://' is not one of redis://, rediss:// or sentinel://",
        ),
        (
            "RESPONDER_REDIS_URL",
            f"redis://:{PASSWORD}@127.0.0.1:port/0",
            "the port is not a number from 0 to 65535",
        ),
        ("RESPONDER_REDIS_URL", "redis://127.0.0.1:70000/0", "the port is not a number"),
        # Without its @ the password is parsed as the port: the message must not repeat it.
        ("RESPONDER_REDIS_URL", f"redis://:{PASSWORD}:6379/0", "the port is not a number"),
        (
            "RESPONDER_REDIS_URL",
            "redis://127.0.0.1:6379/abc",
            "the database 'abc' is not a number (redis://host:port/NUMBER)",
        ),
        ("RESPONDER_REDIS_URL", "redis:///0", "no host after redis://"),
        # Celery's Sentinel form: the bad address is named by its place, never shown.
        (
            "RESPONDER_REDIS_URL",
            f"sentinel://:{PASSWORD}@h1:26379;sentinel://h2:{PASSWORD}/0",
            "Sentinel address 2 of 2: the port is not a number from 0 to 65535",
        ),
        (
            "RESPONDER_REDIS_URL",
            f"sentinel://:{PASSWORD}@h1:26379;redis://h2:26379/0",
            "Sentinel address 2 of 2 does not start with sentinel://",
        ),
        (
            "RESPONDER_REDIS_URL",
            "sentinel://h1:26379;;sentinel://h3:26379/0",
            "Sentinel address 2 of 3 is empty (addresses are separated by ';')",
        ),
        (
            "RESPONDER_REDIS_URL",
            "sentinel://h1:26379/0;sentinel://h2:26379/0",
            "Sentinel address 1 of 2: only the last address may name the database",
        ),
        ("RESPONDER_REDIS_URL", "sentinel://:26379/0", "Sentinel address 1 of 1: no host"),
        (
            "RESPONDER_REDIS_URL",
            f"sentinel://:{PASSWORD}@h1:26379/zero",
            "the database is not a number (sentinel://host:port/NUMBER)",
        ),
        ("RESPONDER_TARGET_REDIS_URL", "127.0.0.1:6379", "not a URL"),
        ("RESPONDER_PROMETHEUS_URL", "prometheus:9090", "not a URL"),
        ("RESPONDER_PROMETHEUS_URL", "http://", "no host after http://"),
        ("RESPONDER_PAGERDUTY_API_URL", "ftp://api.pagerduty.com", "scheme 'ftp://'"),
        ("RESPONDER_PAGERDUTY_EVENTS_URL", "https://events:x", "the port is not a number"),
        ("RESPONDER_PUBLIC_URL", "127.0.0.1:8080", "expected one starting with http:// or https"),
        ("RESPONDER_DOCKER_URL", "/var/run/docker.sock", "unix://, tcp://, http://, https://"),
        ("RESPONDER_DOCKER_URL", "unix://", "no socket path after unix://"),
        (
            "RESPONDER_POSTGRES_DSN",
            f"mysql://eafix:{PASSWORD}@db/eafix",
            "scheme 'mysql://' is not one of postgresql:// or postgres://",
        ),
        ("RESPONDER_POSTGRES_DSN", f"postgresql://eafix:{PASSWORD}@db:x/e", "port is not a number"),
        (
            "RESPONDER_POSTGRES_DSN",
            f"host=db password={PASSWORD} dbname",
            'not a PostgreSQL connection string: missing "=" after "..."',
        ),
        (
            "RESPONDER_POSTGRES_DSN",
            f"hots=db password={PASSWORD}",
            'invalid connection option "hots"',
        ),
    ],
)
def test_a_url_no_client_can_use_is_refused_naming_the_variable_never_the_password(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        settings_from_env({variable: value})
    assert str(refused.value).startswith(f"{variable}: ")
    assert message in str(refused.value)
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RESPONDER_REDIS_URL", "redis://127.0.0.1:6379"),
        ("RESPONDER_REDIS_URL", f"rediss://default:{PASSWORD}@redis.internal:6380/3"),
        ("RESPONDER_TARGET_REDIS_URL", "unix:///run/redis/redis.sock"),
        ("RESPONDER_PROMETHEUS_URL", "http://prometheus:9090/"),
        ("RESPONDER_DOCKER_URL", "unix:///var/run/docker.sock"),
        ("RESPONDER_DOCKER_URL", "tcp://docker:2375"),
        ("RESPONDER_POSTGRES_DSN", f"postgresql://eafix:{PASSWORD}@db1:5432,db2:5433/eafix"),
        ("RESPONDER_POSTGRES_DSN", "postgresql:///eafix"),
        ("RESPONDER_POSTGRES_DSN", "host=db port=5432 dbname=eafix"),
    ],
)
def test_urls_the_clients_take_are_accepted(variable: str, value: str) -> None:
    assert settings_from_env({variable: value}) != settings_from_env({})  # taken, not refused


def test_a_url_is_shown_with_its_password_masked() -> None:
    shown = shown_url(f"redis://default:{PASSWORD}@redis.internal:6380/3")
    assert shown == "redis://default:***@redis.internal:6380/3"


NUMERIC = sorted((variable, name) for variable, name in _ENV.items() if name in RANGES)


def test_every_numeric_setting_has_a_range() -> None:
    numeric = {f.name for f in fields(Settings) if f.type in ("int", "float")}
    assert numeric == set(RANGES) == {name for _, name in NUMERIC}


@pytest.mark.parametrize(("variable", "name"), NUMERIC)
def test_a_numeric_setting_too_low_too_high_or_not_a_number_is_refused_with_the_sentence(
    variable: str, name: str
) -> None:
    low, high, what = RANGES[name]
    too_low = str(int(low) - 1 if float(low).is_integer() else low / 2)
    too_high = str(int(high) + 1)
    for raw in (too_low, too_high, "abc", "nan", "-5"):
        with pytest.raises(SettingsError) as refused:
            settings_from_env({variable: raw})
        assert str(refused.value) == (
            f"{variable}: must be {what} from {low:g} to {high:g}, got {raw!r}"
        )


@pytest.mark.parametrize(("variable", "name"), NUMERIC)
def test_a_numeric_setting_at_either_end_of_its_range_is_taken(variable: str, name: str) -> None:
    low, high, _ = RANGES[name]
    for value in (low, high):
        raw = str(int(value)) if float(value).is_integer() else str(value)
        # The three Celery limits must also keep their order (soft < hard < visibility).
        env = {
            ("visibility_timeout_seconds", low): {"SOFT_TIME_LIMIT": "1", "TIME_LIMIT": "2"},
            ("task_time_limit_seconds", low): {"SOFT_TIME_LIMIT": "1"},
            ("task_time_limit_seconds", high): {
                "VISIBILITY_TIMEOUT": str(7 * 86400),
                "SLA_AUDIT_GRACE_SECONDS": str(7 * 86400),
            },
            # The SLA auditor's grace must outlast a task's time limit and a retry's wait.
            ("sla_audit_grace_seconds", low): {"SOFT_TIME_LIMIT": "1", "TIME_LIMIT": "2"},
        }.get((name, value), {})
        env = {
            f"RESPONDER_TASK_{k}" if "LIMIT" in k else f"RESPONDER_{k}": v for k, v in env.items()
        }
        if (name, value) == ("task_soft_time_limit_seconds", high):
            continue  # no hard limit in range lies above it: the order rule refuses it
        env[variable] = raw
        assert getattr(settings_from_env(env), name) == float(raw)


def test_an_sla_audit_grace_within_a_task_time_limit_and_a_retry_wait_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^need RESPONDER_SLA_AUDIT_GRACE_SECONDS > "):
        settings_from_env({"RESPONDER_SLA_AUDIT_GRACE_SECONDS": "300"})  # limit 300 + 60


def test_the_sla_audit_grace_counts_the_longest_retry_wait_there_is() -> None:
    assert AUDIT_RETRY_WAIT == MAX_DELAY_SECONDS


def test_a_negative_sla_tick_is_refused_before_beat_can_loop_on_it() -> None:
    with pytest.raises(
        SettingsError,
        match=r"^RESPONDER_SLA_TICK_SECONDS: must be a number of "
        r"seconds from 0.5 to 300, got '-5'$",
    ):
        settings_from_env({"RESPONDER_SLA_TICK_SECONDS": "-5"})


@pytest.mark.parametrize(
    "variable",
    ["RESPONDER_PAGERDUTY_API_URL", "RESPONDER_PAGERDUTY_EVENTS_URL", "RESPONDER_SLACK_API_URL"],
)
def test_a_url_that_carries_a_token_must_be_https_unless_its_host_is_loopback(
    variable: str,
) -> None:
    with pytest.raises(SettingsError) as refused:
        settings_from_env({variable: "http://api.pagerduty.com"})
    assert str(refused.value) == (
        f"{variable}: must be https:// (it carries a token), got http:// to "
        "'api.pagerduty.com'; plain http is for a loopback host only"
    )
    for local in ("http://127.0.0.1:8443", "http://[::1]:80/api/", "http://localhost:9"):
        settings_from_env({variable: local})
    settings_from_env({variable: "https://api.eu.pagerduty.com"})


@pytest.mark.parametrize("value", ["-1", "1441"])
def test_an_approval_link_lifetime_outside_a_day_is_refused_naming_the_variable(
    value: str,
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_env({"RESPONDER_APPROVAL_LINK_MINUTES": value})
    assert str(caught.value) == (
        "RESPONDER_APPROVAL_LINK_MINUTES: must be a whole number of minutes (0: the policy's "
        f"proposal_ttl) from 0 to 1440, got {value!r}"
    )


def test_an_approval_link_lasts_the_proposal_ttl_unless_set() -> None:
    assert settings_from_env({}).approval_link_minutes == 0
    assert settings_from_env({"RESPONDER_APPROVAL_LINK_MINUTES": "15"}).approval_link_minutes == 15
