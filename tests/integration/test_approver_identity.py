"""Who approves, with real Redis and a real SMTP server: refusals that name nobody, the
two-person rule, and the personal approval links e-mailed once per set of proposals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import yaml

from tasks.actions import approval
from tasks.evidence.approval_links import approval_problem
from tasks.notify.approval_links import send_links
from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.fakes.smtp import SmtpServer
from triage.policy import builtin_text

DANA, LEE, KIM = "dana@eafix.example", "lee@eafix.example", "kim@eafix.example"
ALLOWED = (DANA, "PDANA01", LEE, KIM)


@pytest.fixture
def rt(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Runtime]:
    policy = yaml.safe_load(builtin_text())
    for action in policy["actions"]["catalog"]:
        if action["name"] in ("stop-trading", "resume-trading"):
            action["approvers"] = list(ALLOWED)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    yield Runtime(replace(settings, policy_path=str(path)))


class Sent:
    """The tasks an approval path sent by name, in order."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, list[Any]]] = []

    def __call__(self, name: str, args: list[Any]) -> None:
        self.tasks.append((name, args))

    def names(self) -> list[str]:
        return [name.rsplit(".", 1)[1] for name, _ in self.tasks]


def everything_said(rt: Runtime, incident: str, proposal_id: str, sent: Sent) -> str:
    """Return every text a refusal leaves: answers, the record, the history, the note's task."""
    record = rt.redis.get(f"responder:action:{proposal_id}") or b""
    history = json.dumps(rt.incidents.history(incident))
    return record.decode() + history + json.dumps(sent.tasks)


@pytest.mark.parametrize("via", ["incident page", "note", "slack", "cli", "workflow"])
def test_a_refused_approval_says_not_allowed_and_names_nobody_who_is(rt: Runtime, via: str) -> None:
    sent = Sent()
    if via == "workflow":  # /actions and a note's /run: propose and approve at once
        outcome = approval.run(rt, "stop-trading", None, "PREFUSE1", "eve@eafix.example", via, sent)
        proposal_id = outcome.proposal_id
    else:
        proposal_id = approval.propose(rt, "stop-trading", None, "PREFUSE1", "responder").id
        outcome = approval.approve(rt, proposal_id, "eve@eafix.example", via, sent)
    assert outcome.status == "refused"
    assert outcome.message.startswith("refused: not allowed: eve@eafix.example may not approve")
    denied = approval.deny(rt, proposal_id, "eve@eafix.example", via)
    said = outcome.message + denied.message + everything_said(rt, "PREFUSE1", proposal_id, sent)
    assert "not allowed" in denied.message
    for who in ALLOWED:
        assert who not in said, who
    assert sent.names() == ["action_refused"]


def test_resuming_trading_waits_for_a_second_different_person_then_runs_once(
    rt: Runtime,
) -> None:
    sent = Sent()
    proposal = approval.propose(rt, "resume-trading", None, "PTWO0001", DANA)  # Dana proposes
    first = approval.approve(rt, proposal.id, LEE, "incident page", sent)
    assert first.status == "partly"
    assert first.message.startswith("approved 1 of 2: resume-trading on gui-gateway runs when")
    assert sent.names() == ["action_waits"]  # the note: approved 1 of 2, nothing ran
    again = approval.approve(rt, proposal.id, LEE.upper(), "slack", sent)  # Lee again
    assert again.status == "already" and sent.names() == ["action_waits"]
    author = approval.approve(rt, proposal.id, DANA, "note", sent)  # the author as second
    assert author.status == "refused" and "author never counts" in author.message
    assert approval.proposals(rt).get(proposal.id).status == "proposed"  # type: ignore[union-attr]
    # Dana again, by her PagerDuty id: one person holds both, so it does not count.
    other_name = approval.approve(rt, proposal.id, "PDANA01", "note", sent)
    assert other_name.status == "refused" and "the way the first did" in other_name.message
    second = approval.approve(rt, proposal.id, KIM, "incident page", sent)
    assert second.status == "approved"
    record = approval.proposals(rt).get(proposal.id)
    assert record is not None and record.approvals == [LEE, KIM]
    assert record.approved_by == f"{LEE} and {KIM}"
    assert sent.names() == ["action_waits", "action_refused", "action_refused", "act"]
    whats = [e["what"] for e in rt.incidents.history("PTWO0001")]
    assert any("approved 1 of 2: resume-trading" in w for w in whats)


def test_a_run_counts_its_author_as_the_first_of_two_and_never_as_the_second(
    rt: Runtime,
) -> None:
    sent = Sent()
    ran = approval.run(rt, "resume-trading", None, "PTWO0002", DANA, "note", sent)
    assert ran.status == "partly" and sent.names() == ["action_waits"]
    assert approval.approve(rt, ran.proposal_id, DANA, "note", sent).status == "already"
    assert approval.approve(rt, ran.proposal_id, LEE, "cli", sent).status == "approved"
    assert sent.names() == ["action_waits", "act"]


def test_stopping_trading_runs_on_one_approval(rt: Runtime) -> None:
    sent = Sent()
    proposal = approval.propose(rt, "stop-trading", None, "PONE0001", "responder")
    assert approval.approve(rt, proposal.id, DANA, "incident page", sent).status == "approved"
    assert sent.names() == ["act"]


def test_each_named_approver_gets_their_own_link_once_per_set_of_proposals(
    rt: Runtime, mailbox: SmtpServer
) -> None:
    now = datetime.now(UTC)
    made = [
        approval.propose(rt, name, None, "PLINKS01", "responder", now, announce=False).id
        for name in ("stop-trading", "resume-trading")
    ]
    said = send_links(rt, "PLINKS01", made, now)
    assert said == "approval links: 3 sent, 0 sent before"  # Dana, Lee, Kim; PDANA01 has none
    assert send_links(rt, "PLINKS01", made, now) == "approval links: 0 sent, 3 sent before"
    assert [r.rcpt_tos for r in mailbox.received] == [(DANA,), (LEE,), (KIM,)]
    secret = rt.settings.link_secret.reveal()
    for person, received in zip((DANA, LEE, KIM), mailbox.received, strict=True):
        text = received.part("plain")
        [link] = [line for line in text.splitlines() if "/incidents/PLINKS01?" in line]
        args = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
        assert args["as"] == person  # their own identity, nobody else's
        assert (
            approval_problem("PLINKS01", person, args["until"], args["asig"], secret, now) is None
        )
        assert "stop-trading" in text and "resume-trading" in text
        assert not any(other in text for other in (DANA, LEE, KIM) if other != person)
    # The page's timeline says links went out, never to whom.
    history = json.dumps(rt.incidents.history("PLINKS01"))
    assert "personal approval links e-mailed (3 approvers)" in history
    assert not any(person in history for person in (DANA, LEE, KIM))
