"""Per-process clients built lazily from settings: Redis, the policy, PagerDuty, redaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import redis

from collectors.redact import make_redactor
from tasks.gateways.bundle_store import BundleStore, make_bundle_store
from tasks.gateways.pagerduty import PagerDutyGateway, make_gateway
from tasks.gateways.request_budget import RequestBudget
from tasks.settings import Settings
from tasks.store.dead_letters import DeadLetters
from tasks.store.deliveries import DeliveryStore, Replication
from tasks.store.incidents import IncidentStore
from tasks.store.redis_client import connect, is_sentinel_url
from tasks.store.sla_clock import SlaClock
from tasks.store.watchdog import WatchdogMarks
from triage import policy as policy_module
from triage.policy import Policy

if TYPE_CHECKING:
    from tasks.gateways.email import EmailGateway
    from tasks.gateways.slack import SlackGateway
    from tasks.notes.voice import Voice


# Sends a task by name to a queue: (name, args, queue).
SendTask = Callable[[str, list[Any], str], None]


def open_redis(settings: Settings, **options: Any) -> redis.Redis:
    """Return a new client of the responder's own Redis (through Sentinel when configured)."""
    return connect(
        settings.redis_url,
        master=settings.redis_sentinel_master,
        sentinel_password=settings.redis_sentinel_password.reveal(),
        **options,
    )


# The state client's socket timeouts. On one Redis, generous: a slow reply (a fork for a
# snapshot, a storm) must not turn into 503s. Through Sentinel, short: after a failover each
# process's pooled connections to the cut-off primary each wait this long on first use
# (respond tasks held the urgent worker's slots 5 s each in the failover bench), and the
# Sentinels name the new primary by then. WAIT blocks up to RESPONDER_REDIS_WAIT_MS on top.
STATE_TIMEOUTS = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}
SENTINEL_STATE_TIMEOUTS = {"socket_timeout": 2.0, "socket_connect_timeout": 1.0}


def state_timeouts(settings: Settings) -> dict[str, float]:
    """Return the socket timeouts of the state client (see STATE_TIMEOUTS), WAIT included."""
    chosen = SENTINEL_STATE_TIMEOUTS if is_sentinel_url(settings.redis_url) else STATE_TIMEOUTS
    waits = settings.redis_wait_ms / 1000 if settings.redis_wait_replicas else 0.0
    return {**chosen, "socket_timeout": chosen["socket_timeout"] + waits}


def load_policy(settings: Settings) -> Policy:
    """Return the policy file named by settings, or the built-in runbook policy."""
    if settings.policy_path:
        return policy_module.load_file(settings.policy_path)
    return policy_module.builtin()


class Runtime:
    """What tasks and the receiver share in one process; nothing connects until first use."""

    def __init__(self, settings: Settings, send_task: SendTask | None = None) -> None:
        self.settings = settings
        # Given where a Celery app is at hand (a worker, the receiver, the CLI's approvals);
        # None elsewhere, where messages are not queued.
        self._send_task = send_task

    @property
    def send_task(self) -> SendTask | None:
        """Return the sender of tasks by name, or None where no messages are queued."""
        return self._send_task

    @cached_property
    def redis(self) -> redis.Redis:
        """Return the Redis client for state (deliveries, dedup, effects)."""
        return open_redis(self.settings, **state_timeouts(self.settings))

    @cached_property
    def deliveries(self) -> DeliveryStore:
        """Return the delivery log."""
        replication = Replication(self.settings.redis_wait_replicas, self.settings.redis_wait_ms)
        return DeliveryStore(
            self.redis, timedelta(days=self.settings.delivery_retention_days), replication
        )

    @cached_property
    def dead_letters(self) -> DeadLetters:
        """Return the dead-letter set of work that failed for good."""
        return DeadLetters(self.redis)

    @cached_property
    def incidents(self) -> IncidentStore:
        """Return the incident records kept from PagerDuty webhooks."""
        return IncidentStore(self.redis)

    @cached_property
    def clock(self) -> SlaClock:
        """Return the SLA deadline index."""
        return SlaClock(self.redis)

    @cached_property
    def watchdog(self) -> WatchdogMarks:
        """Return the Watchdog alert's marks: last arrival, the page of a silence."""
        return WatchdogMarks(self.redis)

    @cached_property
    def policy(self) -> Policy:
        """Return the loaded policy."""
        return load_policy(self.settings)

    @cached_property
    def bundles(self) -> BundleStore:
        """Return where bundles are kept: the local folder, or the S3 store every host reads."""
        return make_bundle_store(self.settings)

    @cached_property
    def voice(self) -> Voice:
        """Return the note templates of the policy, checked: a broken one fails here, loudly."""
        # Imported here: the receiver shares this class and never renders a note.
        from tasks.notes.voice import TemplateProblem, Voice

        voice = Voice.of(self.policy)
        if problems := voice.check():
            raise TemplateProblem("; ".join(problems))
        return voice

    @cached_property
    def redact(self) -> Callable[[str], str]:
        """Return the redaction function, which knows every configured secret."""
        return make_redactor(self.settings.secrets())

    @cached_property
    def pagerduty(self) -> PagerDutyGateway:
        """Return the PagerDuty gateway (REST or outbox)."""
        return make_gateway(self.settings, self.redact, self.budget, self.events_budget)

    @cached_property
    def slack(self) -> SlackGateway:
        """Return the Slack gateway (Web API, or the outbox without a bot token)."""
        # Imported here: the receiver shares this class and never loads slack_sdk.
        from tasks.gateways.slack import make_slack_gateway

        return make_slack_gateway(self.settings, self.redact)

    @cached_property
    def email(self) -> EmailGateway:
        """Return the e-mail gateway (SMTP, or the outbox without a host)."""
        from tasks.gateways.email import make_email_gateway  # the receiver never sends e-mail

        return make_email_gateway(self.settings, self.redact)

    @cached_property
    def budget(self) -> RequestBudget:
        """Return PagerDuty's REST request budget: 960 a minute, P2/P3 up to the policy's share."""
        share = self.policy.storm.routine_budget_share
        return RequestBudget(self.redis, "pagerduty-rest", 960, 60.0, share)

    @cached_property
    def events_budget(self) -> RequestBudget:
        """Return the Events API v2 budget: about 120 events a minute per integration key."""
        share = self.policy.storm.routine_budget_share
        return RequestBudget(self.redis, "pagerduty-events", 120, 60.0, share)
