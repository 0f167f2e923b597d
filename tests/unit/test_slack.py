"""Slack's pure parts: the signature check, click parsing, Block Kit building, channel choice
per priority and market state, and when a 429 is waited out in the client or by Celery."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from tasks.gateways.slack import ShortRateLimitRetryHandler
from tasks.gateways.slack_blocks import (
    SECTION_LIMIT,
    TEXT_LIMIT,
    build,
    marker,
    marker_of,
    plain,
    proposal_buttons,
    sections,
)
from tasks.notes.voice import Voice, slack_escape
from tasks.retries import decide
from triage.communication import channels_for
from triage.policy import builtin
from webhooks.slack import parse_click, signature_problem

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000


def signed(body: bytes, at: int = NOW, secret: str = SECRET) -> tuple[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{at}:".encode() + body, hashlib.sha256).hexdigest()
    return str(at), f"v0={digest}"


BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"


@pytest.mark.parametrize(
    ("stamp", "signature", "now", "problem"),
    [
        (*signed(BODY), NOW, None),
        (*signed(BODY), NOW + 299, None),
        (*signed(BODY), NOW + 301, "stale request"),
        (*signed(BODY), NOW - 301, "stale request"),  # from the future: a clock or a replay
        (signed(BODY)[0], signed(BODY, secret="other")[1], NOW, "bad signature"),
        (signed(BODY)[0], signed(BODY + b"x")[1], NOW, "bad signature"),
        (str(NOW + 1), signed(BODY)[1], NOW, "bad signature"),  # the timestamp is signed too
        (None, signed(BODY)[1], NOW, "missing"),
        (str(NOW), None, NOW, "missing"),
        ("soon", signed(BODY)[1], NOW, "not a number"),
    ],
)
def test_a_slack_request_counts_only_when_signed_with_the_secret_within_five_minutes(
    stamp: str | None, signature: str | None, now: int, problem: str | None
) -> None:
    found = signature_problem(BODY, stamp, signature, SECRET, now)
    assert (found is None) if problem is None else (problem in (found or ""))


def click_body(**changes: object) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0DANA", "username": "dana"},
        "channel": {"id": "C0INC"},
        "message": {"ts": "1.2", "thread_ts": "1.1"},
        "actions": [{"action_id": "approve", "block_id": "proposal:act-1", "value": "act-1"}],
    }
    payload.update(changes)
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_click_names_its_action_proposal_user_and_message() -> None:
    assert parse_click(click_body()) == {
        "action": "approve", "proposal_id": "act-1", "block": "proposal:act-1",
        "user": "U0DANA", "user_name": "dana", "channel": "C0INC", "message_ts": "1.2",
        "thread_ts": "1.1",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"payload=not-json", "expected a form field payload"),
        (b"other=1", "expected a form field payload"),
        (click_body(type="view_submission"), "only block_actions"),
        (click_body(actions=[]), "no action"),
        (click_body(actions=[{"action_id": "run", "block_id": "proposal:a", "value": "a"}]),
         "unknown action_id"),
        (click_body(actions=[{"action_id": "approve", "block_id": "proposal:a", "value": "b"}]),
         "names no proposal"),
        (click_body(user={}), "no user"),
        (click_body(user={"id": "U1\ud800"}),
         "(at user.id): not valid Unicode: holds a lone UTF-16 surrogate"),
        (b"payload=" + b"%5B" * 5000, "nests deeper than 32 levels"),
    ],
)  # fmt: skip
def test_a_click_that_is_not_one_of_our_buttons_is_refused(body: bytes, problem: str) -> None:
    assert problem in str(parse_click(body))


def test_a_message_is_mrkdwn_sections_with_a_plain_fallback_ending_in_its_marker() -> None:
    message = build("PABC/parent", "#eafix-incidents", "*[P0] Down &lt;now&gt;*\n<https://x|link>")
    assert message.blocks == [
        {"type": "section",
         "text": {"type": "mrkdwn", "text": "*[P0] Down &lt;now&gt;*\n<https://x|link>"}},
    ]  # fmt: skip
    assert message.text == "[P0] Down &lt;now&gt;\nlink (https://x)\n[ref slack:PABC/parent]"
    assert marker_of(message.text) == "PABC/parent"
    assert marker_of("a message someone else wrote") is None


def test_long_text_is_cut_into_sections_under_slacks_limits() -> None:
    text = "\n".join(f"line {n} " + "x" * 90 for n in range(200))
    blocks = sections(text)
    assert len(blocks) > 1
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks)
    assert "\n".join(b["text"]["text"] for b in blocks) == text
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in sections("y" * 7000))
    huge = build("k", "#c", "z\n" * 40_000)
    assert len(huge.blocks) <= 50 and len(huge.text) <= TEXT_LIMIT
    assert huge.text.endswith(marker("k"))


def test_a_proposal_has_approve_and_deny_buttons_naming_it() -> None:
    (block,) = proposal_buttons("act-7", "stop-trading", "gui-gateway")
    assert block["block_id"] == "proposal:act-7"
    approve, deny = block["elements"]
    assert (approve["action_id"], approve["value"], approve["style"]) == (
        "approve",
        "act-7",
        "primary",
    )
    assert (deny["action_id"], deny["value"], deny["style"]) == ("deny", "act-7", "danger")
    assert "stop-trading" in approve["confirm"]["text"]["text"]


@pytest.mark.parametrize(
    ("priority", "market_open", "channels"),
    [
        # P0 is "all hands": #eafix-dev hears of it too, the desk only while the market trades.
        ("P0", True, {"incidents", "trading", "dev"}),
        ("P0", False, {"incidents", "dev"}),
        ("P1", True, {"incidents", "trading", "dev"}),
        ("P1", False, {"incidents", "dev"}),
        ("P2", True, {"incidents"}),
        ("P3", False, {"incidents"}),
    ],
)
def test_the_runbook_channels_hear_of_an_incident_by_priority_and_market_state(
    priority: str, market_open: bool, channels: set[str]
) -> None:
    assert set(channels_for(builtin().slack, priority, market_open)) == channels


def test_a_429_is_waited_for_as_long_as_retry_after_says() -> None:
    verdict = decide(429, {"Retry-After": "30"}, 1)
    assert (verdict.retry, verdict.delay) == (True, 30.0)
    assert decide(500, {}, 2, 1.0).delay == 2.0


@pytest.mark.parametrize(
    ("retry_after", "in_client"),
    [("1", True), ("0", True), ("2", False), ("30", False), ("soon", False)],
)
def test_only_a_short_429_is_waited_out_in_the_client_a_long_one_goes_back_to_celery(
    retry_after: str, in_client: bool
) -> None:
    handler = ShortRateLimitRetryHandler(max_retry_count=1)
    request = HttpRequest(method="POST", url="https://slack/api/chat.postMessage", headers={})
    response = HttpResponse(status_code=429, headers={"Retry-After": [retry_after]})
    assert handler.can_retry(state=RetryState(), request=request, response=response) is in_client
    served = HttpResponse(status_code=500, headers={})
    assert handler.can_retry(state=RetryState(), request=request, response=served) is False


def test_mrkdwn_escapes_what_slack_reads_as_markup() -> None:
    assert slack_escape("a < b & c > d") == "a &lt; b &amp; c &gt; d"
    reply = Voice.of(builtin()).slack_note("[P1] <script> & more\nbody <@U1>")
    assert reply == "*[P1] &lt;script&gt; &amp; more*\nbody &lt;@U1&gt;"
    assert plain(reply) == "[P1] &lt;script&gt; &amp; more\nbody &lt;@U1&gt;"


def test_slacks_token_and_signing_secret_are_secrets_redaction_knows() -> None:
    from tasks.settings import settings_from_env

    settings = settings_from_env(
        {"RESPONDER_SLACK_TOKEN": "xoxb-1-abc", "RESPONDER_SLACK_SIGNING_SECRET": "sign-xyz"}
    )
    assert "xoxb-1-abc" not in repr(settings) and "sign-xyz" not in repr(settings)
    assert {"xoxb-1-abc", "sign-xyz"} <= set(settings.secrets())


def test_an_alerts_mention_or_link_stays_escaped_in_the_fallback_text_too() -> None:
    # The fallback `text` is mrkdwn as well (Slack parses it, and notifications show it):
    # an alert title's <!channel> or <https://evil|link> must not come alive there.
    reply = Voice.of(builtin()).slack_note("[P1] <!channel> down\nsee <https://evil.example|fix>")
    message = build("PABC/note:1", "#eafix-incidents", reply)
    assert "<!channel>" not in message.text and "<https://evil.example" not in message.text
    assert "&lt;!channel&gt;" in message.text
    assert "(https://evil.example)" not in message.text
