"""The one module that talks to Slack: the Web API through `slack_sdk.WebClient`, or the outbox
(`outbox_dir/slack/`) when no bot token is set.

Retries are split between the client and Celery by what they cost and what they risk:
- a 429 whose `Retry-After` is at most a second is waited out by slack_sdk's own
  RateLimitErrorRetryHandler, once; a longer one comes back as SlackUnavailable and the task
  retries with that countdown, so the urgent worker is never held in a sleep;
- reads and `chat.update` (the same update twice is the same message) also retry a 500/503
  and a dropped connection once in the client (ServerErrorRetryHandler,
  ConnectionErrorRetryHandler);
- `chat.postMessage` never does: after a 500 nobody knows whether Slack posted, and only the
  task's retry, which first looks for the message by its marker, can tell.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from tasks.gateways.pagerduty import PagerDutyUnavailable
from tasks.gateways.slack_blocks import SlackMessage, marker_of
from tasks.settings import Settings

log = logging.getLogger(__name__)
SHORT_RETRY_AFTER = 1.0  # seconds: a 429 asking for longer goes back to Celery
HISTORY_PAGE = 200  # messages read per history lookup (Slack's maximum is 999)
TIMEOUT_SECONDS = 10
# Slack answers these with HTTP 200 and ok=false: retried as the status they stand for.
RETRYABLE_ERRORS = {"ratelimited": 429, "internal_error": 500, "fatal_error": 500}


class SlackUnavailable(PagerDutyUnavailable):
    """A Slack call failed or was held back; the message is safe to store (no secrets).

    The same contract as a PagerDuty failure (status, headers, held_back), so a Slack task
    retries, waits for its channel's pace and gives up down the same path as a note.
    """


@dataclass(frozen=True)
class Posted:
    """Where a message is: the channel's id and the message's ts."""

    channel: str
    ts: str


class SlackGateway(Protocol):
    """What the Slack tasks need from Slack."""

    paced: bool  # whether posts keep to Slack's one message per second per channel

    def post(self, message: SlackMessage, thread_ts: str = "") -> Posted:
        """Post a message (into a thread when `thread_ts` is set)."""
        ...

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """Replace the text and blocks of a message we posted."""
        ...

    def find(self, channel: str, key: str, oldest: float, thread_ts: str = "") -> Posted | None:
        """Return our message with marker `key` posted since `oldest`, or None."""
        ...

    def tell(self, channel: str, user: str, text: str, thread_ts: str = "") -> None:
        """Say something to one user only (an ephemeral message)."""
        ...


class ShortRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, for waits of at most SHORT_RETRY_AFTER seconds only."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        for name, values in response.headers.items():
            if name.lower() == "retry-after":
                try:
                    return float(values[0]) <= SHORT_RETRY_AFTER
                except (ValueError, IndexError):
                    return False
        return False


class WebApiGateway:
    """Slack's Web API through two WebClients: one that may retry (reads, updates), one that
    posts and never retries what it cannot know the outcome of."""

    paced = True  # Slack takes about one message per second per channel

    def __init__(self, writes: WebClient, reads: WebClient, redact: Callable[[str], str]) -> None:
        self.writes = writes
        self.reads = reads
        self.redact = redact

    def post(self, message: SlackMessage, thread_ts: str = "") -> Posted:
        """chat.postMessage with the blocks and the fallback text."""
        args: dict[str, Any] = {
            "channel": message.channel,
            "text": message.text,
            "blocks": message.blocks,
            "unfurl_links": False,
        }
        if thread_ts:
            args["thread_ts"] = thread_ts
        answer = self._call("chat.postMessage", lambda: self.writes.chat_postMessage(**args))
        return Posted(str(answer["channel"]), str(answer["ts"]))

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """chat.update of a message's text and blocks."""
        self._call(
            "chat.update",
            lambda: self.reads.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            ),
        )

    def find(self, channel: str, key: str, oldest: float, thread_ts: str = "") -> Posted | None:
        """Look through conversations.history (or the thread's replies) for the marker."""
        since = f"{max(oldest, 0):.6f}"
        if thread_ts:
            answer = self._call(
                "conversations.replies",
                lambda: self.reads.conversations_replies(
                    channel=channel, ts=thread_ts, oldest=since, limit=HISTORY_PAGE
                ),
            )
        else:
            answer = self._call(
                "conversations.history",
                lambda: self.reads.conversations_history(
                    channel=channel, oldest=since, limit=HISTORY_PAGE
                ),
            )
        for found in answer.get("messages") or []:
            if marker_of(str(found.get("text", ""))) == key:
                return Posted(channel, str(found["ts"]))
        return None

    def tell(self, channel: str, user: str, text: str, thread_ts: str = "") -> None:
        """chat.postEphemeral to one user."""
        args = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            args["thread_ts"] = thread_ts
        self._call("chat.postEphemeral", lambda: self.reads.chat_postEphemeral(**args))

    def _call(self, name: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except SlackApiError as exc:
            response = exc.response
            status = getattr(response, "status_code", None)
            headers = {k: str(v) for k, v in (getattr(response, "headers", {}) or {}).items()}
            error = ""
            try:
                error = str(response.get("error", "")) if response is not None else ""
            except (AttributeError, TypeError, ValueError):
                error = ""
            if status == 200 and error:  # ok=false: Slack refused it, or asks to wait
                status = RETRYABLE_ERRORS.get(error, 400)
            detail = f"HTTP {status}" + (f" {error}" if error else "")
            why = self.redact(f"Slack {name} failed: {detail}")
            raise SlackUnavailable(why, status, headers) from None
        except Exception as exc:  # network, TLS, a body that is not JSON: outcome unknown
            why = self.redact(f"Slack {name} failed: {type(exc).__name__}")
            raise SlackUnavailable(why) from None


class OutboxGateway:
    """Write each call the Web API gateway would make to a JSON file instead (no token set)."""

    paced = False  # files have no rate limit: a storm's outbox is written at once

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def post(self, message: SlackMessage, thread_ts: str = "") -> Posted:
        """Write the chat.postMessage call; its ts is made up, unique and in time order."""
        ts = f"{time.time():.6f}"
        body: dict[str, Any] = {
            "channel": message.channel,
            "text": message.text,
            "blocks": message.blocks,
        }
        if thread_ts:
            body["thread_ts"] = thread_ts
        self._write("chat.postMessage", {**body, "ts": ts})
        return Posted(message.channel, ts)

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """Write the chat.update call."""
        self._write(
            "chat.update",
            {"channel": channel, "ts": ts, "text": message.text, "blocks": message.blocks},
        )

    def find(self, channel: str, key: str, oldest: float, thread_ts: str = "") -> Posted | None:
        """Return the post with marker `key` the outbox holds, or None."""
        for path in sorted(self.directory.glob("*-chat.postMessage-*.json")):
            call = json.loads(path.read_text(encoding="utf-8"))["json"]
            if call.get("channel") == channel and marker_of(call.get("text", "")) == key:
                return Posted(channel, str(call["ts"]))
        return None

    def tell(self, channel: str, user: str, text: str, thread_ts: str = "") -> None:
        """Write the chat.postEphemeral call."""
        body = {"channel": channel, "user": user, "text": text}
        self._write(
            "chat.postEphemeral", {**body, **({"thread_ts": thread_ts} if thread_ts else {})}
        )

    def _write(self, method: str, body: dict[str, Any]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        target = self.directory / f"{now:%Y%m%dT%H%M%S.%fZ}-{method}-{os.getpid()}.json"
        call = {"method": method, "json": body, "written_at": now.isoformat()}
        partial = target.with_suffix(".part")  # write then rename: never half a file
        partial.write_text(json.dumps(call, indent=2), encoding="utf-8")
        partial.rename(target)
        # What `make run` shows of Slack without a token: where it went, its first line.
        first = str(body.get("text", "")).splitlines()[0] if body.get("text") else ""
        log.info("Slack outbox: %s %s: %s (%s)", method, body.get("channel"), first[:120], target)
        return target


def outbox_directory(settings: Settings) -> Path:
    """Return where Slack calls are written without a token."""
    return settings.outbox_dir / "slack"


def make_slack_gateway(settings: Settings, redact: Callable[[str], str]) -> SlackGateway:
    """Return the Web API gateway when a bot token is set, else the outbox."""
    if not settings.slack_token:
        return OutboxGateway(outbox_directory(settings))
    context = ssl.create_default_context(cafile=settings.slack_ca_file or None)
    token = settings.slack_token.reveal()
    short_429 = ShortRateLimitRetryHandler(max_retry_count=1)
    reads_retry: list[RetryHandler] = [
        ConnectionErrorRetryHandler(max_retry_count=1),
        short_429,
        ServerErrorRetryHandler(max_retry_count=1),
    ]

    def client(handlers: list[RetryHandler]) -> WebClient:
        return WebClient(
            token=token,
            base_url=settings.slack_api_url,
            ssl=context,
            timeout=TIMEOUT_SECONDS,
            retry_handlers=handlers,
        )

    return WebApiGateway(client([short_429]), client(reads_retry), redact)
