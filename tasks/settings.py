"""The one typed settings object, read from `RESPONDER_*` environment variables at start-up."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from kombu.utils.url import maybe_sanitize_url

from tasks.store.redis_client import SENTINEL_SCHEME, is_sentinel_url, parse_sentinel_url


class Secret:
    """A secret string that never shows itself in repr, str or an f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one call that needs it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)


class SettingsError(ValueError):
    """An environment variable with a value the responder cannot use."""


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Settings:
    """Everything the receiver, the workers and the CLI are configured with."""

    redis_url: str = DEFAULT_REDIS_URL
    # With a sentinel:// URL: the master the Sentinels monitor, and their own password if any.
    redis_sentinel_master: str = ""
    redis_sentinel_password: Secret = field(default_factory=lambda: Secret(""))
    # > 0: a webhook is answered 2xx only once WAIT saw its record on this many replicas.
    redis_wait_replicas: int = 0
    redis_wait_ms: int = 500
    policy_path: str = ""
    alertmanager_token: Secret = field(default_factory=lambda: Secret(""))
    alertmanager_basic_auth: Secret = field(default_factory=lambda: Secret(""))
    allow_unauthenticated: bool = False
    pagerduty_token: Secret = field(default_factory=lambda: Secret(""))
    pagerduty_webhook_secrets: tuple[Secret, ...] = ()
    pagerduty_from: str = "eafix-responder@example.com"
    pagerduty_api_url: str = "https://api.pagerduty.com"
    pagerduty_events_url: str = "https://events.pagerduty.com"
    pagerduty_ca_file: str = ""
    pagerduty_routing_key: Secret = field(default_factory=lambda: Secret(""))
    target_redis_url: str = ""
    prometheus_url: str = ""
    postgres_dsn: Secret = field(default_factory=lambda: Secret(""))
    deploy_repo: str = ""
    docker_url: str = ""
    compose_project: str = "eafix"
    bundle_dir: Path = Path("var/bundles")
    # Where bundles are kept for the receiver to serve: "" keeps them in bundle_dir (one host);
    # s3://bucket/prefix puts them in an S3-compatible store every host reads, and bundle_dir
    # becomes each worker's working copy (docs/bundles.md).
    bundle_store: str = ""
    s3_endpoint_url: str = ""  # "": AWS itself; a MinIO, Ceph or other S3-compatible server
    s3_region: str = ""  # "": boto3's own (AWS_REGION / AWS_DEFAULT_REGION, ~/.aws/config)
    # Unset: boto3's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, an instance role).
    s3_access_key_id: Secret = field(default_factory=lambda: Secret(""))
    s3_secret_access_key: Secret = field(default_factory=lambda: Secret(""))
    outbox_dir: Path = Path("var/outbox")
    public_url: str = "http://127.0.0.1:8080"
    link_secret: Secret = field(default_factory=lambda: Secret(""))
    link_ttl_days: float = 7.0
    # How long a personal approval link lasts; 0: the policy's proposal_ttl.
    approval_link_minutes: int = 0
    bundle_retention_days: float = 14.0
    collector_timeout_seconds: float = 5.0
    incident_lookup_attempts: int = 6
    incident_lookup_delay_seconds: float = 2.0
    delivery_retention_days: float = 7.0
    pagerduty_attempts: int = 0  # 0: no cap; the policy's storm.give_up_after decides
    pagerduty_retry_base_seconds: float = 1.0
    sla_claim_lease_seconds: float = 60.0
    # A signed PagerDuty event older than this (by its occurred_at), or further ahead of our
    # clock than the skew, is recorded and never acted on: a captured event cannot be replayed.
    pagerduty_event_max_age_seconds: float = 600.0
    pagerduty_event_max_skew_seconds: float = 60.0
    # A delivery queued or running this long with no task message behind it is queued again.
    pipeline_lease_seconds: float = 120.0
    # Celery on Redis: a message unacknowledged this long is delivered again, so every task
    # limit stays below it (checked below).
    visibility_timeout_seconds: int = 3600
    task_time_limit_seconds: int = 300
    task_soft_time_limit_seconds: int = 240
    result_expires_seconds: int = 86400
    heartbeat_seconds: float = 10.0
    sla_tick_seconds: float = 5.0
    # Beat's frequent ticks log their routine lines at INFO only when asked (tasks/quiet_ticks.py).
    log_ticks: bool = False
    # A worker draws a throwaway plot before its pool forks, so that no alert waits for
    # matplotlib to load (0.8 s of CPU a start); the tests, which start many workers, skip it.
    warm_plots: bool = True
    recover_seconds: float = 5.0
    # Beat on every host: the one holding this Redis lease sends the periodic tasks; another
    # takes over within this long of the holder's death (tasks/beat.py).
    beat_lease_seconds: float = 10.0
    # The SLA auditor looks this often for deadlines that came due and were not acted on ...
    sla_audit_seconds: float = 60.0
    # ... and queues again those whose action has not run (or retried) for this long.
    sla_audit_grace_seconds: float = 900.0
    # How often beat looks whether Alertmanager's Watchdog alert has gone silent.
    watchdog_check_seconds: float = 15.0
    worker_max_memory_kb: int = 200_000
    queue: str = "responder"
    # Bearer token a PagerDuty incident workflow sends to POST /actions/<action>; unset: 503.
    actions_token: Secret = field(default_factory=lambda: Secret(""))
    # Record and note what an approved action would do, without doing it.
    actions_dry_run: bool = False
    # Opens the incident list page (GET /incidents) and its Replay buttons; unset: 503.
    console_token: Secret = field(default_factory=lambda: Secret(""))
    # Slack's bot token (xoxb-...); unset: Slack messages go to the outbox (outbox_dir/slack).
    slack_token: Secret = field(default_factory=lambda: Secret(""))
    # Verifies Slack's button clicks (POST /webhooks/slack); unset: the route answers 503.
    slack_signing_secret: Secret = field(default_factory=lambda: Secret(""))
    slack_api_url: str = "https://slack.com/api/"
    slack_ca_file: str = ""  # a private CA bundle (a TLS-re-signing proxy, the tests' fake)
    # E-mail through SMTP (tasks/gateways/email.py); no host: e-mails go to the outbox as .eml.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_user: str = ""
    smtp_password: Secret = field(default_factory=lambda: Secret(""))
    smtp_from: str = ""  # "": the policy's communication.email.from
    smtp_ca_file: str = ""  # a CA bundle for STARTTLS; "": the system's
    # Each SMTP socket operation (connect, every command) gives up after this long.
    smtp_timeout_seconds: float = 10.0
    smtp_retry_base_seconds: float = 2.0
    # A request's whole body must arrive within this long (webhooks/body_deadline.py): a client
    # that sends a few bytes and waits is answered 408 instead of holding the receiver.
    body_read_seconds: float = 10.0
    # How every process writes its log: "text" (Celery's and gunicorn's own lines) or "json",
    # one JSON object a line for a log shipper (tasks/log_format.py).
    log_format: str = "text"

    @property
    def outbox_mode(self) -> bool:
        """Return True when there is no PagerDuty token and calls go to the outbox instead."""
        return not self.pagerduty_token

    @property
    def email_outbox_mode(self) -> bool:
        """Return True when there is no SMTP host and e-mails go to the outbox instead."""
        return not self.smtp_host

    @property
    def eafix_redis_url(self) -> str:
        """Return the Redis the `redis` collector inspects: EAFIX's, "" when none is set.

        Never the responder's own: "OK redis" about our Redis would be false comfort.
        """
        return self.target_redis_url

    def secrets(self) -> list[str]:
        """Return every configured secret value, for redaction."""
        values = [getattr(self, f.name) for f in fields(self)]
        values += list(self.pagerduty_webhook_secrets)
        found = [v.reveal() for v in values if isinstance(v, Secret) and v]
        for secret in list(found):
            # A password leaks as much on its own as inside its pair or connection string.
            if match := re.search(r"://[^:/@\s]*:([^@/\s]+)@", secret):
                found.append(match.group(1))
            elif match := re.search(r"password=([^\s]+)", secret):
                found.append(match.group(1))
            elif ":" in secret:
                found.append(secret.split(":", 1)[1])
        return found


MIN_CLAIM_LEASE_SECONDS = 2.0
# The longest wait between two tries of a task (tasks/retries.py's MAX_DELAY_SECONDS).
AUDIT_RETRY_WAIT = 60.0
MAX_APPROVAL_LINK_MINUTES = 24 * 60  # a link that approves in someone's name lives a day at most

SECONDS, WHOLE_SECONDS, DAYS = (
    "a number of seconds",
    "a whole number of seconds",
    "a number of days",
)
# Every number an operator sets: the range it must lie in (both ends included) and what it is,
# for the sentence that refuses it. Zero or a negative period would have beat queue work in a
# tight loop (issue 24: a tick of -5 s queued 1,017 tasks in 15 s).
RANGES: dict[str, tuple[float, float, str]] = {
    "link_ttl_days": (0.01, 90, DAYS),
    "bundle_retention_days": (0.01, 3650, DAYS),
    "collector_timeout_seconds": (0.5, 120, SECONDS),
    "incident_lookup_attempts": (1, 100, "a whole number"),
    "incident_lookup_delay_seconds": (0.1, 300, SECONDS),
    "delivery_retention_days": (0.01, 365, DAYS),
    "pagerduty_attempts": (0, 100, "a whole number (0: no cap)"),
    "pagerduty_retry_base_seconds": (0.05, 60, SECONDS),
    "sla_claim_lease_seconds": (MIN_CLAIM_LEASE_SECONDS, 3600, SECONDS),
    "pipeline_lease_seconds": (10, 86400, SECONDS),
    "visibility_timeout_seconds": (5, 7 * 86400, WHOLE_SECONDS),
    "task_time_limit_seconds": (2, 86400, WHOLE_SECONDS),
    "task_soft_time_limit_seconds": (1, 86400, WHOLE_SECONDS),
    "result_expires_seconds": (60, 30 * 86400, WHOLE_SECONDS),
    "heartbeat_seconds": (1, 300, SECONDS),
    "sla_tick_seconds": (0.5, 300, SECONDS),
    "recover_seconds": (1, 300, SECONDS),
    # Renewed every third of it: under 3 s a slow Redis reply could hand beat over twice.
    "beat_lease_seconds": (3, 300, SECONDS),
    "sla_audit_seconds": (5, 3600, SECONDS),
    "watchdog_check_seconds": (1, 300, SECONDS),
    # Past a task's time limit plus a retry's longest wait (tasks/retries.py: 60 s): checked below.
    "sla_audit_grace_seconds": (120, 7 * 86400, SECONDS),
    "worker_max_memory_kb": (50_000, 64_000_000, "a whole number of KiB"),
    "smtp_port": (1, 65535, "a port number"),
    "smtp_timeout_seconds": (0.5, 300, SECONDS),
    "smtp_retry_base_seconds": (0.05, 600, SECONDS),
    # The event ids are kept 48 h: an event accepted up to the skew early must still be
    # remembered when it is as old as the limit, so the limit stops an hour short (47 h).
    "pagerduty_event_max_age_seconds": (60, 169200, SECONDS),
    "pagerduty_event_max_skew_seconds": (0, 600, SECONDS),
    # Long enough for a 256 KB body on a slow link; short enough that slow clients cost little.
    "body_read_seconds": (0.5, 60, SECONDS),
    # A 2xx waits for the record to reach this many replicas; a Sentinel set runs a few.
    "redis_wait_replicas": (0, 10, "a whole number of replicas (0: no WAIT)"),
    # Alertmanager gives a webhook 10 s by default: the wait must stay well inside it.
    "redis_wait_ms": (1, 5000, "a whole number of milliseconds"),
    "approval_link_minutes": (
        0,
        MAX_APPROVAL_LINK_MINUTES,
        "a whole number of minutes (0: the policy's proposal_ttl)",
    ),
}

_ENV = {
    "RESPONDER_REDIS_URL": "redis_url",
    "RESPONDER_REDIS_SENTINEL_MASTER": "redis_sentinel_master",
    "RESPONDER_REDIS_SENTINEL_PASSWORD": "redis_sentinel_password",
    "RESPONDER_REDIS_WAIT_REPLICAS": "redis_wait_replicas",
    "RESPONDER_REDIS_WAIT_MS": "redis_wait_ms",
    "RESPONDER_POLICY": "policy_path",
    "RESPONDER_ALERTMANAGER_TOKEN": "alertmanager_token",
    "RESPONDER_ALERTMANAGER_BASIC_AUTH": "alertmanager_basic_auth",
    "RESPONDER_ALLOW_UNAUTHENTICATED": "allow_unauthenticated",
    "RESPONDER_PAGERDUTY_TOKEN": "pagerduty_token",
    "RESPONDER_PAGERDUTY_WEBHOOK_SECRETS": "pagerduty_webhook_secrets",
    "RESPONDER_PAGERDUTY_FROM": "pagerduty_from",
    "RESPONDER_PAGERDUTY_API_URL": "pagerduty_api_url",
    "RESPONDER_PAGERDUTY_EVENTS_URL": "pagerduty_events_url",
    "RESPONDER_PAGERDUTY_CA_FILE": "pagerduty_ca_file",
    "RESPONDER_PAGERDUTY_ROUTING_KEY": "pagerduty_routing_key",
    "RESPONDER_TARGET_REDIS_URL": "target_redis_url",
    "RESPONDER_PROMETHEUS_URL": "prometheus_url",
    "RESPONDER_POSTGRES_DSN": "postgres_dsn",
    "RESPONDER_DEPLOY_REPO": "deploy_repo",
    "RESPONDER_DOCKER_URL": "docker_url",
    "RESPONDER_COMPOSE_PROJECT": "compose_project",
    "RESPONDER_BUNDLE_DIR": "bundle_dir",
    "RESPONDER_BUNDLE_STORE": "bundle_store",
    "RESPONDER_S3_ENDPOINT_URL": "s3_endpoint_url",
    "RESPONDER_S3_REGION": "s3_region",
    "RESPONDER_S3_ACCESS_KEY_ID": "s3_access_key_id",
    "RESPONDER_S3_SECRET_ACCESS_KEY": "s3_secret_access_key",
    "RESPONDER_OUTBOX_DIR": "outbox_dir",
    "RESPONDER_PUBLIC_URL": "public_url",
    "RESPONDER_LINK_SECRET": "link_secret",
    "RESPONDER_LINK_TTL_DAYS": "link_ttl_days",
    "RESPONDER_APPROVAL_LINK_MINUTES": "approval_link_minutes",
    "RESPONDER_BUNDLE_RETENTION_DAYS": "bundle_retention_days",
    "RESPONDER_COLLECTOR_TIMEOUT": "collector_timeout_seconds",
    "RESPONDER_INCIDENT_LOOKUP_ATTEMPTS": "incident_lookup_attempts",
    "RESPONDER_INCIDENT_LOOKUP_DELAY": "incident_lookup_delay_seconds",
    "RESPONDER_DELIVERY_RETENTION_DAYS": "delivery_retention_days",
    "RESPONDER_PAGERDUTY_ATTEMPTS": "pagerduty_attempts",
    "RESPONDER_PAGERDUTY_RETRY_BASE": "pagerduty_retry_base_seconds",
    "RESPONDER_SLA_CLAIM_LEASE": "sla_claim_lease_seconds",
    "RESPONDER_PAGERDUTY_EVENT_MAX_AGE_SECONDS": "pagerduty_event_max_age_seconds",
    "RESPONDER_PAGERDUTY_EVENT_MAX_SKEW_SECONDS": "pagerduty_event_max_skew_seconds",
    "RESPONDER_PIPELINE_LEASE": "pipeline_lease_seconds",
    "RESPONDER_VISIBILITY_TIMEOUT": "visibility_timeout_seconds",
    "RESPONDER_TASK_TIME_LIMIT": "task_time_limit_seconds",
    "RESPONDER_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit_seconds",
    "RESPONDER_RESULT_EXPIRES": "result_expires_seconds",
    "RESPONDER_HEARTBEAT_SECONDS": "heartbeat_seconds",
    "RESPONDER_SLA_TICK_SECONDS": "sla_tick_seconds",
    "RESPONDER_LOG_TICKS": "log_ticks",
    "RESPONDER_WARM_PLOTS": "warm_plots",
    "RESPONDER_RECOVER_SECONDS": "recover_seconds",
    "RESPONDER_BEAT_LEASE_SECONDS": "beat_lease_seconds",
    "RESPONDER_SLA_AUDIT_SECONDS": "sla_audit_seconds",
    "RESPONDER_SLA_AUDIT_GRACE_SECONDS": "sla_audit_grace_seconds",
    "RESPONDER_WATCHDOG_CHECK_SECONDS": "watchdog_check_seconds",
    "RESPONDER_WORKER_MAX_MEMORY_KB": "worker_max_memory_kb",
    "RESPONDER_QUEUE": "queue",
    "RESPONDER_ACTIONS_TOKEN": "actions_token",
    "RESPONDER_ACTIONS_DRY_RUN": "actions_dry_run",
    "RESPONDER_CONSOLE_TOKEN": "console_token",
    "RESPONDER_SLACK_TOKEN": "slack_token",
    "RESPONDER_SLACK_SIGNING_SECRET": "slack_signing_secret",
    "RESPONDER_SLACK_API_URL": "slack_api_url",
    "RESPONDER_SLACK_CA_FILE": "slack_ca_file",
    "RESPONDER_SMTP_HOST": "smtp_host",
    "RESPONDER_SMTP_PORT": "smtp_port",
    "RESPONDER_SMTP_STARTTLS": "smtp_starttls",
    "RESPONDER_SMTP_USER": "smtp_user",
    "RESPONDER_SMTP_PASSWORD": "smtp_password",
    "RESPONDER_SMTP_FROM": "smtp_from",
    "RESPONDER_SMTP_CA_FILE": "smtp_ca_file",
    "RESPONDER_SMTP_TIMEOUT": "smtp_timeout_seconds",
    "RESPONDER_SMTP_RETRY_BASE": "smtp_retry_base_seconds",
    "RESPONDER_BODY_READ_SECONDS": "body_read_seconds",
    "RESPONDER_LOG_FORMAT": "log_format",
}

# Settings that take one of a few words.
_CHOICES: dict[str, tuple[str, ...]] = {"log_format": ("text", "json")}

# A secret may come from a file instead (RESPONDER_<NAME>_FILE: Docker's and Kubernetes'
# secrets are files), so that it is in no process's environment and no `docker inspect`.
FILE_SUFFIX = "_FILE"
SECRET_TYPES = ("Secret", "tuple[Secret, ...]")


def secret_variables() -> list[str]:
    """Return the variables of every secret setting, each of which also takes `<NAME>_FILE`."""
    types = {f.name: f.type for f in fields(Settings)}
    return [variable for variable, name in _ENV.items() if types[name] in SECRET_TYPES]


# The replay window's bounds. Past 48 h the event-id memory (DEDUP_TTL) is gone, so an older
# limit would let a replay through as new; under a minute, PagerDuty's own delivery delays
# would be refused.
# The schemes each URL setting's client accepts. A value none of them can use is refused at
# start-up, naming the variable, instead of surfacing later as a worker's traceback.
_URL_SCHEMES: dict[str, tuple[str, ...]] = {
    # Broker, result backend and state: kombu, Celery's backend and redis-py all take these
    # (sentinel:// through tasks/store/redis_client.py and kombu's Sentinel transport).
    "redis_url": ("redis", "rediss", "sentinel"),
    "target_redis_url": ("redis", "rediss", "unix"),  # redis-py alone (the collector)
    "prometheus_url": ("http", "https"),
    "pagerduty_api_url": ("http", "https"),
    "pagerduty_events_url": ("http", "https"),
    "slack_api_url": ("http", "https"),
    "public_url": ("http", "https"),
    "s3_endpoint_url": ("http", "https"),
    "docker_url": ("unix", "tcp", "http", "https", "ssh"),
    "postgres_dsn": ("postgresql", "postgres"),
}


# URLs that carry credentials (PagerDuty's and Slack's tokens): https, but for a loopback host
# (the tests' fakes), instead of sending a token in clear text and failing later.
HTTPS_ONLY = ("pagerduty_api_url", "pagerduty_events_url", "slack_api_url")


def check_https(url: str) -> None:
    """Raise ValueError when `url` is plain http:// to a host that is not loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme.lower() != "http" or host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(
        f"must be https:// (it carries a token), got http:// to {host!r}; "
        "plain http is for a loopback host only"
    )


def shown_url(url: str) -> str:
    """Return `url` fit to print: its password masked (in each address of a Sentinel URL)."""
    return ";".join(maybe_sanitize_url(part, mask="***") for part in url.split(";"))


def check_url(url: str, schemes: tuple[str, ...]) -> None:
    """Raise ValueError saying what is wrong with `url` for a client taking `schemes`.

    The messages never repeat the value: a mistyped URL may carry its password anywhere.
    """
    scheme = _scheme(url, schemes)
    if scheme == SENTINEL_SCHEME:
        parse_sentinel_url(url)
        return
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - urllib checks the port only when asked for it
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    if scheme == "unix":
        if not parts.path:
            raise ValueError("no socket path after unix://")
    elif not parts.hostname:
        raise ValueError(f"no host after {scheme}://")
    if scheme in ("redis", "rediss"):
        # redis-py reads a path it cannot parse as database 0; Celery's backend fails on it.
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise ValueError(
                f"the database {database!r} is not a number ({scheme}://host:port/NUMBER)"
            )


S3_SCHEME = "s3://"
# S3's bucket naming rules (3-63 of a-z 0-9 . -, a letter or digit at each end); a prefix of
# safe key characters, so that no label text or odd byte can ever shape a key.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_S3_REGION = re.compile(r"^[a-z]{2}(-[a-z0-9]+){1,3}\Z")


def parse_bundle_store(value: str) -> tuple[str, str]:
    """Return (bucket, prefix) of an s3://bucket[/prefix] bundle store; ValueError naming what
    is wrong (the prefix has no leading or trailing slash; "" for the bucket's root)."""
    if not value.startswith(S3_SCHEME):
        raise ValueError(
            f"expected s3://bucket/prefix (or nothing, for RESPONDER_BUNDLE_DIR), got {value!r}"
        )
    bucket, _, prefix = value[len(S3_SCHEME) :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(
            f"bucket {bucket!r} is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-', "
            "starting and ending with a letter or digit)"
        )
    parts = [part for part in prefix.split("/") if part]
    for part in parts:
        if not _PREFIX_PART.match(part):
            raise ValueError(
                f"prefix part {part!r} must be letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
    return bucket, "/".join(parts)


def check_postgres_dsn(dsn: str) -> None:
    """Raise ValueError saying what is wrong with a libpq URL or key=value string."""
    if "://" in dsn:
        _scheme(dsn, _URL_SCHEMES["postgres_dsn"])
    from psycopg import ProgrammingError  # the collector's own parser, imported when needed
    from psycopg.conninfo import conninfo_to_dict

    try:
        options = conninfo_to_dict(dsn)
    except ProgrammingError as exc:
        message = str(exc).strip()
        if not message.startswith("invalid connection option"):
            # libpq quotes the text it stopped at, which may be the password: not shown.
            message = re.sub(r'"[^"]*"', lambda m: m[0] if m[0] == '"="' else '"..."', message)
        raise ValueError(f"not a PostgreSQL connection string: {message}") from None
    # libpq takes any port text here and fails only when connecting, in the collector.
    ports = [port.strip() for port in str(options.get("port", "")).split(",")]
    if not all(port.isdigit() for port in ports if port):
        raise ValueError("the port is not a number")


def _scheme(url: str, schemes: tuple[str, ...]) -> str:
    """Return the scheme of `url`, lower-cased; ValueError when it is not one of `schemes`."""
    named = [f"{scheme}://" for scheme in schemes]
    expected = " or ".join(named) if len(named) < 3 else f"{', '.join(named[:-1])} or {named[-1]}"
    if "://" not in url:
        raise ValueError(f"not a URL: expected one starting with {expected}")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in schemes:
        raise ValueError(f"scheme {scheme + '://'!r} is not one of {expected}")
    return scheme


def settings_from_env(environ: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping; unset variables keep their defaults."""
    types = {f.name: f.type for f in fields(Settings)}
    environ = _with_secret_files(environ)
    values: dict[str, object] = {}
    for variable, name in _ENV.items():
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        kind = types[name]
        try:
            values[name] = (
                _number(raw, kind, *RANGES[name]) if name in RANGES else _convert(raw, kind)
            )
            if name in _CHOICES and raw not in _CHOICES[name]:
                raise ValueError(f"expected one of {', '.join(_CHOICES[name])}, got {raw!r}")
            if name == "postgres_dsn":
                check_postgres_dsn(raw)
            elif name in _URL_SCHEMES:
                check_url(raw, _URL_SCHEMES[name])
            elif name == "bundle_store":
                parse_bundle_store(raw)
            elif name == "s3_region" and not _S3_REGION.match(raw):
                raise ValueError(f"not a region name (like eu-west-2), got {raw!r}")
            if name in HTTPS_ONLY:
                check_https(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable}: {exc}") from None
    basic = values.get("alertmanager_basic_auth")
    if isinstance(basic, Secret) and ":" not in basic.reveal():
        raise SettingsError("RESPONDER_ALERTMANAGER_BASIC_AUTH: expected user:password")
    if is_sentinel_url(str(values.get("redis_url", ""))) and not values.get(
        "redis_sentinel_master"
    ):
        raise SettingsError(
            "RESPONDER_REDIS_SENTINEL_MASTER: needed with a sentinel:// RESPONDER_REDIS_URL "
            "(the name of the master the Sentinels monitor)"
        )
    keys = [values.get(n) for n in ("s3_access_key_id", "s3_secret_access_key")]
    if bool(keys[0]) != bool(keys[1]):
        raise SettingsError(
            "RESPONDER_S3_ACCESS_KEY_ID and RESPONDER_S3_SECRET_ACCESS_KEY: set both or neither "
            "(neither: boto3 finds credentials itself, e.g. AWS_ACCESS_KEY_ID)"
        )
    # (A claim lease shorter than one tick's work would take live claims back and act twice:
    # RANGES starts it at MIN_CLAIM_LEASE_SECONDS.)
    settings = Settings(**values)  # type: ignore[arg-type]
    limits = (
        settings.task_soft_time_limit_seconds,
        settings.task_time_limit_seconds,
        settings.visibility_timeout_seconds,
    )
    if not limits[0] < limits[1] < limits[2]:
        raise SettingsError(
            "need RESPONDER_TASK_SOFT_TIME_LIMIT < RESPONDER_TASK_TIME_LIMIT < "
            f"RESPONDER_VISIBILITY_TIMEOUT, got {limits[0]} < {limits[1]} < {limits[2]}: "
            "a late-acked task running past the visibility timeout runs twice"
        )
    if settings.sla_audit_grace_seconds <= settings.task_time_limit_seconds + AUDIT_RETRY_WAIT:
        raise SettingsError(
            "need RESPONDER_SLA_AUDIT_GRACE_SECONDS > RESPONDER_TASK_TIME_LIMIT + "
            f"{AUDIT_RETRY_WAIT:g}, got {settings.sla_audit_grace_seconds:g} <= "
            f"{settings.task_time_limit_seconds} + {AUDIT_RETRY_WAIT:g}: the SLA auditor would "
            "queue again actions that are still running or waiting to retry"
        )
    return settings


def _with_secret_files(environ: Mapping[str, str]) -> Mapping[str, str]:
    """Return `environ` with each secret given as RESPONDER_<NAME>_FILE read into RESPONDER_<NAME>.

    Errors name the variables and the path, never what the file holds.
    """
    read: dict[str, str] = {}
    for variable in secret_variables():
        path = environ.get(variable + FILE_SUFFIX, "")
        if not path:
            continue
        if environ.get(variable):
            raise SettingsError(
                f"{variable} and {variable}{FILE_SUFFIX}: both are set; set one of them "
                "(the value, or the path of a file holding it)"
            )
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise SettingsError(
                f"{variable}{FILE_SUFFIX}: cannot read {path!r}: {reason}"
            ) from None
        # `echo secret > file` and editors end the file with a newline that is no part of it.
        read[variable] = text.rstrip("\r\n")
    return {**environ, **read} if read else environ


def _number(raw: str, kind: object, low: float, high: float, what: str) -> float | int:
    """Return `raw` as the setting's number; ValueError with the sentence when it is not one
    from `low` to `high` (NaN and infinity are not)."""
    refusal = ValueError(f"must be {what} from {low:g} to {high:g}, got {raw!r}")
    try:
        value: float | int = int(raw) if kind == "int" else float(raw)
    except ValueError:
        raise refusal from None
    if not low <= value <= high:  # NaN fails every comparison
        raise refusal
    return value


def _convert(raw: str, kind: object) -> object:
    if kind == "Secret":
        return Secret(raw)
    if kind == "tuple[Secret, ...]":
        # Comma-separated: two secrets while a PagerDuty subscription's secret rotates.
        return tuple(Secret(part.strip()) for part in raw.split(",") if part.strip())
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected 1 or 0, got {raw!r}")
    if kind == "Path":
        return Path(raw)
    if kind == "float":
        return float(raw)
    if kind == "int":
        return int(raw)
    return raw
