"""E-mail each named approver their own approval link when proposals are made, once.

The page link in PagerDuty notes and Slack lets anyone who reads them read the incident; it
approves nothing. To approve from the page a person opens a link signed for them
(`tasks.evidence.approval_links`), and this is how they get one: one e-mail per approver
per set of proposals, through the e-mail machinery's once-records (`send_once`), so a
retried task or a second copy of it sends nobody a second link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from tasks.evidence.approval_links import approval_link, identity_of
from tasks.gateways.email_compose import Mail
from tasks.notes import lines
from tasks.notify.email_send import send_once
from tasks.runtime import Runtime
from tasks.store.proposals import WAITING, Proposal, ProposalStore
from triage.policy import Action

KIND = "approval_link"


def link_minutes(rt: Runtime) -> int:
    """Return how long an approval link lasts: the setting, else the policy's proposal_ttl."""
    if rt.settings.approval_link_minutes:
        return rt.settings.approval_link_minutes
    return max(1, int(rt.policy.actions.proposal_ttl.total_seconds() // 60))


def named_emails(action: Action) -> list[str]:
    """Return the e-mail addresses an action's approvers name (ids and kinds have none)."""
    found = []
    for approver in action.approvers:
        try:
            found.append(identity_of(approver))
        except ValueError:
            continue  # a PagerDuty user id, "anyone" or "assigned": no address to send to
    return list(dict.fromkeys(found))


def recipients(rt: Runtime, waiting: Sequence[Proposal]) -> dict[str, list[Proposal]]:
    """Return each named approver's address and the waiting proposals they may approve."""
    found: dict[str, list[Proposal]] = {}
    for proposal in waiting:
        action = rt.policy.actions.catalog.get(proposal.action)
        if action is None or not action.needs_approval:
            continue
        for email in named_emails(action):
            found.setdefault(email, []).append(proposal)
    return found


def send_links(rt: Runtime, incident_id: str, proposal_ids: Sequence[str], now: datetime) -> str:
    """E-mail each named approver of the waiting proposals their own link, once per set."""
    secret = rt.settings.link_secret.reveal()
    if not secret:
        return "no approval links: RESPONDER_LINK_SECRET is not set"
    store = ProposalStore(rt.redis)
    waiting = [
        p
        for p in (store.get(i) for i in proposal_ids)
        if p is not None and p.status == WAITING and p.incident_id == incident_id
    ]
    people = recipients(rt, waiting)
    if not people:
        return "no approval links: no waiting proposal names an approver's e-mail"
    # The set's key: the same proposals give the same once-records on every retry.
    digest = hashlib.sha256("\0".join(sorted(p.id for p in waiting)).encode()).hexdigest()[:12]
    minutes = link_minutes(rt)
    expires = int((now + timedelta(minutes=minutes)).timestamp())
    sent = 0
    for email, theirs in people.items():
        link = approval_link(rt.settings.public_url, incident_id, email, expires, secret)
        facts = {
            "incident_id": incident_id,
            "who": email,
            "link": link,
            "minutes": minutes,
            "proposals": [
                {"id": p.id, "action": p.action, "target": p.target, "why": p.why} for p in theirs
            ],
        }
        text, html = rt.voice.email(KIND, **facts)
        subject = rt.voice.email_subject(KIND, title=incident_id, count=len(theirs))
        # No incident id on the Mail: its history line would name the address on the page's
        # timeline, and who may approve is never shown there. One line below says how many.
        mail = Mail(KIND, f"{incident_id}-{digest}-{email}", (email,), subject, text, html)
        if not send_once(rt, mail, now).endswith("already sent"):
            sent += 1
    if sent:
        what = lines.timeline("approval_links_sent", count=sent)
        rt.incidents.log(incident_id, what, "responder", now)
    return f"approval links: {sent} sent, {len(people) - sent} sent before"
