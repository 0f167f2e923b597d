"""The work behind the pipeline tasks: plain functions over a Runtime, testable without a broker."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from collectors.contract import CollectorContext, Evidence, Status, Target
from collectors.registry import run_collector
from tasks.actions import approval
from tasks.evidence import bundle
from tasks.evidence.links import bundle_location, bundle_path
from tasks.evidence.shared_checks import run_shared
from tasks.notes import markers
from tasks.notes.voice import headline
from tasks.notify.slack_blocks import channels_for
from tasks.notify.slack_queue import tell_slack
from tasks.pagerduty.client import IncidentRef, PagerDutyUnavailable
from tasks.run import judged_again
from tasks.run.security import SECURITY_REQUEST, request_security_team, security_call
from tasks.run.state import RunState, existing_run, load_run, run_key, save_run
from tasks.runtime import Runtime
from tasks.store import sla_clock
from tasks.store.correlation import CorrelationLedger
from tasks.store.deliveries import (
    DEDUP_TTL,
    PREFIX,
    Delivery,
    current_attempt,
)
from tasks.store.deliveries import run_id as make_run_id
from tasks.store.slack import SlackThreads
from triage.actions import fitting_proposals, origin_first, run_facts
from triage.classify import classify
from triage.communication import DESK_ALERT, desk_told
from triage.models import (
    Alert,
    Classification,
    ListedAlert,
    parse_alertmanager,
    parse_pagerduty,
)
from triage.policy import Policy, format_duration
from triage.sla import deadlines, is_market_open

log = logging.getLogger(__name__)


def prepare_run(rt: Runtime, delivery_id: str, run: int, now: datetime) -> RunState | None:
    """Return the run's state, creating it from the stored delivery the first time."""
    run_id = make_run_id(delivery_id, run)
    existing = existing_run(rt, run_id)
    if existing is not None and (existing.alerts or existing.pagerduty_incident is not None):
        return existing
    delivery = rt.deliveries.load(delivery_id)
    if delivery is None:
        log.warning("delivery %s not found (expired or never recorded)", delivery_id)
        return existing
    if delivery.source == "pagerduty":
        state = _pagerduty_run(rt, delivery, run_id, run, now)
    else:
        state = _alertmanager_run(rt, delivery, run_id, run)
    if existing is not None and state is not None:
        # Saved mid-flight by the previous version, which kept the first note's lines, not
        # what it lists: the rest of the run stands, the facts come from the delivery again.
        existing.alerts, existing.truncated_alerts = state.alerts, state.truncated_alerts
        existing.pagerduty_incident = state.pagerduty_incident
        save_run(rt, existing)
        return existing
    if state is None:
        rt.deliveries.update(delivery_id, pipeline="skipped: nothing to respond to")
        return None
    save_run(rt, state)
    rt.deliveries.update(delivery_id, pipeline="running", run_id=run_id)
    return state


def _alertmanager_run(rt: Runtime, delivery: Delivery, run_id: str, run: int) -> RunState | None:
    chosen = fresh_firing_alerts(delivery, replay=run > 1)
    if not chosen or delivery.classification is None:
        return None
    classification = delivery.classification
    lead = chosen[0][0]
    triggered_at = min(alert.starts_at for alert, _ in chosen)
    return RunState(
        run_id=run_id,
        delivery_id=delivery.id,
        run=run,
        incident_key=delivery.incident_key,
        alert_name=lead.name,
        title=headline(lead),
        classification=classification,
        fingerprints=[alert.fingerprint for alert, _ in chosen],
        deadlines=deadlines(classification.priority, triggered_at, rt.policy),
        collectors=list(rt.policy.plan[classification.priority]),
        services=affected_services([a for a, _ in chosen], rt.policy),
        alerts=[ListedAlert.of(alert, c) for alert, c in chosen],
        truncated_alerts=int(delivery.record.get("truncated_alerts") or 0),
        affected=named_services([a for a, _ in chosen], rt.policy),
        expression=alert_expression(lead.generator_url),
        rules=list(dict.fromkeys(c.rule for _, c in chosen)),
    )


def _pagerduty_run(
    rt: Runtime, delivery: Delivery, run_id: str, run: int, now: datetime
) -> RunState | None:
    event = parse_pagerduty(delivery.payload())
    incident = event.incident
    if incident is None:
        return None
    classification = delivery.classification or classify(incident, rt.policy, now)
    triggered_at = event.occurred_at or now
    return RunState(
        run_id=run_id,
        delivery_id=delivery.id,
        run=run,
        incident_key=incident.incident_key,
        alert_name=incident.title[:80] or incident.id,
        title=incident.title or incident.id,
        classification=classification,
        fingerprints=[],
        deadlines=deadlines(classification.priority, triggered_at, rt.policy),
        collectors=list(rt.policy.plan[classification.priority]),
        services=services_named_in(incident.title, rt.policy),
        pagerduty_incident=incident,
        incident_id=incident.id,
        affected=[n for n in rt.policy.catalog if _names(n, incident.title)],
        rules=[classification.rule],
    )


def services_named_in(text: str, policy: Policy) -> list[str]:
    """Return catalog service names, those named as words in `text` first."""
    named = [n for n in policy.catalog if _names(n, text)]
    return named + [name for name in policy.catalog if name not in named]


def _names(service: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(service)}(?![\w-])", text) is not None


def alert_expression(generator_url: str) -> str:
    """Return the PromQL of an alert's generatorURL (`g0.expr`), or "" when it has none."""
    values = parse_qs(urlsplit(generator_url).query).get("g0.expr", [])
    return values[0] if values else ""


def affected_services(alerts: Sequence[Alert], policy: Policy) -> list[str]:
    """Return catalog service names, those the alerts name first; labels never add new ones."""
    named = named_services(alerts, policy)
    return named + [name for name in policy.catalog if name not in named]


def named_services(alerts: Sequence[Alert], policy: Policy) -> list[str]:
    """Return the catalog services the alerts' `service` or `job` labels name."""
    named = []
    for alert in alerts:
        for candidate in (alert.labels.get("service", ""), alert.labels.get("job", "")):
            name = candidate.removeprefix("eafix-")
            if name in policy.catalog and name not in named:
                named.append(name)
    return named


def find_incident(rt: Runtime, incident_key: str, open_only: bool = True) -> IncidentRef | None:
    """Return the open incident with `incident_key`: known here, or asked of PagerDuty once.

    `open_only=False` (a resolution's note) takes the newest incident, resolved or not.
    """
    if known := rt.incidents.id_for(incident_key):
        return IncidentRef(known, incident_key)
    incident = rt.pagerduty.find_incident(incident_key, open_only)
    if incident is not None and incident.id and open_only:
        rt.incidents.remember_id(incident_key, incident.id)
    return incident


def resolve_incident(rt: Runtime, state: RunState) -> IncidentRef | None:
    """Find the run's PagerDuty incident by key and remember its id."""
    if state.incident_id:
        return state.incident
    incident = find_incident(rt, state.incident_key)
    if incident is not None and incident.id:
        state.incident_id = incident.id
        save_run(rt, state)
        rt.deliveries.update(state.delivery_id, incident_id=incident.id)
    return incident


SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}
PRIORITY_CACHE_SECONDS = 3600


def trigger_incident(rt: Runtime, state: RunState, now: datetime) -> bool:
    """Open the run's incident through the Events API once, when the policy says to trigger.

    Return True when an event was sent (the caller then looks the incident up again).
    """
    if rt.policy.pagerduty.incident != "trigger" or not state.incident_key:
        return False
    if rt.deliveries.effect_done(state.run_id, "trigger"):
        return False
    priority = state.classification.priority
    event = {
        "event_action": "trigger",
        "dedup_key": state.incident_key,
        "payload": {
            "summary": rt.voice.event_summary(priority, state.title),
            "source": "eafix-responder",
            "severity": SEVERITY[priority],
            "custom_details": {
                "why": state.classification.reason,
                "delivery": state.delivery_id,
            },
        },
        "links": [
            {"href": bundle_location(rt.settings, state.run_id, now), "text": "Evidence bundle"}
        ],
    }
    rt.deliveries.begin_effect(state.run_id, "trigger")
    rt.pagerduty.trigger(event)
    rt.deliveries.mark_effect(state.run_id, "trigger", state.incident_key)
    return True


def set_incident_priority(rt: Runtime, state: RunState, incident: IncidentRef) -> None:
    """Set the incident's PagerDuty priority from ours once, when the account has priorities."""
    wanted = rt.policy.pagerduty.priorities.get(state.classification.priority, "")
    if not rt.policy.pagerduty.set_priority or incident.id is None or not wanted:
        return
    if rt.deliveries.effect_done(state.run_id, "priority"):
        return
    found = priority_id(rt, wanted)
    if found is None:
        rt.deliveries.mark_effect(state.run_id, "priority", f"the account has no priority {wanted}")
        return
    rt.pagerduty.set_priority(incident, found)
    rt.deliveries.mark_effect(state.run_id, "priority", found)


def priority_id(rt: Runtime, name: str) -> str | None:
    """Return the id of the account's PagerDuty priority called `name` (None: it has none);
    the account's list is asked once an hour."""
    cached = rt.redis.get(f"{PREFIX}pagerduty-priorities")
    if cached is None:
        found = rt.pagerduty.priorities()
        rt.redis.set(f"{PREFIX}pagerduty-priorities", json.dumps(found), ex=PRIORITY_CACHE_SECONDS)
    else:
        found = json.loads(cached)
    match = next((p for p in found if p.get("name") == name), None)
    return str(match["id"]) if match is not None else None


def start_clock(rt: Runtime, state: RunState) -> None:
    """Register the run's SLA deadlines for its incident (again on a reopen: they move)."""
    if state.incident_id:
        due = state.deadlines.to_dict()
        if rt.settings.outbox_mode:  # no PagerDuty webhook says it triggered again
            rt.incidents.begin_cycle(
                state.incident_id, state.title, state.incident_key, state.deadlines.triggered_at
            )
        found = sla_clock.deadlines_for(state.incident_id, state.run_id, state.title, due)
        # Judged again at the market's next open or close, when that changes its priority.
        found += judged_again.next_deadline(
            rt, state.incident_id, state.run_id, state.title, due["priority"],
            state.deadlines.triggered_at,
        )  # fmt: skip
        # "Trading Desk: Immediate notification for P0/P1 incidents during market hours": an
        # e-mail at the clock's next tick (tasks.notify.desk).
        triggered = state.deadlines.triggered_at
        if desk_told(state.deadlines.priority, triggered, rt.policy):
            found.append(
                sla_clock.Deadline(
                    state.incident_id,
                    DESK_ALERT,
                    triggered.isoformat(),
                    due["priority"],
                    state.run_id,
                    state.title,
                )
            )
        rt.clock.register(found)
        rt.incidents.mark_clock(
            state.incident_id, due["priority"], due["triggered_at"], state.run_id
        )


def post_first_note(
    rt: Runtime, state: RunState, incident: IncidentRef | None, now: datetime | None = None
) -> None:
    """Post the first-response note once per run, as of `now` (default: the clock's now)."""
    if incident is None:
        record_failure(
            rt,
            state,
            "first_note",
            f"no PagerDuty incident with incident_key={state.incident_key} "
            f"after {rt.settings.incident_lookup_attempts} lookups",
        )
        return
    if rt.deliveries.effect_done(state.run_id, "first_note"):
        return
    security = security_call(rt.policy, state)
    # A reopened incident's new run: the team was called in (or asked for) the first time.
    before = bool(
        security and incident.id and rt.deliveries.effect_done(incident.id, SECURITY_REQUEST)
    )
    content = rt.voice.first_response(
        state.title,
        state.classification,
        state.deadlines,
        state.delivery_id,
        now or datetime.now(UTC),
        alerts=state.alerts,
        truncated=state.truncated_alerts,
        incident=state.pagerduty_incident,
        security_team=security.called if security else None,
        security_before=before,
        correlation=_said_of_correlation(rt, state),
        opened=rt.deliveries.effect_done(state.run_id, "trigger"),  # its urgency may go low
        watch=state.watch,
    )
    note_id = post_note_once(rt, incident, state.run_id, "first_note", content)
    if note_id is not None:
        rt.deliveries.update(state.delivery_id, first_note=note_id)
        if state.watch and incident.id:  # each incident's timeline links the other
            said = f"watch period: {state.watch['sentence']}"
            rt.incidents.log(incident.id, said, "responder")
            again = f"watch period: fired again as {incident.id}"
            rt.incidents.log(str(state.watch["earlier"]), again, "responder")
        if incident.id:  # after the note: Slack never delays PagerDuty's first word
            tell_slack_first(rt, state, incident.id, now or datetime.now(UTC))


def _said_of_correlation(rt: Runtime, state: RunState) -> dict[str, Any] | None:
    """Return what the first note says of correlation: a shadow join it would have made
    (naming the incident it would have joined), or a join it could not make; else None."""
    placed = state.correlation
    told = placed.get("alone") or placed.get("mode") == "shadow"
    if placed.get("action") not in ("join", "flap") or not told:
        return None
    lead = existing_run(rt, str(placed.get("incident", "")))
    joins = (lead.incident_id or lead.title) if lead is not None else ""
    return {**placed, "joins": joins}


def tell_slack_first(rt: Runtime, state: RunState, incident_id: str, now: datetime) -> None:
    """Queue the incident's Slack thread (and posts) when the policy's channels want it."""
    priority = str(state.classification.priority)
    chosen = channels_for(rt.policy.slack, priority, bool(rt.voice.market(now)["open"]))
    if not chosen:
        return
    if "incidents" in chosen:  # replies wait for this thread's parent from now on
        SlackThreads(rt.redis).open(incident_id, priority)
    request = {"what": "first", "incident_id": incident_id, "run_id": state.run_id}
    tell_slack(rt, request, priority)


def call_in_security(rt: Runtime, state: RunState, incident: IncidentRef | None) -> None:
    """Call the security team in once per incident when a rule that pages them matched.

    A request PagerDuty refuses for good leaves a note asking for it by hand.
    """
    if incident is None or incident.id is None:
        return  # the first note's failure says there is no incident
    refused = request_security_team(rt, state, incident)
    if refused is not None:
        post_note_once(rt, incident, state.run_id, "security_refused", refused)
        rt.deliveries.mark_effect(incident.id, SECURITY_REQUEST, "refused: asked by hand")


def post_note_once(
    rt: Runtime, incident: IncidentRef, run_id: str, step: str, content: str
) -> str | None:
    """Post a note exactly once in effect; return its id, or None when it was already posted.

    The note ends with a reference to (run, step). An attempt is claimed as pending before
    the POST (compare-and-set: of two copies of a task, one posts). Another copy's attempt
    pending for less than IN_FLIGHT_SECONDS may still be in flight: this one waits. A retry
    that finds an older or its own attempt pending (the worker died, the answer was lost)
    first looks for the reference among the incident's notes instead of posting a second one.
    """
    ref = markers.reference(run_id, step)
    owner = current_attempt.get()
    seen = rt.deliveries.attempt(run_id, step, owner)
    if seen.done:
        return None
    if seen.in_flight_seconds > 0:
        raise _in_flight(step, seen.in_flight_seconds)
    if seen.interrupted_since is not None:
        if any(ref in text for text in rt.pagerduty.note_contents(incident)):
            rt.deliveries.mark_effect(run_id, step, "found after an interrupted attempt")
            return None
    if not rt.deliveries.claim_attempt(run_id, step, seen.state, owner):
        raise _in_flight(step, 1.0)  # another copy claimed it a moment ago
    body = markers.clip(rt.redact(content), markers.NOTE_LIMIT - len(ref) - 1)
    text = f"{body}\n{ref}"
    if opening := markers.opening(text):
        rt.deliveries.remember_own_note(opening)  # before the POST: its webhook may come first
    try:
        note = rt.pagerduty.create_note(incident, text)
    except PagerDutyUnavailable as exc:
        if exc.surely_not_applied:  # the retry posts without first reading the notes back
            rt.deliveries.clear_pending_effect(run_id, step)
        raise
    note_id = str(note.get("id", ""))
    rt.deliveries.mark_effect(run_id, step, note_id)
    rt.deliveries.remember_own_note(note_id)
    # Whoever PagerDuty says posted it (the From user, or the token's): its notes are ours.
    author = note.get("user")
    rt.deliveries.remember_own_author(
        str(author.get("id") or "") if isinstance(author, dict) else ""
    )
    if incident.id:
        rt.incidents.log(incident.id, f"note: {body.splitlines()[0]}", "responder")
        if step not in NOT_FOR_SLACK:  # the same words in the incident's Slack thread
            request = {"what": "note", "incident_id": incident.id, "key": f"{run_id}/{step}"}
            tell_slack(rt, {**request, "text": body})
    return note_id


# The first note is the thread's parent; an answer to a person's note command is for them.
NOT_FOR_SLACK = frozenset({"first_note", "command_answer"})


def _in_flight(step: str, wait: float) -> PagerDutyUnavailable:
    """Return the wait for another copy's attempt at `step`: held back, as for the budget."""
    return PagerDutyUnavailable(
        f"PagerDuty {step} held back: another attempt at it is in flight",
        429,
        {"ratelimit-reset": f"{wait:.3f}"},
        held_back=True,
    )


class IncidentNotFound(LookupError):
    """No PagerDuty incident has the key (yet)."""


def classified_alerts(delivery: Delivery) -> list[tuple[Alert, Classification]]:
    """Return a stored delivery's alerts with the classification the receiver gave each."""
    group = parse_alertmanager(delivery.payload())
    known = delivery.alert_classifications
    return [(a, known[a.fingerprint]) for a in group.alerts if a.fingerprint in known]


def gather_evidence(rt: Runtime, run_id: str) -> list[dict[str, Any]]:
    """Run the run's collectors at once, in threads; return their manifest entries.

    They wait on the network, not the CPU: in threads a run holds one worker slot however many
    collectors hang, and its evidence takes as long as the slowest one. Entries are kept, so a
    retry of the evidence note does not collect again.
    """
    key = f"{run_key(run_id)}:entries"
    if (kept := rt.redis.get(key)) is not None:
        return list(json.loads(kept))
    state = load_run(rt, run_id)
    names = state.collectors
    # Each collector keeps its own timeout; this bounds one that does not (a stuck library).
    limit = rt.settings.collector_timeout_seconds * 4 + 10
    pool = ThreadPoolExecutor(max_workers=max(len(names), 1), thread_name_prefix="collect")
    futures = {pool.submit(collect_evidence, rt, run_id, name, state): name for name in names}
    wait(futures, timeout=limit)
    pool.shutdown(wait=False, cancel_futures=True)  # a stuck thread is left behind, not awaited
    entries = [
        future.result() if future.done() else _unfinished(name, limit)
        for future, name in futures.items()
    ]
    order = {name: n for n, name in enumerate(state.collectors)}  # the plan's order
    entries.sort(key=lambda entry: order.get(entry["name"], len(order)))
    rt.redis.set(key, json.dumps(entries), ex=DEDUP_TTL)
    return entries


def _unfinished(name: str, limit: float) -> dict[str, Any]:
    evidence = Evidence(name, Status.TIMEOUT, f"did not finish within {limit:g} s")
    evidence.duration_seconds = limit
    return bundle.manifest_entry(evidence, [], lambda text: text)


def collect_evidence(
    rt: Runtime,
    run_id: str,
    name: str,
    state: RunState | None = None,
    timeouts: tuple[type[BaseException], ...] = (),
) -> dict[str, Any]:
    """Run one collector for the run, store its files in the bundle, return its manifest entry."""
    state = state or load_run(rt, run_id)
    target = Target(
        services=tuple(rt.policy.catalog[s] for s in state.services if s in rt.policy.catalog),
        alert_name=state.alert_name,  # the alertname: it picks the Prometheus rule, by exact name
        affected=tuple(state.affected),
        expression=state.expression,
        started_at=state.deadlines.triggered_at,
    )
    return collect_into_bundle(rt, run_id, name, target, timeouts, shared=True)


def collect_into_bundle(
    rt: Runtime,
    bundle_id: str,
    name: str,
    target: Target,
    timeouts: tuple[type[BaseException], ...] = (),
    *,
    shared: bool = False,
) -> dict[str, Any]:
    """Run collector `name` on `target`, store its files redacted, return its manifest entry.

    `shared`: reuse a recent check of the same target by another incident (see shared_checks).
    """
    ctx = collector_context(rt)

    def run() -> Evidence:
        return run_collector(name, target, ctx, timeouts=timeouts)

    others_take = rt.settings.collector_timeout_seconds * 2 + 1  # how long to wait for a sharer
    evidence = (
        run_shared(rt.redis, name, target, run, others_take, redact=rt.redact) if shared else run()
    )
    folder = bundle_path(rt.settings.bundle_dir, bundle_id)
    stored = bundle.store_files(folder, evidence.files, rt.redact)
    return bundle.manifest_entry(evidence, stored, rt.redact)


def collector_context(rt: Runtime) -> CollectorContext:
    """Return what collectors may use, from the settings."""
    return CollectorContext(
        redis_url=rt.settings.eafix_redis_url,
        timeout_seconds=rt.settings.collector_timeout_seconds,
        redact=rt.redact,
        prometheus_url=rt.settings.prometheus_url,
        postgres_dsn=rt.settings.postgres_dsn.reveal(),
        git_repo=rt.settings.deploy_repo,
        docker_url=rt.settings.docker_url,
        compose_project=rt.settings.compose_project,
    )


def finish_run(
    rt: Runtime,
    run_id: str,
    entries: list[dict[str, Any]],
    now: datetime,
    send: approval.Send | None = None,
) -> str:
    """Write the bundle manifest and summary, then post the evidence note once.

    `send` queues the tasks of actions an automatic rule approves (None: none is approved).
    """
    state = load_run(rt, run_id)
    folder = bundle_path(rt.settings.bundle_dir, run_id)
    header = {
        "bundle_id": run_id,
        "delivery_id": state.delivery_id,
        "run": state.run,
        "title": state.title,
        "incident": {
            "id": state.incident_id,
            "incident_key": state.incident_key,
            "label": state.incident.label,
        },
        "classification": state.classification.to_dict(),
        "deadlines": state.deadlines.to_dict(),
        "alerts": state.fingerprints,
    }
    bundle.write_manifest(folder, header, entries, now, rt.voice.bundle_index)
    rt.deliveries.update(state.delivery_id, bundle_id=run_id, bundle_path=str(folder.resolve()))
    evidence = [_evidence_of(entry) for entry in entries]
    content = rt.voice.evidence(
        state.classification,
        state.alert_name,
        evidence,
        bundle_location(rt.settings, run_id, now, state.incident_id),
        top_error_lines(folder),
        proposals=propose_actions(rt, state, entries, now, send),
    )
    incident = state.incident
    if incident.id is None and not rt.settings.outbox_mode:
        record_failure(rt, state, "evidence_note", "no PagerDuty incident to attach to")
    elif (note_id := post_note_once(rt, incident, run_id, "evidence_note", content)) is not None:
        rt.deliveries.update(state.delivery_id, evidence_note=note_id)
        priority = str(state.classification.priority)
        desk = rt.policy.slack.trading
        market_open = bool(rt.voice.market(now)["open"])
        if incident.id and desk is not None and desk.wants(priority, market_open):
            # The trading desk hears the trading impact once it is known.
            request = {"what": "trading", "incident_id": incident.id, "run_id": run_id}
            tell_slack(rt, request, priority)
    # Packed after the note: the on-call engineer should not wait for gzip.
    bundle.archive(folder)
    rt.deliveries.update(state.delivery_id, pipeline="done")
    return run_id


def propose_actions(
    rt: Runtime,
    state: RunState,
    entries: list[dict[str, Any]],
    now: datetime,
    send: approval.Send | None = None,
) -> list[dict[str, Any]]:
    """Make the run's proposals from the policy's rules (once per run); approve those of an
    automatic rule (within its limit); return them for the note.

    A run without a PagerDuty incident proposes nothing: there is no incident to approve on.
    """
    if not state.incident_id or not rt.policy.actions.propose:
        return []
    market_open = is_market_open(now, rt.policy.market_hours)
    facts = run_facts(
        rt.policy,
        state.classification.priority,
        market_open,
        entries,
        state.classification.rule,
        alert_at=state.deadlines.triggered_at,
    )
    # Of the same action on several services, the probable origin's first (the topology's).
    held = CorrelationLedger(rt.redis).read().find(state.run_id)
    origin = rt.policy.topology.probable_origin(held.services()) if held is not None else None
    fitting = origin_first(fitting_proposals(rt.policy, facts), origin)
    made = approval.propose_for_run(rt, state.run_id, state.incident_id, fitting, now)
    rules = {rule.name: rule for rule in rt.policy.actions.propose}
    # Those an automatic rule approves below are no longer waiting when the e-mails go out.
    approval.offer_links(rt, state.incident_id, [p.id for p in made])
    shown = []
    for p in made:
        rule = rules.get(p.rule)
        ran = ""
        if rule is not None and rule.automatic and send is not None:
            ran = approval.approve_automatic(rt, p, rule, send, now)
        why = p.why
        if rule is not None and rule.automatic and not ran:
            limit = format_duration(rule.at_most_once_per)
            why += f"; not automatic this time: rule {rule.name} runs it at most once per {limit}"
        shown.append(
            {
                "id": p.id,
                "action": p.action,
                "target": p.target,
                "why": why,
                "rule": p.rule,
                "expires": p.expires,
                "automatic": bool(ran),
                "ran": ran,
            }
        )
    return shown


def top_error_lines(folder: Path, count: int = 3) -> list[str]:
    """Return the latest error lines the collectors saved (already redacted) in a bundle."""
    lines = []
    for path in sorted(folder.glob("*/*.errors.log")):
        service = path.name.removesuffix(".errors.log")
        lines += [f"{service}: {line}" for line in path.read_text("utf-8").splitlines() if line]
    # Lines start with their timestamp (docker logs --timestamps): the latest sort last.
    return sorted(lines, key=lambda line: line.split(": ", 1)[1])[-count:]


def record_failure(rt: Runtime, state: RunState, step: str, reason: str) -> None:
    """Record why a step of the run could not be done, on the run and its delivery."""
    log.warning("run %s: %s failed: %s", state.run_id, step, reason)
    state.failures[step] = reason
    save_run(rt, state)
    rt.deliveries.update(state.delivery_id, failures=state.failures)


def fresh_firing_alerts(
    delivery: Delivery, *, replay: bool = False
) -> list[tuple[Alert, Classification]]:
    """Return the firing alerts this delivery brought first (all its firing ones on a replay)."""
    return [
        (alert, classification)
        for alert, classification in classified_alerts(delivery)
        if alert.status == "firing" and (replay or alert.dedup_key in delivery.fresh_keys)
    ]


def _evidence_of(entry: dict[str, Any]) -> Evidence:
    return Evidence(
        collector=entry["name"],
        status=Status(entry["status"]),
        summary=entry["summary"],
        duration_seconds=entry["duration_seconds"],
    )
