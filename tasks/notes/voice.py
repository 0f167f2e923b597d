"""Every text the responder writes, rendered from the Jinja2 templates in `templates/`.

The code decides what to say (the facts, as template variables); the templates say it. A
policy's `notes.templates` directory may override any template by its file name. A template
that names a variable its note does not have is an error when the policy is checked and when
a worker starts, never a blank in a note at 3 a.m. A rendered text is tidied: no trailing
spaces, never two blank lines in a row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from collectors.contract import Evidence, Status
from tasks.notes.markers import clip
from triage import note_commands
from triage.classify import most_severe
from triage.incident_status import StatusNow
from triage.models import Alert, Classification, Incident, ListedAlert, Priority
from triage.note_commands import Malformed
from triage.policy import Policy, format_duration
from triage.report import IncidentTimes, PriorityMetrics
from triage.sla import Deadlines, deadlines, next_market_change

TEMPLATES = Path(__file__).with_name("templates")
SHOWN_LABELS = ("service", "severity", "category", "scope", "job", "instance")
_STATUS_ORDER = {Status.FAILED: 0, Status.TIMEOUT: 1, Status.OK: 2, Status.SKIPPED: 3}


class TemplateProblem(ValueError):
    """A note template that cannot be used, naming the template and what is wrong."""


@dataclass
class Voice:
    """The responder's writing: one method per text, each rendering its template."""

    policy: Policy
    overrides: str = ""  # a directory of templates that replace built-in ones by file name
    _used: dict[str, set[str]] = field(default_factory=dict, init=False, repr=False)
    _env: jinja2.Environment = field(init=False, repr=False)

    def __post_init__(self) -> None:
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(TEMPLATES)]
        if self.overrides:
            loaders.insert(0, jinja2.FileSystemLoader(self.overrides))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,  # a misspelt variable fails, it is never blank
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,  # plain text for PagerDuty, Slack fallbacks and e-mail
        )
        self._env.filters.update(
            clock=_clock,
            # Templates say "UTC" after these: a moment in another zone is told in UTC.
            minute=lambda moment: f"{_utc(moment):%Y-%m-%d %H:%M}",
            time_of_day=lambda moment: f"{_utc(moment):%H:%M}",
            duration=format_duration,
            span=_span,
            took=_took,
            shown_labels=_shown_labels,
            local=self.local,
        )

    @classmethod
    def of(cls, policy: Policy) -> Voice:
        """Return the voice of `policy`: its override directory, if any, before the built-ins."""
        return cls(policy, policy.note_templates)

    def render(self, name: str, **context: Any) -> str:
        """Render template `name` with `context`; raise TemplateProblem when it cannot be."""
        self._used.setdefault(name, set()).update(context)
        try:
            text = self._env.get_template(name).render(**context)
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"{name}: {_describe(exc)}") from exc
        return tidy(text)

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
    ) -> str:
        """Render the note posted at once: priority and why, market state, deadlines, what fired."""
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
                after_hours=self.after_hours(due, now),
                alerts=list(alerts),
                truncated=truncated,
                incident=incident,
                runbook_url=self.policy.runbook_url,
                delivery_id=delivery_id,
            )
        )

    def market(self, now: datetime) -> dict[str, Any]:
        """Return whether the market trades now and when that changes, in market time."""
        is_open, change = next_market_change(now, self.policy.market_hours)
        return {"open": is_open, "change": self.local(change)}

    def after_hours(self, due: Deadlines, now: datetime) -> dict[str, Any] | None:
        """Return when a held incident's actions begin and what its urgency does; None: now."""
        held = self.policy.business_hours_only.get(due.priority)
        if held is None or not due.deferred or now >= due.starts:
            return None
        return {
            "starts": self.local(due.starts),
            "urgency_low": held.urgency_outside == "low",
            "high_again": held.urgency_at_opening == "high",
        }

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
    ) -> str:
        """Render the evidence note: what failed first, what is healthy, top errors, the bundle."""
        ran = [e for e in evidence if e.status is not Status.SKIPPED]
        return clip(
            self.render(
                "evidence.txt.j2",
                priority=str(classification.priority),
                title=title,
                ran=len(ran),
                problems=sum(e.status is not Status.OK for e in ran),
                skipped=len(evidence) - len(ran),
                evidence=[
                    {
                        "status": item.status.value,
                        "collector": item.collector,
                        "seconds": item.duration_seconds,
                        "summary": item.summary,
                    }
                    for item in sorted(evidence, key=lambda e: _STATUS_ORDER[e.status])
                ],
                error_lines=list(error_lines),
                bundle=bundle_location,
            )
        )

    def joined_alerts(
        self,
        alerts: Sequence[tuple[Alert, Classification]],
        delivery_ids: Sequence[str],
        refresh: timedelta,
        now: datetime,
        shown: int = 20,
    ) -> str:
        """Render the one note listing the alerts that joined an incident's run meanwhile."""
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
            )
        )

    def resolved(self, alerts: Sequence[Alert], delivery_id: str) -> str:
        """Render the note for alerts Alertmanager reports resolved; nothing is diagnosed."""
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
            )
        )

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

    def sla_gave_up(self, priority: str, kind: str, why: str, by_hand: str) -> str:
        """Render the note saying an SLA action failed for good, and what to do by hand."""
        return self.render(
            "sla_gave_up.txt.j2", priority=priority, kind=kind, why=why, by_hand=by_hand
        )

    def management_resolved(self, priority: str, times: IncidentTimes | None) -> str:
        """Render management's notification of an incident resolved before it fell due."""
        span = self.policy.sla[Priority(priority)].notify_management
        return self.render(
            "management_resolved.txt.j2",
            priority=priority,
            span=str(span),
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

    def management(self, priority: str, outcome: str, *, called: str = "", why: str = "") -> str:
        """Render the management note: requested (from `called`), failed (`why`) or by hand."""
        span = self.policy.sla[Priority(priority)].notify_management
        return self.render(
            "management.txt.j2",
            priority=priority,
            span=str(span),
            outcome=outcome,
            called=called,
            why=why,
        )

    def status_update(
        self, incident: str, status: StatusNow, impact: str, next_update: datetime | None
    ) -> str:
        """Render the runbook's status update (Status / Impact / Actions / ETA / Next Update).

        `status` holds the runbook's word and what people said; no `next_update`: the last one.
        """
        return self.render(
            "status_update.txt.j2",
            incident=incident,
            status=status.word,
            impact=impact,
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

    def check(self) -> list[str]:
        """Render every template with sample facts; return what is wrong (nothing: usable).

        Rendering catches a misspelt attribute on the path the sample takes; the template's
        own variables are compared with those its note passes, which catches a misspelt name
        in any branch.
        """
        problems = []
        known = {p.name for p in TEMPLATES.glob("*.j2") if not p.name.startswith("_")}
        if self.overrides:
            folder = Path(self.overrides)
            if not folder.is_dir():
                return [f"{folder}: the note template directory does not exist"]
            for path in sorted(folder.iterdir()):
                if path.name not in known and not path.name.startswith("_"):
                    problems.append(
                        f"{path}: not a template the responder writes "
                        f"(one of: {', '.join(sorted(known))})"
                    )
        for name, render in _samples(self).items():
            try:
                render()
                failed = ""
            except TemplateProblem as exc:
                failed = str(exc)
            used = self._used.get(name, set())  # what the note passes, even when it failed
            try:
                source, filename, _ = self._env.loader.get_source(self._env, name)  # type: ignore[union-attr]
                undeclared = meta.find_undeclared_variables(self._env.parse(source))
            except jinja2.TemplateError:
                undeclared, filename = set(), name  # the render failed on it: said above
            if unknown := sorted(undeclared - used):
                problems += [
                    f"{filename}: uses {u!r}, which this note does not have "
                    f"(it has: {', '.join(sorted(used))})"
                    for u in unknown
                ]
            elif failed:
                problems.append(failed.replace(name, filename or name, 1))
        missing = known - set(_samples(self))
        problems += [f"{name}: no sample to check it with" for name in sorted(missing)]
        return problems


def _samples(voice: Voice) -> dict[str, Callable[[], str]]:
    """Return a render with representative facts for each template, for `Voice.check`."""
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    first = Classification(Priority.P1, "sample-rule", "a sample reason")
    due = deadlines(Priority.P1, now, voice.policy)
    alert = Alert(
        "firing", {"alertname": "Sample", "service": "sample"}, {"summary": "a sample"},
        now, now.isoformat(), None, "", "f1",
    )  # fmt: skip
    listed = ListedAlert.of(alert, first)
    times = IncidentTimes("PSAMPLE", Priority.P1, now, now + timedelta(minutes=5), None)
    return {
        "first_response.txt.j2": lambda: voice.first_response(
            "Sample", first, due, "d1", now, alerts=[listed], truncated=1
        ),
        "evidence.txt.j2": lambda: voice.evidence(
            first,
            "Sample",
            [Evidence("http", Status.FAILED, "down", duration_seconds=0.2)],
            "https://responder/b/1",
            ["svc: ERROR sample"],
        ),  # fmt: skip
        "joined_alerts.txt.j2": lambda: voice.joined_alerts(
            [(alert, first)], ["d1", "d2"], timedelta(minutes=10), now
        ),
        "resolved.txt.j2": lambda: voice.resolved([alert], "d1"),
        "sla_missed.txt.j2": lambda: voice.sla_missed("P1", "acknowledge", now, "5m", 2),
        "sla_respond.txt.j2": lambda: voice.sla_respond("P1", now, "5m", "triggered"),
        "sla_gave_up.txt.j2": lambda: voice.sla_gave_up("P1", "next_update", "refused", "act"),
        "management.txt.j2": lambda: voice.management("P1", "requested", called="PTEAM (team)"),
        "status_update.txt.j2": lambda: voice.status_update(
            "PSAMPLE", StatusNow("Identified", "a sample", "Dana", now, False, True), "sample", now
        ),
        "command_answer.txt.j2": lambda: voice.command_answer(
            [Malformed("/eta soon", "expected a duration")], "Dana"
        ),
        "closing.txt.j2": lambda: voice.closing(times),
        "management_resolved.txt.j2": lambda: voice.management_resolved("P1", times),
        "management_summary.txt.j2": lambda: voice.management_summary(
            now - timedelta(days=1),
            now,
            [],
            [
                {
                    "id": "PSAMPLE",
                    "priority": "P2",
                    "title": "Sample",
                    "status": "resolved",
                    "started": now,
                    "acknowledged": timedelta(minutes=5),
                    "resolved": None,
                }
            ],
        ),  # fmt: skip
        "report.txt.j2": lambda: voice.report([]),
        "event_summary.txt.j2": lambda: voice.event_summary("P1", "Sample"),
    }


def tidy(text: str) -> str:
    """Return text without trailing spaces, outer blank lines or two blank lines in a row.

    Templates then need no whitespace control around their blocks and macros.
    """
    lines = [line.rstrip() for line in text.splitlines()]
    kept = [line for n, line in enumerate(lines) if line or (n > 0 and lines[n - 1])]
    return "\n".join(kept).strip("\n")


def _describe(exc: jinja2.TemplateError) -> str:
    where = f"line {exc.lineno}: " if isinstance(exc, jinja2.TemplateSyntaxError) else ""
    return f"{where}{exc.message or exc}"


def _clock(moment: datetime) -> str:
    return f"{_utc(moment):%Y-%m-%d %H:%M %Z}".strip()


def _utc(moment: datetime) -> datetime:
    """Return an aware moment in UTC (a naive one is taken as UTC already)."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _span(span: timedelta | None) -> str:
    if span is None:
        return "-"
    return "0s" if span.total_seconds() < 1 else format_duration(span)


def _shown_labels(labels: Mapping[str, str]) -> str:
    return "".join(f" {k}={labels[k]}" for k in SHOWN_LABELS if k in labels)


def headline(alert: Alert) -> str:
    """Return an alert's name and summary, as a note's first line names it."""
    return f"{alert.name}: {alert.summary}" if alert.summary != alert.name else alert.name
