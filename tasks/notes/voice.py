"""Every text the responder writes, rendered from the Jinja2 templates in `templates/`.

The code decides what to say (the facts, as template variables); the templates say it. A
policy's `notes.templates` directory may override any template by its file name. A template
that names a variable its note does not have is an error when the policy is checked and when
a worker starts, never a blank in a note at 3 a.m.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache
from jinja2 import meta

from collectors.contract import Evidence, Status
from tasks.notes.bundle_view import check_counts, index_view
from tasks.notes.markers import clip
from tasks.notes.quoting import quote_commands
from tasks.notes.vocabulary import status_rank
from triage import note_commands
from triage.classify import most_severe
from triage.incident_status import StatusNow
from triage.models import Alert, Classification, Incident, ListedAlert, Priority
from triage.note_commands import Malformed
from triage.policy import DEFAULT_RULE, SEVERITY_FALLBACK_RULE, Policy, format_duration
from triage.rejudge import Change, Judgement
from triage.report import Compliance, IncidentTimes, PriorityMetrics
from triage.sla import Deadlines, deadlines, next_market_change

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
# The policy setting that chose a priority when no rule matched, by the classification's rule.
_FALLBACKS = {SEVERITY_FALLBACK_RULE: "severity_fallback", DEFAULT_RULE: "default_priority"}
SHOWN_LABELS = ("service", "severity", "category", "scope", "job", "instance")


class TemplateProblem(ValueError):
    """A note template that cannot be used, naming the template and what is wrong."""


@dataclass
class Voice:
    """The responder's writing: one method per text, each rendering its template."""

    policy: Policy
    overrides: str = ""  # a directory of templates that replace built-in ones by file name
    # The names each note passes its template, recorded while `check` renders the samples.
    _used: dict[str, set[str]] | None = field(default=None, init=False, repr=False)
    _env: jinja2.Environment = field(init=False, repr=False)
    _builtin: jinja2.Environment = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._builtin = _environment(jinja2.FileSystemLoader(TEMPLATES))
        self._env = self._builtin
        if self.overrides:
            self._env = _environment(
                jinja2.ChoiceLoader(
                    [jinja2.FileSystemLoader(self.overrides), jinja2.FileSystemLoader(TEMPLATES)]
                )
            )
        for env in {id(self._env): self._env, id(self._builtin): self._builtin}.values():
            env.filters["local"] = self.local  # market time, from this voice's policy
            env.filters["with_pagerduty"] = self.with_pagerduty

    @classmethod
    def of(cls, policy: Policy) -> Voice:
        """Return the voice of `policy`: its override directory, if any, before the built-ins."""
        return cls(policy, policy.note_templates)

    def render(self, name: str, **context: Any) -> str:
        """Render template `name` with `context`; raise TemplateProblem when it cannot be.

        An override that fails on facts the check's samples did not have falls back to the
        built-in template, loudly in the log: a bad override never costs a note.
        """
        if self._used is not None:
            self._used.setdefault(name, set()).update(context)
        try:
            return _quoted(name, self._env.get_template(name).render(**context))
        except jinja2.TemplateError as exc:
            problem = f"{name}: {_describe(exc)}"
            if self._env is self._builtin or self._used is not None:
                raise TemplateProblem(problem) from exc
            log.error("note template override failed, the built-in one is used: %s", problem)
        try:
            return _quoted(name, self._builtin.get_template(name).render(**context))
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"{name}: {_describe(exc)}") from exc

    def first_response(
        self,
        headline: str,
        classification: Classification,
        due: Deadlines,
        delivery_id: str,
        now: datetime,
        *,
        alerts: Sequence[ListedAlert] = (),
        truncated: int = 0,
        incident: Incident | None = None,
        security_team: str | None = None,
        security_before: bool = False,
        correlation: Mapping[str, Any] | None = None,
        opened: bool = False,
        watch: Mapping[str, Any] | None = None,
    ) -> str:
        """Render the note posted at once: priority and why, market state, deadlines, what fired.

        `watch`: the same alert group fired again within the watch period after its incident
        resolved (tasks.run.watching): the sentence, the earlier incident, the raise.

        `correlation`: where correlation placed the group, when it says something a person
        should read (shadow mode's "would have joined", or a join that could not be made).

        `security_team` names whom a responder request calls in ("" when the policy names no
        one: by hand); None when no rule that pages the security team matched.
        `security_before`: an earlier run of the incident called them in already.
        `opened`: the responder opened the incident (Events API), so it may lower its urgency.
        """
        targets = self.policy.sla[due.priority]
        moments = (
            ("acknowledge", due.acknowledge, targets.acknowledge),
            ("respond", due.respond, targets.respond),
            ("resolve", due.resolve, targets.resolve),
        )
        return clip(
            self.render(
                "first_response.txt.j2",
                priority=str(classification.priority),
                headline=headline,
                rule=classification.rule,
                reason=classification.reason,
                fallback=_FALLBACKS.get(classification.rule),
                market=self.market(now),
                deadlines=[
                    {
                        "what": what,
                        "due": at,
                        "target": str(target),
                        # Passed already (a late or replayed delivery): say by how much.
                        "overdue": now - at if now - at >= timedelta(minutes=1) else None,
                    }
                    for what, at, target in moments
                ],
                update_every=str(targets.update_every),
                after_hours=self.after_hours(due, now, opened),
                alerts=list(alerts),
                truncated=truncated,
                incident=incident,
                security_team=security_team,
                security_before=security_before,
                correlation=correlation,
                watch=watch,
                runbook_url=self.policy.runbook_url,
                delivery_id=delivery_id,
            )
        )

    def incident_facts(
        self,
        headline: str,
        classification: Classification,
        due: Deadlines,
        now: datetime,
        *,
        incident_id: str,
        incident_url: str = "",
        bundle_url: str = "",
    ) -> dict[str, Any]:
        """Return the first note's facts as JSON-safe data, for the Slack messages built on them.

        The same classification, market state and deadlines as `first_response`; kept with
        the thread, so the parent message says the same when it is updated later.
        """
        targets = self.policy.sla[due.priority]
        return {
            "priority": str(classification.priority),
            "headline": headline,
            "rule": classification.rule,
            "reason": classification.reason,
            "fallback": _FALLBACKS.get(classification.rule),
            "market": self.market(now),
            "deadlines": [
                {"what": what, "due": at.isoformat(), "target": str(target)}
                for what, at, target in (
                    ("acknowledge", due.acknowledge, targets.acknowledge),
                    ("respond", due.respond, targets.respond),
                    ("resolve", due.resolve, targets.resolve),
                )
            ],
            "update_every": str(targets.update_every),
            "incident_id": incident_id,
            "incident_url": incident_url,
            "bundle_url": bundle_url,
            "runbook_url": self.policy.runbook_url,
        }

    def slack_incident(self, facts: Mapping[str, Any], status: Mapping[str, str] | None) -> str:
        """Render the Slack parent (or #eafix-dev post) of an incident from `incident_facts`.

        `status` is {word: triggered|acknowledged|resolved, by}; None leaves the status out
        (a one-off post that is never updated).
        """
        deadlines_ = [
            {**d, "due": datetime.fromisoformat(d["due"])} for d in facts.get("deadlines", [])
        ]
        return self.render(
            "slack_incident.md.j2", **{**facts, "deadlines": deadlines_, "status": status}
        )

    def slack_trading(
        self,
        priority: str,
        headline: str,
        affected: Sequence[Mapping[str, str]],
        findings: Sequence[Mapping[str, Any]],
        why_unread: str,
        thread_channel: str,
    ) -> str:
        """Render the #trading-operations post: the trading impact in plain words.

        `affected`: {name, why} of trading-path services; `findings`: {what, finding, problem}
        from the trading collector ([]: it could not read them, `why_unread` says why).
        """
        return self.render(
            "slack_trading.md.j2",
            priority=priority,
            headline=headline,
            affected=list(affected),
            findings=list(findings),
            why_unread=why_unread,
            thread_channel=thread_channel,
        )

    def slack_note(self, note: str) -> str:
        """Render a PagerDuty note's text as its Slack reply: the same words, in mrkdwn."""
        heading, _, body = note.strip("\n").partition("\n")
        return self.render("slack_note.md.j2", heading=heading, body=body.strip("\n"))

    def slack_proposal(
        self,
        proposal_id: str,
        action: str,
        target: str,
        does: str,
        expires: datetime,
        decided: str = "",
    ) -> str:
        """Render a proposed action above its Approve / Deny buttons (`decided`: by whom)."""
        return self.render(
            "slack_proposal.md.j2",
            proposal_id=proposal_id,
            action=action,
            target=target,
            does=does,
            expires=expires,
            decided=decided,
        )

    def market(self, now: datetime) -> dict[str, Any]:
        """Return whether the market trades now and when that changes, in market time."""
        is_open, change = next_market_change(now, self.policy.market_hours)
        return {"open": is_open, "change": self.local(change)}

    def after_hours(
        self, due: Deadlines, now: datetime, opened: bool = True
    ) -> dict[str, Any] | None:
        """Return when a held incident's actions begin and what its urgency does; None: now.

        Its urgency goes low only if the responder opened it (`opened`): a page PagerDuty
        sent high, someone meant high.
        """
        held = self.policy.business_hours_only.get(due.priority)
        if held is None or not due.deferred or now >= due.starts:
            return None
        lowers = held.urgency_outside == "low"
        return {
            "starts": self.local(due.starts),
            "urgency_low": lowers and opened,
            "urgency_kept": lowers and not opened,
            "high_again": held.urgency_at_opening == "high",
        }

    def with_pagerduty(self, priority: str) -> str:
        """Name our priority and PagerDuty's for it: `P0 (PagerDuty: P1)`.

        PagerDuty names its priorities P1-P5, so our P0 sits on an incident it shows as P1.
        """
        theirs = self.policy.pagerduty.priorities.get(str(priority), "")
        return f"{priority} (PagerDuty: {theirs})" if theirs else str(priority)

    def local(self, moment: datetime) -> str:
        """Return a moment as the policy's place tells it: `Mon 09:00 New York time`."""
        place = self.policy.timezone.key.split("/")[-1].replace("_", " ")
        return f"{moment.astimezone(self.policy.timezone):%a %H:%M} {place} time"

    def evidence(
        self,
        classification: Classification,
        title: str,
        evidence: Sequence[Evidence],
        bundle_location: str,
        error_lines: Sequence[str] = (),
        proposals: Sequence[Mapping[str, Any]] = (),
        stranded: Mapping[str, str] | None = None,
    ) -> str:
        """Render the evidence note: what failed first, what is healthy, top errors, the bundle,
        and the actions the policy's rules propose (id, why, how to approve, when it expires).

        `stranded`: the bundle store refused the bundle; host, path and why (the note says
        where the evidence is instead of a link that would not open it).

        Each proposal: id, action, target, why, rule, expires (datetime), and `ran` ("" while it
        waits for a person; what became of it when the policy approved it automatically).
        """
        return clip(
            self.render(
                "evidence.txt.j2",
                priority=str(classification.priority),
                title=title,
                **check_counts(e.status.value for e in evidence),
                evidence=[
                    {
                        "status": item.status.value,
                        "collector": item.collector,
                        "seconds": item.duration_seconds,
                        "summary": item.summary,
                    }
                    for item in sorted(evidence, key=lambda e: status_rank(e.status))
                ],
                error_lines=list(error_lines),
                bundle=bundle_location,
                stranded=dict(stranded) if stranded else None,
                proposals=[dict(p) for p in proposals],
                ttl=self.policy.actions.proposal_ttl,
            )
        )

    def joined_alerts(
        self,
        alerts: Sequence[tuple[Alert, Classification]],
        delivery_ids: Sequence[str],
        refresh: timedelta,
        now: datetime,
        shown: int = 20,
        *,
        correlated: Sequence[Mapping[str, Any]] = (),
        origin: Mapping[str, Any] | None = None,
    ) -> str:
        """Render the one note listing the alerts that joined an incident's run meanwhile.

        `correlated`: the groups correlation tied in (name, tie, merged or linked incident,
        covered: whether the incident's evidence already covers their services); `origin`:
        the probable origin and the downstream symptoms, when the topology names one.
        """
        worst = most_severe(c for _, c in alerts) or alerts[0][1]
        return clip(
            self.render(
                "joined_alerts.txt.j2",
                priority=str(worst.priority),
                names=list(dict.fromkeys(a.name for a, _ in alerts)),
                refresh=refresh,
                alerts=[ListedAlert.of(a, c) for a, c in alerts],
                shown=shown,
                delivery_ids=list(delivery_ids),
                now=now,
                correlated=list(correlated),
                origin=origin,
            )
        )

    def priority_raised(
        self, priority: str, was: str, name: str, tie: Mapping[str, Any] | None, due: Deadlines
    ) -> str:
        """Render the note saying a joining group raised the incident's priority, with the new
        priority's deadlines from now."""
        return self.render(
            "priority_raised.txt.j2",
            priority=priority,
            was=was,
            alert=name,
            tie=tie,
            due=due,
            targets=self.policy.sla[due.priority],
        )

    def correlation_linked(
        self, priority: str, title: str, target: str, tie: Mapping[str, Any] | None
    ) -> str:
        """Render the note on a joining group's own incident, pointing to the one it joined."""
        return self.render(
            "correlation_linked.txt.j2", priority=priority, title=title, target=target, tie=tie
        )

    def resolved(
        self,
        alerts: Sequence[Alert],
        delivery_id: str,
        settled: Mapping[str, Any] | None = None,
    ) -> str:
        """Render the note for alerts Alertmanager reports resolved.

        `settled` is what was done when the whole group cleared (None: alerts still fire):
        `stopped` clocks, validation `checks` ({collector, status, summary}) and what became of
        the `incident` ("resolved", "left to a person", "left: ...", "already resolved...",
        "refused: ...").
        """
        listed = []
        for alert in alerts:
            ended = alert.ends_at or alert.starts_at
            lasted = ended - alert.starts_at if ended > alert.starts_at else None
            listed.append(
                {"name": alert.name, "fired": alert.starts_at, "ended": ended, "lasted": lasted}
            )
        return clip(
            self.render(
                "resolved.txt.j2",
                names=list(dict.fromkeys(a.name for a in alerts)),
                alerts=listed,
                delivery_id=delivery_id,
                settled=settled,
            )
        )

    def security_refused(self, priority: str, called: str, why: str) -> str:
        """Render the note saying PagerDuty refused to call the security team in."""
        return self.render("security_refused.txt.j2", priority=priority, called=called, why=why)

    def sla_missed(self, priority: str, kind: str, due: datetime, late: str, level: int) -> str:
        """Render the note of a missed acknowledge or resolve deadline, and the escalation."""
        target = getattr(self.policy.sla[Priority(priority)], kind)
        return self.render(
            "sla_missed.txt.j2",
            priority=priority,
            kind=kind,
            target=str(target),
            due=due,
            late=late,
            level=level,
        )

    def sla_respond(self, priority: str, due: datetime, late: str, status: str) -> str:
        """Render the reminder that the respond deadline passed."""
        target = self.policy.sla[Priority(priority)].respond
        return self.render(
            "sla_respond.txt.j2",
            priority=priority,
            target=str(target),
            due=due,
            late=late,
            status=status,
        )

    def rejudged(
        self,
        judgement: Judgement,
        title: str,
        at: datetime,
        due: Deadlines | None = None,
        acknowledged_by: str = "",
    ) -> str:
        """Render the note of an incident judged again at the market's open or close: its new
        priority and why, and the deadlines `due` of the new priority when it was applied.

        `acknowledged_by` names who acknowledged it ("": nobody has)."""
        applied = judgement.change in (Change.RISE, Change.FALL)
        now = judgement.now.priority
        moments = []
        if due is not None:
            targets = self.policy.sla[due.priority]
            moments = [
                {"what": what, "due": getattr(due, what), "target": str(getattr(targets, what))}
                for what in ("acknowledge", "respond", "resolve")
                if not (what == "acknowledge" and acknowledged_by)  # done already
            ]
        return self.render(
            "rejudged.txt.j2",
            shown=str(now if applied else judgement.was),
            was=str(judgement.was),
            now=str(now),
            change=judgement.change.value,
            market_open=judgement.market_open,
            at=self.local(at),
            title=title,
            reason=judgement.now.reason,
            deadlines=moments,
            update_every=str(self.policy.sla[now].update_every),
            acknowledged_by=acknowledged_by or "someone",
            paged=due is None or not due.deferred,  # a held P2/P3 is not paged at night
        )

    def sla_gave_up(self, priority: str, kind: str, why: str, by_hand: str) -> str:
        """Render the note saying an SLA action failed for good, and what to do by hand."""
        return self.render(
            "sla_gave_up.txt.j2", priority=priority, kind=kind, why=why, by_hand=by_hand
        )

    def management_resolved(
        self, priority: str, times: IncidentTimes | None, emailed: str = ""
    ) -> str:
        """Render management's notification of an incident resolved before it fell due.

        `emailed`: the addresses the summary was e-mailed to (none: a person passes it on).
        """
        span = self.policy.sla[Priority(priority)].notify_management
        return self.render(
            "management_resolved.txt.j2",
            priority=priority,
            span=str(span),
            emailed=emailed,
            moments=self._moments(times) if times is not None else [],
        )

    def management_summary(
        self,
        since: datetime,
        until: datetime,
        rows: Sequence[PriorityMetrics],
        incidents: Sequence[Mapping[str, Any]],
    ) -> str:
        """Render the next business day's summary for management: figures, one line each."""
        return clip(
            self.render(
                "management_summary.txt.j2",
                priorities=[str(p) for p in self.policy.summarised()],
                since=since,
                until=until,
                rows=list(rows),
                incidents=list(incidents),
            )
        )

    def management(
        self, priority: str, outcome: str, *, called: str = "", why: str = "", emailed: str = ""
    ) -> str:
        """Render the management note: requested (from `called`), failed (`why`) or by hand
        (management already e-mailed at `emailed`, or not)."""
        span = self.policy.sla[Priority(priority)].notify_management
        return self.render(
            "management.txt.j2",
            priority=priority,
            span=str(span),
            outcome=outcome,
            called=called,
            why=why,
            emailed=emailed,
        )

    def cto_call(self, outcome: str, *, called: str = "", why: str = "") -> str:
        """Render the line saying the CTO was called in (`called`) or could not be (`why`)."""
        return self.render("management_cto.txt.j2", outcome=outcome, called=called, why=why)

    def status_update(
        self,
        incident: str,
        status: StatusNow,
        impact: str,
        next_update: datetime | None,
        priority: str = "",
        services: Sequence[str] = (),
        user_impact: str = "",
    ) -> str:
        """Render the runbook's status update (Status / Impact / Actions / ETA / Next Update).

        `status` holds the runbook's word and what people said; no `next_update`: the last one.
        `impact` is the alert's title; with `services` affected and the `user_impact` (trading)
        it makes the runbook's "Impact: [Service affected, user impact]".
        """
        return self.render(
            "status_update.txt.j2",
            incident=incident,
            priority=priority,
            status=status.word,
            impact=impact,
            services=list(services),
            user_impact=user_impact,
            actions=status.text,
            by=status.by,
            acknowledged=status.acknowledged,
            eta=status.eta,
            eta_passed=status.eta_passed,
            next_update=next_update,
        )

    def command_answer(self, problems: Sequence[Malformed], person: str) -> str:
        """Render the answer to a person's note commands written wrongly: what was expected."""
        return self.render(
            "command_answer.txt.j2",
            problems=[{"line": p.line[:200], "problem": p.problem} for p in problems],
            person=person,
            commands=note_commands.HELP,
        )

    def closing(self, times: IncidentTimes) -> str:
        """Render the closing note: acknowledgement and resolution against the SLA."""
        return self.render(
            "closing.txt.j2", priority=str(times.priority), moments=self._moments(times)
        )

    def _moments(self, times: IncidentTimes) -> list[dict[str, Any]]:
        """Return an incident's acknowledgement and resolution against the SLA."""
        targets = self.policy.sla[times.priority]
        due = deadlines(times.priority, times.started, self.policy)
        moments = []
        for what, at, target, deadline in (
            ("acknowledged", times.acknowledged, targets.acknowledge, due.acknowledge),
            ("resolved", times.resolved, targets.resolve, due.resolve),
        ):
            moments.append(
                {
                    "what": what,
                    "at": at,
                    "took": at - times.started if at is not None else None,
                    "target": str(target),
                    "met": at is not None and at <= deadline,
                    "by_resolving": what == "acknowledged" and times.acknowledged_by_resolving,
                }
            )
        return moments

    def report(self, rows: Sequence[PriorityMetrics]) -> str:
        """Render the Incident Metrics of `responder report` as a table."""
        return self.render("report.txt.j2", rows=list(rows))

    def event_summary(self, priority: str, title: str) -> str:
        """Render the summary of an Events API trigger (PagerDuty caps it at 1024 characters)."""
        return self.render("event_summary.txt.j2", priority=priority, title=title)[:1024]

    def watchdog_silent(self, alertname: str, since: datetime, silent_for: str) -> str:
        """Render the summary of the page sent when the Watchdog alert stops arriving."""
        return self.render(
            "watchdog_silent.txt.j2",
            priority="P1", alertname=alertname, since=since, silent_for=silent_for,
        )[:1024]  # fmt: skip

    def action_outcome(self, outcome: str, facts: Mapping[str, Any]) -> str:
        """Render what became of an approved action: done, failed, dry-run or unknown.

        `facts`: action, target, does, ran, answer, seconds, approved_by, via, proposed_by,
        checks, verified, to_check, proposal_id.
        """
        return clip(self.render("action_outcome.txt.j2", outcome=outcome, **facts))

    def stop_again(
        self,
        priority: str,
        proposal: Any,
        stopped: Any,
        seen: str,
        firing: Sequence[str],
    ) -> str:
        """Render the note of a way to stop trading proposed again: trading resumed while the
        incident's P0 cause still fires. `proposal` and `stopped`: the new and the earlier
        proposal records; `seen`: what the way's checks read now."""
        return clip(
            self.render(
                "stop_again.txt.j2",
                priority=priority,
                action=proposal.action,
                target=proposal.target,
                proposal_id=proposal.id,
                stopped_id=stopped.id,
                stopped_by=stopped.approved_by or stopped.proposed_by,
                seen=seen,
                firing=list(firing),
                expires=proposal.expires,
            )
        )

    def action_refused(
        self, action: str, target: str, approver: str, via: str, why: str, proposal_id: str
    ) -> str:
        """Render the note saying an approval was refused, why, and that nothing ran."""
        return self.render(
            "action_refused.txt.j2",
            action=action,
            target=target,
            approver=approver,
            via=via,
            why=why,
            proposal_id=proposal_id,
        )

    def action_not_needed(
        self, action: str, target: str, approver: str, why: str, proposal_id: str
    ) -> str:
        """Render the note saying an approved action did not run: it is no longer needed."""
        return self.render(
            "action_not_needed.txt.j2",
            action=action,
            target=target,
            approver=approver,
            why=why,
            proposal_id=proposal_id,
        )

    def actions_withdrawn(self, incident_id: str, withdrawn: list[dict[str, str]]) -> str:
        """Render the note listing the proposals a resolved incident withdrew."""
        return self.render("actions_withdrawn.txt.j2", incident_id=incident_id, withdrawn=withdrawn)

    def action_waits(
        self, action: str, target: str, count: int, required: int, approver: str, via: str,
        proposal_id: str,
    ) -> str:  # fmt: skip
        """Render the note saying an approval counted and the action waits for more people."""
        return self.render(
            "action_waits.txt.j2",
            action=action,
            target=target,
            count=count,
            required=required,
            approver=approver,
            via=via,
            proposal_id=proposal_id,
        )

    def email_subject(
        self,
        kind: str,
        *,
        priority: str = "",
        title: str = "",
        outcome: str = "",
        count: int = 0,
    ) -> str:
        """Render an e-mail's subject: kind, priority and title first, with the policy's prefix."""
        return self.render(
            "email_subject.txt.j2",
            prefix=self.policy.communication.email.subject_prefix,
            kind=kind,
            priority=priority,
            title=title,
            outcome=outcome,
            count=count,
            priorities=[str(p) for p in self.policy.summarised()],
        )

    def email(self, name: str, **facts: Any) -> tuple[str, str]:
        """Render e-mail `name`'s text part and HTML part (escaped) from the same facts."""
        text = self.render(f"email_{name}.txt.j2", **facts)
        html = self.render(f"email_{name}.html.j2", **facts)
        return text, html

    def desk_moments(self, times: IncidentTimes) -> list[dict[str, Any]]:
        """Return an incident's acknowledgement and resolution against the SLA, for e-mails."""
        return self._moments(times)

    def desk_call(
        self, priority: str, outcome: str, impact: str, *, called: str = "", why: str = ""
    ) -> str:
        """Render the note saying the trading desk was called in (or must be, by hand)."""
        return self.render(
            "desk_call.txt.j2",
            priority=priority,
            outcome=outcome,
            impact=impact,
            called=called,
            why=why,
        )

    def action_already(self, action: str, target: str, asker: str, via: str, said: str) -> str:
        """Render the note saying a repeated run of an action was done already: nothing runs."""
        return self.render(
            "action_already.txt.j2", action=action, target=target, asker=asker, via=via, said=said
        )

    def bundle_index(self, manifest: Mapping[str, Any], folder: Path) -> str:
        """Render the HTML view of the bundle in `folder` from its manifest (autoescaped)."""
        return self.render("bundle_index.html.j2", **index_view(manifest, folder))

    def check(self) -> list[str]:
        """Render every template with sample facts; return what is wrong (nothing: usable).

        The samples take every branch of the built-in templates; rendering catches a misspelt
        attribute on the paths they take, and the names each template uses are compared with
        those its note passes, which catches a misspelt name in any branch. A process checks
        the same policy with the same override sources once (every runtime asks).
        """
        key = (id(self.policy), self.overrides, _override_sources(self.overrides))
        if (kept := _CHECKED.get(key)) is not None and kept[0] is self.policy:
            return list(kept[1])
        problems = self._check()
        if len(_CHECKED) >= 64:  # a long-lived process meets few policies; tests meet many
            _CHECKED.pop(next(iter(_CHECKED), None), None)  # type: ignore[arg-type]
        _CHECKED[key] = (self.policy, tuple(problems))  # the policy kept: its id stays its own
        return problems

    def _check(self) -> list[str]:
        problems = []
        known = {p.name for p in TEMPLATES.glob("*.j2") if not p.name.startswith("_")}
        if self.overrides:
            folder = Path(self.overrides)
            if not folder.is_dir():
                return [f"{folder}: the note template directory does not exist"]
            for path in sorted(folder.glob("*.j2")):  # a README or .gitkeep beside them is fine
                if path.name not in known and not path.name.startswith("_"):
                    problems.append(
                        f"{path}: not a template the responder writes "
                        f"(one of: {', '.join(sorted(known))})"
                    )
        used: dict[str, set[str]] = {}
        failures: dict[str, str] = {}
        self._used = used  # recorded while the samples render (they fail instead of falling back)
        try:
            for name, render in _samples(self):
                try:
                    render()
                except TemplateProblem as exc:
                    failures.setdefault(name, str(exc))
        finally:
            self._used = None
        for name in sorted(known):
            passed = used.get(name)
            if passed is None:
                problems.append(f"{name}: no sample to check it with")
                continue
            try:
                source, filename, _ = self._env.loader.get_source(self._env, name)  # type: ignore[union-attr]
                undeclared = names_read(source)
            except jinja2.TemplateError:
                undeclared, filename = set(), name  # the render failed on it: said below
            if unknown := sorted(undeclared - passed):
                problems += [
                    f"{filename}: uses {u!r}, which this note does not have "
                    f"(it has: {', '.join(sorted(passed))})"
                    for u in unknown
                ]
            elif name in failures:
                problems.append(failures[name].replace(name, filename or name, 1))
        return problems


@dataclass(frozen=True)
class _SampleProposal:
    """A proposal's fields the stop-again note reads, for the samples."""

    id: str
    action: str
    target: str
    approved_by: str
    proposed_by: str
    expires: datetime


def _samples(voice: Voice) -> list[tuple[str, Callable[[], str]]]:
    """Return renders with representative facts that take every branch of each template."""
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    first = Classification(Priority.P1, "sample-rule", "a sample reason")
    fallback = Classification(Priority.P1, SEVERITY_FALLBACK_RULE, "no rule matched")
    due = deadlines(Priority.P1, now, voice.policy)
    alert = Alert(
        "firing", {"alertname": "Sample", "service": "sample"}, {"summary": "a sample"},
        now, now.isoformat(), None, "", "f1",
    )  # fmt: skip
    plain = Alert("firing", {"alertname": "Bare"}, {}, now, now.isoformat(), None, "", "f2")
    ended = Alert(
        "resolved", alert.labels, alert.annotations, now, now.isoformat(),
        now + timedelta(minutes=7), "", "f1",
    )  # fmt: skip
    listed = [ListedAlert.of(alert, first), ListedAlert.of(plain, first)]
    saturday = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)  # 02:00 New York: outside business
    incident = Incident("PSAMPLE", "Sample", "triggered", "high", "P1", "EAFIX", "k")
    later = now + timedelta(minutes=5)
    times = [
        IncidentTimes("PSAMPLE", Priority.P1, now, later, None),
        IncidentTimes("PSAMPLE", Priority.P1, now, later, now + timedelta(hours=9)),
        IncidentTimes("PSAMPLE", Priority.P1, now, later, later, acknowledged_by_resolving=True),
    ]
    row = PriorityMetrics(
        Priority.P1, 2, 1, 1, timedelta(minutes=5), None, Compliance(1, 1), Compliance(0, 1)
    )
    failed = Evidence("http", Status.FAILED, "down", duration_seconds=0.2)
    skipped = Evidence("git", Status.SKIPPED, "not configured", duration_seconds=1.5)
    return [
        ("first_response.txt.j2", lambda: voice.first_response(
            "Sample", first, due, "d1", now, alerts=listed, truncated=1)),
        ("first_response.txt.j2", lambda: voice.first_response(
            "Sample", fallback, due, "d1", now + timedelta(days=2), incident=incident,
            security_team="PSEC (escalation policy)")),
        ("first_response.txt.j2", lambda: voice.first_response(
            "Sample", first, due, "d1", now, alerts=listed, security_team="")),
        *[("first_response.txt.j2", lambda p=p: voice.first_response(
            "Sample", Classification(p, "sample-rule", "a sample reason"),
            deadlines(p, saturday, voice.policy), "d1", saturday, alerts=listed))
          for p in (Priority.P2, Priority.P3)],
        ("first_response.txt.j2", lambda: voice.first_response(
            "Sample", first, due, "d1", now, alerts=listed, security_team="PSEC",
            security_before=True)),
        *[("first_response.txt.j2", lambda c=c: voice.first_response(
            "Sample", first, due, "d1", now, alerts=listed, correlation=c))
          for c in ({"action": "join", "mode": "shadow", "joins": "PSAMPLE", "origin": "a",
                     "tie": {"rule": "flow-outage", "service": "a", "tied_to": "b", "hops": 1,
                             "window": "10m"}},
                    {"action": "join", "mode": "on", "alone": "its incident was resolved",
                     "origin": "", "tie": None},
                    {"action": "flap", "mode": "on", "joins": "PSAMPLE", "why": "flapping: X",
                     "alone": "the incident it joins, PSAMPLE, is resolved"},
                    {"action": "flap", "mode": "shadow", "why": "flapping: X"})],
        *[("first_response.txt.j2", lambda w=w: voice.first_response(
            "Sample", first, due, "d1", now, alerts=listed, watch=w))
          for w in ({"earlier": "PSAMPLE", "was": "P2", "priority": "P1",
                     "sentence": "fired again 3h after PSAMPLE was resolved: watch period of "
                                 "24h, P2 raised to P1"},
                    {"earlier": "PSAMPLE", "was": "P1", "priority": "P1",
                     "sentence": "fired again 3h after PSAMPLE was resolved: watch period of "
                                 "24h, stays P1 (the watch period raises no higher than P1)"})],
        ("evidence.txt.j2", lambda: voice.evidence(
            first, "Sample", [failed, skipped], "https://responder/b/1", ["svc: ERROR sample"])),
        ("evidence.txt.j2", lambda: voice.evidence(first, "Sample", [], "/bundles/1")),
        ("evidence.txt.j2", lambda: voice.evidence(
            first, "Sample", [failed], "/incidents/P1?sig=1", stranded={
                "host": "host-a", "path": "/var/bundles/r1", "why": "writing x: AccessDenied"})),
        ("evidence.txt.j2", lambda: voice.evidence(
            first, "Sample", [failed], "/bundles/1", proposals=[
                {"id": "act-1a2b3c4d", "action": "restart-service", "target": "risk-manager",
                 "why": "its container exited (risk-manager: container exited)",
                 "rule": "restart-exited-container", "expires": now, "automatic": False,
                 "ran": ""},
                {"id": "act-5e6f7a8b", "action": "restart-service", "target": "redis",
                 "why": "its container exited", "rule": "restart-redis", "expires": now,
                 "automatic": True, "ran": "approved by the policy and queued"}])),
        ("evidence.txt.j2", lambda: voice.evidence(
            first, "Sample", [failed], "/incidents/P1?sig=1", proposals=[
                {"id": "act-1a2b3c4d", "action": "restart-service", "target": "risk-manager",
                 "why": "its container exited (risk-manager: container exited)",
                 "rule": "restart-exited-container", "expires": now, "automatic": False,
                 "ran": ""},
                {"id": "act-5e6f7a8b", "action": "restart-service", "target": "redis",
                 "why": "its container exited", "rule": "restart-redis", "expires": now,
                 "automatic": True, "ran": "approved by the policy and queued"}])),
        ("joined_alerts.txt.j2", lambda: voice.joined_alerts(
            [(alert, first), (plain, first)], ["d1", "d2"], timedelta(minutes=10), now, 1)),
        ("joined_alerts.txt.j2", lambda: voice.joined_alerts(
            [(alert, first)], ["d1"], timedelta(minutes=10), now)),
        ("joined_alerts.txt.j2", lambda: voice.joined_alerts(
            [(alert, first)], ["d1"], timedelta(minutes=10), now, correlated=[
                {"name": "Sample", "priority": "P1", "covered": True, "merged": "PSAMPLE2",
                 "tie": {"rule": "flow-outage", "service": "a", "tied_to": "b", "hops": 1,
                         "window": "10m"}},
                {"name": "Again", "priority": "P1", "covered": True, "flapping": "flapping: X"},
                {"name": "Bare", "priority": "P1", "covered": False, "linked": "PSAMPLE3",
                 "tie": {"rule": "by-host", "service": "", "tied_to": "", "hops": None,
                         "window": "10m"}}],
            origin={"service": "a", "symptoms": ["b"]})),
        ("priority_raised.txt.j2", lambda: voice.priority_raised(
            "P0", "P1", "Sample",
            {"rule": "flow-outage", "service": "a", "tied_to": "b", "hops": 1, "window": "10m"},
            deadlines(Priority.P0, now, voice.policy))),
        ("correlation_linked.txt.j2", lambda: voice.correlation_linked(
            "P1", "Sample", "PSAMPLE", None)),
        ("resolved.txt.j2", lambda: voice.resolved([ended, alert], "d1")),
        *[("resolved.txt.j2", lambda outcome=outcome, stopped=stopped: voice.resolved(
            [ended], "d1", {"stopped": stopped, "incident": outcome, "checks": [
                {"collector": "http", "status": "ok", "summary": "6/6 healthy"}]}))
          for outcome, stopped in (("resolved", ["acknowledge"]), ("left: a check failed", []),
                                   ("outbox", []), ("already resolved", []),
                                   ("already resolved: a check did not pass", []),
                                   ("refused: HTTP 403", []), ("left to a person", []))],
        ("security_refused.txt.j2", lambda: voice.security_refused(
            "P1", "PSEC (escalation policy)", "HTTP 402")),
        ("sla_missed.txt.j2", lambda: voice.sla_missed("P1", "acknowledge", now, "5m", 2)),
        ("sla_missed.txt.j2", lambda: voice.sla_missed("P1", "resolve", now, "5m", 3)),
        ("sla_respond.txt.j2", lambda: voice.sla_respond("P1", now, "5m", "triggered")),
        *(
            ("rejudged.txt.j2", lambda change=change: voice.rejudged(  # type: ignore[misc]
                Judgement(Priority.P3, first, change, True), "MarketDataStale", now,
                deadlines(Priority.P1, now, voice.policy), "" if change != Change.FALL_HELD
                else "Dana",
            ))
            for change in (Change.RISE, Change.FALL, Change.FALL_HELD)
        ),
        ("sla_gave_up.txt.j2", lambda: voice.sla_gave_up("P1", "next_update", "refused", "act")),
        ("management.txt.j2", lambda: voice.management("P1", "requested", called="PTEAM (team)")),
        ("management.txt.j2", lambda: voice.management("P1", "failed", why="402")),
        ("management.txt.j2", lambda: voice.management("P1", "by hand")),
        ("management_cto.txt.j2", lambda: voice.cto_call("requested", called="PCTO001 (user)")),
        ("management_cto.txt.j2", lambda: voice.cto_call("failed", why="HTTP 402")),
        ("management.txt.j2", lambda: voice.management(
            "P1", "by hand", emailed="engineering-management@eafix.example")),
        *[("status_update.txt.j2", lambda status=status, following=following: voice.status_update(
            "PSAMPLE", status, "sample", following, "P1" if following else "",
            ["gui-gateway"] if following else (), "no trading impact found"))
          for status, following in (
            (StatusNow("Investigating"), now),
            (StatusNow("Investigating", acknowledged=True), now),
            (StatusNow("Identified", "a sample", "Dana", now, True, True), now),
            (StatusNow("Monitoring", "a sample", "", now), now),
            (StatusNow("Resolved", by="Dana"), None),
            (StatusNow("Resolved"), None))],
        ("command_answer.txt.j2", lambda: voice.command_answer(
            [Malformed("/eta soon", "expected a duration")], "Dana")),
        ("command_answer.txt.j2", lambda: voice.command_answer(
            [Malformed("/eta soon", "expected a duration"), Malformed("/status x", "?")], "")),
        ("management_resolved.txt.j2", lambda: voice.management_resolved("P1", times[2])),
        ("management_resolved.txt.j2", lambda: voice.management_resolved("P1", None)),
        ("management_resolved.txt.j2", lambda: voice.management_resolved(
            "P1", times[2], "engineering-management@eafix.example")),
        *[("management_summary.txt.j2", lambda listed=listed: voice.management_summary(
            now - timedelta(days=1), now, [row], listed)) for listed in (
            [{"id": "PSAMPLE", "priority": "P2", "title": "Sample", "status": "resolved",
              "started": now, "acknowledged": timedelta(minutes=5), "resolved": later - now},
             {"id": "PSAMPLE2", "priority": "P3", "title": "Other", "status": "triggered",
              "started": now, "acknowledged": None, "resolved": None}],
            [{"id": "PSAMPLE", "priority": "P2", "title": "Sample", "status": "resolved",
              "started": now, "acknowledged": None, "resolved": None}])],
        *[("closing.txt.j2", lambda t=t: voice.closing(t)) for t in times],
        ("report.txt.j2", lambda: voice.report([row])),
        ("event_summary.txt.j2", lambda: voice.event_summary("P1", "Sample")),
        ("watchdog_silent.txt.j2", lambda: voice.watchdog_silent("Watchdog", now, "7m")),
        *[("action_outcome.txt.j2", lambda outcome=outcome, checks=checks, verified=verified:
            voice.action_outcome(
                outcome, {**_ACTION_FACTS, "checks": checks, "verified": verified}))
          for outcome, checks, verified in (
              ("done", _CHECKS[:1], "passed"), ("done", _CHECKS, "failed"), ("done", [], ""),
              ("failed", [], "not run"), ("dry-run", [], "not run"),
              ("unknown", [], "not run"), ("by hand", [], "not run"))],
        *[("action_outcome.txt.j2", lambda verified=verified, checks=checks:
            voice.action_outcome("done", {**_ACTION_FACTS, "action": "validate",
                                          "kind": "validation", "checks": checks,
                                          "verified": verified}))
          for verified, checks in (("passed", _CHECKS), ("failed", _CHECKS),
                                   ("failed", [*_CHECKS, _NO_DATA]))],
        ("action_refused.txt.j2", lambda: voice.action_refused(
            "restart-service", "risk-manager", "PABC", "cli", "not allowed", "act-1")),
        ("stop_again.txt.j2", lambda: voice.stop_again(
            "P0", _SampleProposal("act-2", "stop-trading", "gui-gateway", "", "",
                                            now + timedelta(minutes=30)),
            _SampleProposal("act-1", "stop-trading", "gui-gateway", "oncall@eafix.example",
                            "responder", now),
            "its check GET /api/trading/status says trading=stopped no longer passes "
            "(HTTP 200, trading=active)", ["RiskManagerDown"])),
        *[("action_not_needed.txt.j2", lambda approver=approver: voice.action_not_needed(
            "restart-service", "risk-manager", approver, "incident P1 is resolved", "act-1"))
          for approver in ("sre-eval", "")],
        ("actions_withdrawn.txt.j2", lambda: voice.actions_withdrawn("P1", [
            {"id": "act-1", "action": "restart-service", "target": "risk-manager"}])),
        *_email_samples(voice, now, row, times),
        ("action_refused.txt.j2", lambda: voice.action_refused(
            "shell", "", "PABC", "workflow", "no action named 'shell'", "act-2")),
        *[("action_waits.txt.j2", lambda count=count, required=required: voice.action_waits(
            "resume-trading", "gui-gateway", count, required, "dana@eafix.example", "note",
            "act-3")) for count, required in ((1, 2), (1, 3))],
        *[("slack_incident.md.j2", lambda facts=facts, status=status: voice.slack_incident(
            facts, status)) for facts, status in (
            (_slack_facts(voice, first, due, now, True, True), {"word": "triggered", "by": ""}),
            (_slack_facts(voice, fallback, due, now, True, False),
             {"word": "acknowledged", "by": "Dana"}),
            (_slack_facts(voice, first, due, saturday, False, True),
             {"word": "resolved", "by": "Dana"}),
            (_slack_facts(voice, first, due, now, False, False), None),
            (_slack_facts(voice, first, due, now, False, False, ""),
             {"word": "acknowledged", "by": ""}),
            (_slack_facts(voice, first, due, now, False, False, ""),
             {"word": "resolved", "by": ""}))],
        ("slack_trading.md.j2", lambda: voice.slack_trading(
            "P0", "Sample", [{"name": "risk-manager", "why": "risk checks"}],
            [{"what": "open positions", "finding": "3 open", "problem": False},
             {"what": "reconciliation", "finding": "2 mismatches", "problem": True}],
            "", "#eafix-incidents")),
        ("slack_trading.md.j2", lambda: voice.slack_trading(
            "P1", "Sample", [], [], "no trading check ran", "#eafix-incidents")),
        ("slack_note.md.j2", lambda: voice.slack_note("[P1] Sample evidence\n- OK http")),
        ("slack_note.md.j2", lambda: voice.slack_note("[P1] Resolved.")),
        ("slack_proposal.md.j2", lambda: voice.slack_proposal(
            "act-1", "restart-service", "risk-manager", "restart a service", now)),
        ("slack_proposal.md.j2", lambda: voice.slack_proposal(
            "act-1", "restart-service", "risk-manager", "restart a service", now,
            "Approved by Dana")),
        ("action_already.txt.j2", lambda: voice.action_already(
            "restart-service", "risk-manager", "PABC", "note",
            "already approved by PDEF (act-1): restart-service on risk-manager runs once "
            "within 10 minutes")),
        *[("bundle_index.html.j2", lambda m=m: voice.bundle_index(m, Path("/none")))
          for m in _sample_manifests(now, voice.policy)],
    ]  # fmt: skip


def _sample_manifests(now: datetime, policy: Policy) -> list[dict[str, Any]]:
    """Return manifests that take every branch of the bundle's HTML view."""
    due = deadlines(Priority.P1, now, policy).to_dict()
    plot = {
        "file": "prometheus/q0.png", "title": "alert expression", "window_start": now.isoformat(),
        "window_end": (now + timedelta(hours=1)).isoformat(), "note": "2 samples",
        "threshold": {"value": 30, "op": ">", "label": "alert when > 30", "source": "rule"},
        "width": 900, "height": 360,
    }  # fmt: skip
    checks = [
        {"name": "prometheus", "status": "ok", "summary": "up", "duration_seconds": 1.2,
         "files": ["prometheus/q0.png", "prometheus/q1.png"], "tables": {}, "plots": [plot]},
        {"name": "docker", "status": "failed", "summary": "<b>down</b>", "duration_seconds": 0.2,
         "files": ["docker/x.errors.log"], "tables": {}},
        {"name": "network", "status": "failed", "summary": "1/2 probes", "duration_seconds": 1.0,
         "files": [], "tables": {"probes": [
             {"from": "responder", "target": "broker-api", "address": "api.example:443",
              "check": "tcp connect", "reached": False, "why": "timed out"},
             {"from": "responder", "target": "redis", "address": "redis:6379",
              "check": "tcp connect", "reached": True, "why": "connected"}]}},
        {"name": "performance", "status": "failed", "summary": "deep", "duration_seconds": 0.3,
         "files": [], "tables": {
             "queues": [{"name": "signal-generator", "shown": "250", "state": "over",
                         "threshold": 100.0}],
             "edges": [{"name": "a -> b", "shown": "no data", "state": "no data",
                        "threshold": 1.0}]}},
    ]  # fmt: skip
    base = {
        "created_at": now.isoformat(),
        "title": "Sample",
        "classification": {"priority": "P1", "rule": "sample-rule", "reason": "a reason"},
    }
    return [
        {**base, "deadlines": due, "collectors": checks, "delivery_id": "d1", "run": 2,
         "incident": {"label": "PSAMPLE"}},
        {**base, "deadlines": {}, "collectors": [], "incident": {"label": ""}, "delivery_id": "",
         "classification": {"priority": "P3", "rule": "manual", "reason": ""},
         "diagnosis": {"service": "risk-manager", "by": "dana", "via": "responder diagnose"}},
    ]  # fmt: skip


def _slack_facts(
    voice: Voice,
    classification: Classification,
    due: Deadlines,
    now: datetime,
    incident_url: bool,
    bundle_url: bool,
    runbook_url: str | None = None,
) -> dict[str, Any]:
    """Return sample facts of a Slack parent, with or without its links."""
    facts = voice.incident_facts(
        "Sample <b>", classification, due, now, incident_id="PSAMPLE",
        incident_url="https://eafix.pagerduty.com/incidents/PSAMPLE" if incident_url else "",
        bundle_url="https://responder/incidents/PSAMPLE" if bundle_url else "",
    )  # fmt: skip
    if runbook_url is not None:
        facts["runbook_url"] = runbook_url
    return facts


def _email_samples(
    voice: Voice, now: datetime, row: PriorityMetrics, times: Sequence[IncidentTimes]
) -> list[tuple[str, Callable[[], object]]]:
    """Return renders of every e-mail template (text and HTML), each branch taken."""
    market = {"open": True, "change": "Fri 17:00 New York time"}
    alert = {
        "priority": "P0",
        "title": "Risk <manager> down",
        "reason": "a sample reason",
        "incident_id": "PSAMPLE",
        "raised": now,
        "market": market,
        "acknowledge": now,
        "resolve": now,
        "bundle": "https://responder/bundles/1",
    }
    timeline = [
        {"at": now, "what": "triggered", "by": "PagerDuty"},
        {"at": now, "what": "x", "by": ""},
    ]
    summary = {
        "priority": "P0",
        "title": "Sample",
        "reason": "a sample reason",
        "incident_id": "P1",
        "impact": "3 open positions at risk",
        "closing": "[P0] Resolved.",
        "moments": voice.desk_moments(times[0]) + voice.desk_moments(times[2]),
        "timeline": timeline,
        "more": 0,
        "bundle": "/var/bundles/1",
    }
    management = {
        "priority": "P1",
        "title": "Sample",
        "incident_id": "P1",
        "note": "[P1] Management",
        "span": "30m",
        "moments": voice.desk_moments(times[0]) + voice.desk_moments(times[2]),
        "bundle": "https://responder/bundles/1",
    }
    listed = [
        {
            "id": "PSAMPLE",
            "priority": "P2",
            "title": "Sample",
            "status": "resolved",
            "started": now,
            "acknowledged": timedelta(minutes=5),
            "resolved": timedelta(hours=1),
        },
        {
            "id": "PSAMPLE2",
            "priority": "P3",
            "title": "Other",
            "status": "triggered",
            "started": now,
            "acknowledged": None,
            "resolved": None,
        },
    ]
    digest = {
        "note": "[P2/P3] Next business day summary",
        "since": now,
        "until": now,
        "rows": [row],
        "incidents": listed,
        "priorities": ["P2", "P3"],
    }
    return [
        *[("email_subject.txt.j2", lambda kind=kind, outcome=outcome, count=count:
           voice.email_subject(kind, priority="P1", title="Sample", outcome=outcome,
                               count=count))
          for kind, outcome, count in (
              ("desk_alert", "", 0), ("desk_summary", "", 0), ("management", "resolved", 0),
              ("management", "requested", 0), ("management_summary", "", 1),
              ("management_summary", "", 3), ("approval_link", "", 1), ("approval_link", "", 2))],
        *[(f"email_desk_alert.{part}.j2", lambda facts=facts: voice.email("desk_alert", **facts))
          for facts in (alert, {**alert, "market": {**market, "open": False},
                                "bundle": "/var/bundles/1"}) for part in ("txt", "html")],
        *[(f"email_desk_summary.{part}.j2", lambda facts=facts: voice.email(
            "desk_summary", **facts))
          for facts in (summary, {**summary, "timeline": [], "more": 3, "bundle": "https://r/b/1"})
          for part in ("txt", "html")],
        *[(f"email_management.{part}.j2", lambda outcome=outcome, called=called, bundle=bundle:
           voice.email("management", **{**management, "outcome": outcome, "called": called,
                                        "bundle": bundle}))
          for outcome, called, bundle in (("notify", "PEP (escalation policy)", "https://r/b"),
                                          ("notify", "", "/var/b"), ("resolved", "", "/var/b"))
          for part in ("txt", "html")],
        *[(f"email_management_summary.{part}.j2", lambda facts=facts: voice.email(
            "management_summary", **facts))
          for facts in (digest, {**digest, "incidents": listed[:1]}) for part in ("txt", "html")],
        *[(f"email_approval_link.{part}.j2", lambda proposals=proposals: voice.email(
            "approval_link", incident_id="PABC123", who="dana@eafix.example", minutes=30,
            link="https://r/incidents/PABC123?as=dana%40eafix.example&until=1&asig=ab",
            proposals=proposals))
          for proposals in (
              [{"id": "act-1", "action": "stop-trading", "target": "gui-gateway", "why": "x"}],
              [{"id": "act-1", "action": "restart-service", "target": "risk-manager", "why": ""},
               {"id": "act-2", "action": "stop-trading", "target": "gui-gateway", "why": "y"}])
          for part in ("txt", "html")],
        *[("desk_call.txt.j2", lambda outcome=outcome: voice.desk_call(
            "P0", outcome, "3 open positions at risk", called="PDESK (user)", why="HTTP 402"))
          for outcome in ("requested", "failed")],
    ]  # fmt: skip


_CHECKS = [
    {"check": "health ok", "passed": True, "seconds": 0.4, "last": "HTTP 200", "result": "passed"},
    {
        "check": "GET /s says trading=stopped",
        "passed": False,
        "seconds": 10,
        "last": "HTTP 200",
        "result": "failed",
    },
]
# Validation 4 with nothing measured: said as NO DATA, and not a pass.
_NO_DATA = {"check": "performance: p99 latency under 1 s", "passed": False, "seconds": 0.1,
            "last": "no data: Prometheus has no samples for the query; threshold 1 s",
            "result": "no data", "measured": None}  # fmt: skip
_ACTION_FACTS: dict[str, Any] = {
    "action": "restart-service",
    "target": "risk-manager",
    "does": "restart a service",
    "ran": "docker restart eafix/risk-manager",
    "answer": "eafix-risk-manager-1 restarted",
    "seconds": 1.5,
    "approved_by": "PABC",
    "via": "cli",
    "proposed_by": "responder",
    "verified": "passed",
    "to_check": ["health ok at http://risk-manager:8084/healthz"],
    "proposal_id": "act-1",
    "kind": "action",
}


class _CompiledTemplates(jinja2.BytecodeCache):
    """Compiled templates, keyed by Jinja2 on the template's name, file and source checksum:
    in memory for every environment of the process, and on disk for the next process.

    Each Voice (a CLI command, a worker's runtime, a test) would otherwise parse and compile
    all of them again, 0.4 s a time, and each process starting (every worker) 0.2 s. The disk
    copy is Jinja2's own per-user folder in the system's temporary directory, which it keeps
    owned by this user and closed to others (the code there is run); a folder that cannot be
    had or written leaves the memory copy alone, at the cost of compiling at each start.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self._code: dict[str, bytes] = {}
        self._folder = folder

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        """Fill `bucket` with the code compiled earlier for its template, if any."""
        if (code := self._code.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)
        elif (disk := self._on_disk) is not None:
            try:
                disk.load_bytecode(bucket)  # a stale or foreign file leaves the bucket empty
            except Exception as exc:  # a damaged file (pickle's, marshal's errors) must cost
                # a compile, never a note: it is written over below.
                log.info("compiled template not read from disk, compiled again: %s", exc)
                bucket.reset()
            if bucket.code is not None:
                self._code[bucket.key] = bucket.bytecode_to_string()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        """Keep the code just compiled for `bucket`'s template."""
        self._code[bucket.key] = bucket.bytecode_to_string()
        if (disk := self._on_disk) is not None:
            try:
                disk.dump_bytecode(bucket)
            except OSError as exc:  # a full or read-only disk: compiled again next start
                log.debug("compiled template not kept on disk: %s", exc)

    @cached_property  # made at the first template, once: a refused folder is not tried again
    def _on_disk(self) -> jinja2.FileSystemBytecodeCache | None:
        try:
            folder = None if self._folder is None else str(self._folder)
            return jinja2.FileSystemBytecodeCache(folder, _cache_file_pattern())
        except (OSError, RuntimeError) as exc:  # Jinja2 found no folder it deems safe
            log.info("compiled templates are kept in memory only: %s", exc)
            return None


_COMPILED = _CompiledTemplates()
# Voice.check's answers: (id of the policy, override folder, its sources) -> (policy, problems).
_CheckKey = tuple[int, str, tuple[tuple[str, str], ...] | None]
_CHECKED: dict[_CheckKey, tuple[Policy, tuple[str, ...]]] = {}


def _cache_file_pattern() -> str:
    """Return the name of a compiled template's file: its key, after what compiled it.

    Jinja2 keys a compiled template on its name, file and source only; the versions of Jinja2
    and Python and the environment's options go in the name too, so that code compiled by an
    older install, or with other options, is never run after an upgrade in place.
    """
    env = _environment(jinja2.DictLoader({}), None)
    made_by = (
        jinja2.__version__, sys.version, env.trim_blocks, env.lstrip_blocks,
        env.keep_trailing_newline, env.autoescape("t.html.j2"), env.autoescape("t.txt.j2"),
        sorted(env.filters), env.undefined.__name__,
    )  # fmt: skip
    return f"responder-{hashlib.sha256(repr(made_by).encode()).hexdigest()[:16]}-%s.cache"


def _override_sources(folder: str) -> tuple[tuple[str, str], ...] | None:
    """Return (name, text) of every file of an override folder; None when it is not one."""
    if not folder:
        return ()
    path = Path(folder)
    if not path.is_dir():
        return None
    sources = []
    for file in sorted(path.rglob("*")):  # templates may include others from subfolders
        name = file.relative_to(path).as_posix()
        try:
            if file.is_file():
                sources.append((name, file.read_text(encoding="utf-8", errors="replace")))
        except OSError as exc:  # an unreadable README beside them: its reason, not a crash
            sources.append((name, f"(unreadable: {exc})"))
    return tuple(sources)


@lru_cache(maxsize=512)  # a template's source is checked by every Voice.check of a process
def names_read(source: str) -> frozenset[str]:
    """Return the names a template's source reads from its context; TemplateError if broken."""
    return frozenset(meta.find_undeclared_variables(_parser().parse(source)))


@lru_cache(maxsize=1)
def _parser() -> jinja2.Environment:
    """Return an environment that only parses: a voice's syntax and every filter it has.

    Finding the names a template reads compiles it, and compiling fails on a filter the
    environment does not know: without a voice's filters, every template that uses one
    (most do) would go unchecked.
    """
    env = _environment(jinja2.DictLoader({}))
    env.filters.update(local=str, with_pagerduty=str)  # never called: a voice's own, by name
    return env


def _environment(
    loader: jinja2.BaseLoader, compiled: jinja2.BytecodeCache | None = _COMPILED
) -> jinja2.Environment:
    """Return a plain-text Jinja2 environment with the responder's filters."""
    env = jinja2.Environment(
        bytecode_cache=compiled,
        loader=loader,
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails, it is never blank
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # Plain text for PagerDuty, Slack fallbacks and e-mail; an `.html.j2` page is escaped.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=(), default=False
        ),
        auto_reload=False,  # what was checked at start-up is what renders, edits or not
    )
    env.filters.update(
        clock=_clock,
        # Templates say "UTC" after these: a moment in another zone is told in UTC.
        minute=lambda moment: f"{_utc(moment):%Y-%m-%d %H:%M}",
        time_of_day=lambda moment: f"{_utc(moment):%H:%M}",
        duration=format_duration,
        span=_span,
        took=_took,
        utc_moment=lambda moment: f"{_utc(moment):%a %d %b %Y %H:%M} UTC",
        utc_span=_utc_span,
        shown_labels=_shown_labels,
        esc=slack_escape,
    )
    return env


def slack_escape(text: object) -> str:
    """Return text safe inside Slack mrkdwn: &, < and > are Slack's markup, escaped so."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quoted(name: str, text: str) -> str:
    """Return a rendered text chomped and, unless HTML, with no line that reads as a command.

    The whole text, not each value: a value does not know whether it starts a line, and two
    values (or a value and an override's words) can make a line together. HTML (the bundle
    page, e-mail's HTML part) is not where a note is copied from: its text part is quoted.
    """
    text = _chomp(text)
    return text if name.endswith(".html.j2") else quote_commands(text)


def _chomp(text: str) -> str:
    """Return text without the newlines a template's last block leaves at its end."""
    return text.rstrip("\n")


def _describe(exc: jinja2.TemplateError) -> str:
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template not found: {exc.name}"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or exc.name}: line {exc.lineno}: {exc.message}"
    return str(exc.message or exc)


def _clock(moment: datetime) -> str:
    return f"{_utc(moment):%Y-%m-%d %H:%M %Z}".strip()


def _utc(moment: datetime) -> datetime:
    """Return an aware moment in UTC (a naive one is taken as UTC already)."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _utc_span(start: datetime, end: datetime) -> str:
    """Return a window as `13:05-14:05 UTC`, with the dates when it spans midnight."""
    start, end = _utc(start), _utc(end)
    if start.date() == end.date():
        return f"{start:%H:%M}-{end:%H:%M} UTC"
    return f"{start:%d %b %H:%M} - {end:%d %b %H:%M} UTC"


def _span(span: timedelta | None) -> str:
    if span is None:
        return "-"
    return "0s" if span.total_seconds() < 1 else format_duration(span)


def _shown_labels(labels: Mapping[str, str]) -> str:
    return "".join(f" {k}={labels[k]}" for k in SHOWN_LABELS if k in labels)


def headline(alert: Alert) -> str:
    """Return an alert's name and summary, as a note's first line names it."""
    return f"{alert.name}: {alert.summary}" if alert.summary != alert.name else alert.name
