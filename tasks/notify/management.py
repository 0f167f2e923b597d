"""Management, beside PagerDuty: "P0 incidents: Immediate notification", "P1 incidents: Within
30 minutes", "P2/P3 incidents: Next business day summary".

The SLA clock decides when (its `notify_management` deadline, and the summary's at the next
business opening); `tasks.sla` posts the PagerDuty note and responder request as before, and
hands the same words to `tell`, which sends them down every management channel: e-mail here.

The seam for Slack: a channel is a function `(rt, notice, now) -> str` that sends a Notice
exactly once (by `notice.kind` + `notice.key`) and raises to be retried; Slack's gateway adds
its own to CHANNELS. A failing channel does not keep the others from being tried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasks.evidence.links import bundle_location
from tasks.gateways.email import EmailUnavailable
from tasks.gateways.email_compose import Mail
from tasks.notify.email_send import send_once
from tasks.pagerduty.responders import describe_targets
from tasks.runtime import Runtime
from tasks.store.sla_clock import Deadline
from triage.communication import MANAGEMENT, MANAGEMENT_SUMMARY, recipients
from triage.models import Priority
from triage.report import IncidentTimes, PriorityMetrics


@dataclass(frozen=True)
class Notice:
    """What management is told, in every form a channel may want: its facts and its words."""

    kind: str  # management | management_summary
    key: str  # with kind: the once-record and the e-mail's Message-ID
    priority: str  # P0..P3, or "P2/P3" for the summary
    subject: str
    text: str  # the PagerDuty note's words
    html: str
    incident_id: str = ""
    title: str = ""


Channel = Callable[[Runtime, Notice, datetime], str]


def email_channel(rt: Runtime, notice: Notice, now: datetime) -> str:
    """Send a notice to management's e-mail addresses in the policy, once."""
    to = recipients(notice.kind, notice.priority.split("/")[0], rt.policy)
    mail = Mail(
        notice.kind,
        notice.key,
        to,
        notice.subject,
        notice.text,
        notice.html,
        notice.priority,
        notice.incident_id,
    )
    return send_once(rt, mail, now)


CHANNELS: tuple[Channel, ...] = (email_channel,)


def tell(rt: Runtime, notice: Notice, now: datetime) -> list[str]:
    """Send a notice down every management channel; raise the first failure after all tried."""
    done, failure = [], None
    for channel in CHANNELS:
        try:
            done.append(channel(rt, notice, now))
        except Exception as exc:  # raised again below, after the others are tried
            failure = failure or exc
    if failure is not None:
        raise failure
    return done


def notification(
    rt: Runtime, deadline: Deadline, now: datetime, times: IncidentTimes | None = None
) -> Notice:
    """Return management's notice of one incident: what the PagerDuty note says (whom a
    responder request calls in), or its figures when it resolved before the notification fell
    due (`times`). Known before PagerDuty is asked: the e-mail never waits on PagerDuty."""
    title = deadline.title or deadline.incident_id
    outcome = "resolved" if times is not None else "notify"
    key = f"{deadline.incident_id}@{deadline.due}"  # once per incident and deadline
    requested = rt.policy.pagerduty.management
    priority = Priority(deadline.priority)
    called = (
        describe_targets(requested.targets)
        if requested is not None and priority in requested.request_for
        else ""
    )
    facts: dict[str, Any] = {
        "priority": deadline.priority,
        "title": title,
        "incident_id": deadline.incident_id,
        "called": called,
        "outcome": outcome,
        "span": str(rt.policy.sla[priority].notify_management),
        "moments": rt.voice.desk_moments(times) if times is not None else [],
        "bundle": bundle_location(rt.settings, deadline.run_id or deadline.incident_id, now),
    }
    text, html = rt.voice.email(MANAGEMENT, **facts)
    subject = rt.voice.email_subject(
        MANAGEMENT, priority=deadline.priority, title=title, outcome=outcome
    )
    return Notice(
        MANAGEMENT, key, deadline.priority, subject, text, html, deadline.incident_id, title
    )


def summary(
    rt: Runtime,
    deadline: Deadline,
    note: str,
    since: datetime,
    until: datetime,
    rows: Sequence[PriorityMetrics],
    incidents: Sequence[dict[str, Any]],
) -> Notice:
    """Return the next business day's summary as management's notice: one for the period."""
    priorities = [str(p) for p in rt.policy.summarised()]
    facts = {
        "note": note,
        "since": since,
        "until": until,
        "rows": list(rows),
        "incidents": list(incidents),
        "priorities": priorities,
    }
    text, html = rt.voice.email(MANAGEMENT_SUMMARY, **facts)
    subject = rt.voice.email_subject(MANAGEMENT_SUMMARY, count=len(incidents))
    return Notice(
        MANAGEMENT_SUMMARY, deadline.incident_id, "/".join(priorities), subject, text, html
    )


@contextmanager
def told_first(rt: Runtime, notice: Notice, now: datetime) -> Iterator[tuple[str, ...]]:
    """Tell management `notice` by its channels (e-mail), then do the PagerDuty side inside.

    Yields the addresses management's e-mail went to (none when it failed or the policy has
    none), so the PagerDuty note does not ask a person to tell management what it was told.
    An e-mail failure is raised after the PagerDuty side is done, so the task retries the
    e-mail (the note and the request are once each) without the one waiting on the other.
    """
    failure: EmailUnavailable | None = None
    try:
        tell(rt, notice, now)
    except EmailUnavailable as exc:
        failure = exc
    emailed = recipients(notice.kind, notice.priority.split("/")[0], rt.policy)
    yield () if failure is not None else emailed
    if failure is not None:
        raise failure
