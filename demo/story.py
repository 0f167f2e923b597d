"""What `make demo` tells, as it happens: each step of an incident in words an engineer follows.

A Story asks its watchers, a few times a second, what is new, and prints it. Each watcher is a
callable returning the Lines it has not told yet; the built-in ones follow Prometheus's alerts,
the responder's deliveries, the PagerDuty incidents and their notes, and the runbook actions
the policy's rules propose in the evidence step. The approver is a watcher too: once the
evidence is in, it approves each proposal waiting on the scenario's incident by a PagerDuty
note, after a few seconds, and says so.

A part that has more to tell (the Slack messages, the e-mails, a link to the incident page)
adds a watcher: `story.watchers.append(my_watcher)`; the story prints what it returns, in turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
import requests

from demo.approve import NoteApprover
from tasks.store.deliveries import DeliveryStore
from tasks.store.proposals import APPROVED, CLOSED, ENDED, WAITING, Proposal, ProposalStore

if TYPE_CHECKING:
    from demo.world import World

POLL_SECONDS = 0.3
# After the evidence note, how long a proposal may take to show before the story ends without.
PROPOSALS_GRACE_SECONDS = 5.0
# After the incident resolved, how long to wait for the responder's own resolution note.
RESOLVED_NOTE_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Line:
    """One step of the story: a sentence, and the lines under it (a note's text)."""

    text: str
    detail: tuple[str, ...] = ()


Watcher = Callable[[], Iterable[Line]]


def printed(line: Line) -> None:
    """Print a Line with the time, its detail indented under it."""
    print(f"{datetime.now(UTC):%H:%M:%S}  {line.text}", flush=True)
    for row in line.detail:
        print(f"          | {row}", flush=True)


@dataclass
class Progress:
    """What the story knows of the scenario's incident, for deciding when it is over."""

    alert: str
    incident_id: str = ""
    evidence_at: float = 0.0  # when the evidence note was seen (monotonic), 0 before
    proposals: dict[str, str] = field(default_factory=dict)  # id -> status
    alert_fired: bool = False
    alert_resolved: bool = False
    incident_resolved_at: float = 0.0
    resolved_note: bool = False

    @property
    def evidence(self) -> bool:
        """Return True once the evidence note is on the incident."""
        return bool(self.evidence_at)

    def finished(self) -> bool:
        """Return True when the story has nothing more to wait for.

        Without proposals it ends with the evidence; with them, once each has ended, the alert
        has cleared, PagerDuty resolved the incident and the responder noted the resolution.
        """
        if not self.evidence:
            return False
        if not self.proposals:
            return time.monotonic() - self.evidence_at > PROPOSALS_GRACE_SECONDS
        if any(status in (WAITING, APPROVED) for status in self.proposals.values()):
            return False
        if not (self.alert_resolved and self.incident_resolved_at):
            return False
        waited = time.monotonic() - self.incident_resolved_at
        return self.resolved_note or waited > RESOLVED_NOTE_GRACE_SECONDS


class Story:
    """Follow the world and tell each new step; `run` returns when the incident is over."""

    def __init__(
        self,
        world: World,
        alert: str,
        approver: NoteApprover | None = None,
        approve_after: float = 5.0,
        out: Callable[[Line], None] = printed,
    ) -> None:
        self.world = world
        self.out = out
        self.progress = Progress(alert)
        self.deliveries = DeliveryStore(redis.Redis.from_url(world.redis_url))
        self.proposal_store = ProposalStore(self.deliveries.redis)
        self._seen: set[str] = set()
        self._firing: dict[str, str] = {}
        self._incident_status: dict[str, str] = {}
        self._proposal_status: dict[str, str] = {}
        self._eafix: dict[str, str] = {}  # service -> container state; "trading" -> status
        self.told_notes: set[str] = set()  # notes a watcher has told already (the approver's)
        self.approvals = Approvals(self, approver, approve_after) if approver else None
        # The order is the order of telling, within one poll.
        self.watchers: list[Watcher] = [
            self.eafix,
            self.alerts,
            self.deliveries_received,
            self.incidents,
            self.proposals,
            self.notes,
        ]
        if self.approvals is not None:
            self.watchers.append(self.approvals)
        self.eafix()  # how EAFIX is now: the story tells what changes from here on

    def run(self, timeout: float) -> bool:
        """Tell the story until it is over or `timeout` seconds pass; return whether it ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for watcher in self.watchers:
                for line in watcher():
                    self.out(line)
            if self.progress.finished():
                return True
            time.sleep(POLL_SECONDS)
        return False

    def told(self, proposal_id: str) -> bool:
        """Return True once the story has told that a proposal was made."""
        return proposal_id in self._proposal_status

    def _first(self, key: str) -> bool:
        """Return True the first time `key` is seen."""
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    # --- the watchers ------------------------------------------------------------------

    def eafix(self) -> list[Line]:
        """The simulated EAFIX itself: containers that exit or run again, trading stopping."""
        lines = []
        for name, container in sorted(
            (c.service, c) for c in self.world.docker.containers.values()
        ):
            state = container.state
            before = self._eafix.get(name)
            self._eafix[name] = state
            if before is None or before == state:
                continue
            if state == "running":
                lines.append(Line(f"EAFIX: {name}'s container runs again; it answers, healthy"))
            else:
                lines.append(
                    Line(f"EAFIX: {name}'s container {state} (code {container.exit_code})")
                )
        status = self.world.simulator.trading_status()
        trading = status["trading"]
        if self._eafix.get("trading", "active") != trading:
            if trading == "stopped":
                lines.append(
                    Line(f"EAFIX: the gateway stopped trading at {status['since'][11:19]}: no "
                         "order goes out and nothing is executed until trading resumes")
                )  # fmt: skip
            else:
                lines.append(Line("EAFIX: trading resumed at the gateway"))
        self._eafix["trading"] = trading
        return lines

    def alerts(self) -> list[Line]:
        """Prometheus's alerts that began or stopped firing."""
        firing = self.world.alerts_now()
        if firing is None:  # Prometheus did not answer this time: nothing is known to change
            return []
        lines = []
        now = {a["labels"].get("alertname", "?"): a for a in firing}
        for name, alert in now.items():
            if name not in self._firing:
                summary = alert["annotations"].get("summary", "")
                self._firing[name] = summary
                lines.append(Line(f"Prometheus: {name} is firing ({summary})"))
                if name == self.progress.alert:
                    self.progress.alert_fired, self.progress.alert_resolved = True, False
        for name in [n for n in self._firing if n not in now]:
            del self._firing[name]
            lines.append(Line(f"Prometheus: {name} resolved (its expression is false again)"))
            if name == self.progress.alert and self.progress.alert_fired:
                self.progress.alert_resolved = True
        return lines

    def deliveries_received(self) -> list[Line]:
        """Deliveries to the responder (Alertmanager's, PagerDuty's) and how it classified them."""
        lines = []
        for delivery_id in self.deliveries.list_ids():
            if not self._first(f"delivery:{delivery_id}"):
                continue
            delivery = self.deliveries.get(delivery_id) or {}
            classification = delivery.get("classification") or {}
            if delivery.get("source") == "pagerduty":
                kind = delivery.get("event_type", "an event")
                lines.append(Line(f"responder got PagerDuty's {kind} (delivery {delivery_id})"))
                continue
            alerts = delivery.get("alerts", [])
            names = ", ".join(a["name"] for a in alerts)
            if not any(a.get("status") == "firing" for a in alerts) or not classification:
                said = f"{names} resolved" if alerts else "a delivery"
                lines.append(Line(f"responder got {said} (delivery {delivery_id})"))
                continue
            lines.append(
                Line(
                    f"responder got {names}: {classification.get('priority', '-')}, "
                    f"by rule {classification.get('rule', '-')}: {classification.get('reason', '')}"
                    f" (delivery {delivery_id})"
                )
            )
        return lines

    def incidents(self) -> list[Line]:
        """PagerDuty incidents opened, and each change of their status."""
        lines = []
        for incident_id, incident in list(self.world.pagerduty.incidents.items()):
            status = incident.get("status", "")
            if self._alert_of(incident) and not self.progress.incident_id:
                self.progress.incident_id = incident_id
            before = self._incident_status.get(incident_id)
            if before == status:
                continue
            self._incident_status[incident_id] = status
            if before is None:
                lines.append(
                    Line(f"PagerDuty opened incident {incident_id}: {incident['title'][:70]}")
                )
            elif status == "resolved":
                lines.append(
                    Line(
                        f"PagerDuty incident {incident_id} is resolved "
                        "(Alertmanager sent the resolve event when the alert cleared)"
                    )
                )
            else:
                lines.append(Line(f"PagerDuty incident {incident_id} is {status}"))
            if incident_id == self.progress.incident_id and status == "resolved":
                self.progress.incident_resolved_at = time.monotonic()
        return lines

    def notes(self) -> list[Line]:
        """Every note on every incident, in full."""
        lines = []
        for incident_id in list(self.world.pagerduty.incidents):
            for note in self.world.pagerduty.notes_for(incident_id):
                if not self._first(f"note:{note['id']}") or note["id"] in self.told_notes:
                    continue
                content = note["content"]
                first = content.splitlines()[0] if content else ""
                lines.append(Line(f"note on {incident_id}:", tuple(content.splitlines())))
                if incident_id != self.progress.incident_id:
                    continue
                if " evidence: " in first and not self.progress.evidence:
                    self.progress.evidence_at = time.monotonic()
                if first.startswith("[RESOLVED]"):
                    self.progress.resolved_note = True
        return lines

    def proposals(self) -> list[Line]:
        """Runbook actions proposed, approved, refused and carried out."""
        lines = []
        for proposal in reversed(self.proposal_store.recent(limit=200)):
            if proposal.incident_id == self.progress.incident_id:
                self.progress.proposals[proposal.id] = proposal.status
            before = self._proposal_status.get(proposal.id)
            if before == proposal.status:
                continue
            self._proposal_status[proposal.id] = proposal.status
            if before is None:
                lines.append(Line(_proposed(proposal)))
            if proposal.status in ENDED and before in (None, WAITING) and proposal.approved_by:
                # Approved and done between two looks: the approval is part of the story.
                lines.append(Line(_moved(replace(proposal, status=APPROVED))))
            if proposal.status != WAITING:
                lines.append(Line(_moved(proposal)))
        return lines

    def _alert_of(self, incident: dict[str, Any]) -> bool:
        """Return True for the scenario's incident (with no alert named: the first incident)."""
        return self.progress.alert in incident.get("title", "")


class Approvals:
    """The watcher that approves: each proposal waiting on the scenario's incident, once the
    evidence is in, by a PagerDuty note `approve_after` seconds after it says it will."""

    def __init__(self, story: Story, approver: NoteApprover, approve_after: float) -> None:
        self.story = story
        self.approver = approver
        self.approve_after = approve_after
        self.due: dict[str, float] = {}  # proposal id -> when its note goes
        self.sent: set[str] = set()

    def __call__(self) -> list[Line]:
        progress = self.story.progress
        if not (progress.evidence and progress.incident_id):
            return []
        lines = []
        person = self.approver.person
        for proposal in self.approver.waiting(progress.incident_id):
            # Only what the story has told as proposed, so that the telling keeps its order.
            if proposal.id not in self.due and self.story.told(proposal.id):
                self.due[proposal.id] = time.monotonic() + self.approve_after
                lines.append(
                    Line(
                        f"the demo approves {proposal.id} ({proposal.action} on "
                        f"{proposal.target}) as {person.name} ({person.id}) through a PagerDuty "
                        f"note in {self.approve_after:g} seconds"
                    )
                )
        for proposal_id, due in sorted(self.due.items(), key=self._runbook_order):
            if proposal_id in self.sent or time.monotonic() < due:
                continue
            if self._still_running():
                break  # one at a time: the person reads each outcome before the next approval
            self.sent.add(proposal_id)
            try:
                done = self.approver.approve(progress.incident_id, proposal_id)
            except requests.RequestException as exc:
                lines.append(
                    Line(f"the demo could not approve {proposal_id} by a note: {exc}; approve it "
                         "yourself (see var/demo/env)")
                )  # fmt: skip
                continue
            self.story.told_notes.add(done.note_id)
            lines.append(
                Line(
                    f"{person.name} wrote `/approve {proposal_id}` on {progress.incident_id} "
                    f"(note {done.note_id}); PagerDuty's signed incident.annotated webhook got "
                    f"HTTP {done.status} from the responder (delivery {done.delivery_id or '-'})"
                )
            )
        return lines

    def _runbook_order(self, item: tuple[str, float]) -> tuple[int, float]:
        """Order approvals as the runbook does: Safety Measures (stop trading) before the
        containment that may mend the cause (a restart), then by when each was due."""
        proposal = self.approver.store.get(item[0])
        return (0 if proposal and proposal.action == "stop-trading" else 1, item[1])

    def _still_running(self) -> bool:
        """Return True while an approval the demo sent has not ended: an action approved after
        another one mended the cause would rightly be answered "no longer needed"."""
        for proposal_id in self.sent:
            proposal = self.approver.store.get(proposal_id)
            if proposal is None:
                continue
            # (A refused approval leaves it waiting, counted: that one is over.)
            pending = proposal.status == WAITING and not proposal.refusals
            if proposal.status == APPROVED or pending:
                return True
        return False


def _proposed(proposal: Proposal) -> str:
    """Say who proposed what, and why: a policy rule and what the evidence showed, or a person."""
    why = (
        f"by rule {proposal.rule}: {proposal.why}"
        if proposal.rule
        else f"by {proposal.proposed_by}"
    )
    return (
        f"responder proposed {proposal.id} on {proposal.incident_id}: {proposal.action} on "
        f"{proposal.target}, {why}; it waits for a person's approval"
    )


def _moved(proposal: Proposal) -> str:
    """Say what became of a proposal: approved, ran (what, how long, verified), refused."""
    what = f"{proposal.action} on {proposal.target}"
    if proposal.status == APPROVED:
        return f"{proposal.id} approved by {proposal.approved_by} via {proposal.via}: {what} runs"
    if proposal.status in CLOSED:
        return f"{proposal.id} {proposal.status}: {proposal.reason}; nothing ran"
    if proposal.status in ENDED:
        checks = "; ".join(
            f"{c['check']} {'passed' if c['passed'] else 'FAILED'} after {_took(c['seconds'])}"
            for c in proposal.checks
        )
        verified = f"verification {proposal.verified}" + (f": {checks}" if checks else "")
        return (
            f"{proposal.id} {proposal.status}: {what} ran `{proposal.ran}`, which answered "
            f"{proposal.answer!r} in {_took(proposal.seconds)}; {verified}"
        )
    return f"{proposal.id} is {proposal.status}: {what}"


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
