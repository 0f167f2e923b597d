"""Load and validate the responder policy: rules, market hours, SLA matrix, catalog and plan.

`load(text)` is pure and strict: every problem is reported at once, each with the file, the line
and the field (`policy.yaml:12: rules[3].priority: 'P9' is not one of ...`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from functools import cache, cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match

from triage.diagnostics import Diagnostics, LatencyTest, diagnostics_of, latency_test_of
from triage.models import Priority
from triage.topology import Topology, find_cycle

# libyaml's parser where PyYAML was built with it (the wheels are): about 15 times faster on
# the built-in policy than the pure-Python one, with the same nodes, marks and values.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file, where it is and what."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.field}: {self.message}"


class PolicyError(ValueError):
    """A policy that cannot be used; lists every problem found, each with its line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Span:
    """A length of time in the SLA matrix.

    Wall-clock durations, business days (same local time, weekends and holidays skipped), the
    next business day's start, a duration counted on the market-hours or the business-hours
    clock only, or the next business day's summary (management of P2/P3 incidents).
    """

    duration: timedelta = timedelta(0)
    business_days: int = 0
    next_business_day: bool = False
    market_clock: bool = False
    business_clock: bool = False
    # Counted day and night and kept then, even for a priority held for business hours: the
    # runbook's P3 "Respond < 24 hours" falls due on a Saturday too.
    calendar_clock: bool = False
    summary: bool = False  # "next business day summary": one summary at the next opening

    def __str__(self) -> str:
        if self.summary:
            return "next business day summary"
        if self.next_business_day:
            return "next business day"
        if self.business_days:
            return f"{self.business_days} business day{'s' if self.business_days != 1 else ''}"
        text = format_duration(self.duration)
        if self.market_clock:
            return f"{text} of market hours"
        if self.calendar_clock:
            return f"{text}, day and night"
        return f"{text} of business hours" if self.business_clock else text

    @property
    def wall(self) -> bool:
        """Return True for a plain wall-clock duration (or `immediately`)."""
        calendar = self.business_days or self.next_business_day or self.summary
        return not (calendar or self.market_clock or self.business_clock)


@dataclass(frozen=True)
class SlaTargets:
    """The runbook's targets for one priority."""

    acknowledge: Span
    respond: Span
    resolve: Span
    update_every: Span
    notify_management: Span
    # The first status update, counted from when the clock starts ("Initial: Within 15 minutes
    # of incident start"; "Initial update: Within response time SLA"): by default at once.
    initial_update: Span = Span()


@dataclass(frozen=True)
class WeeklyMoment:
    """A weekday and a local time, e.g. Sunday 17:00."""

    weekday: int  # Monday is 0, as in datetime.weekday()
    at: time


@dataclass(frozen=True)
class MarketHours:
    """The calendar: when the market trades and when the business works, in one time zone.

    The market is a weekly window; business hours are the business days from
    `business_day_starts` to `business_day_ends`. A holiday closes both for the local day.
    """

    timezone: ZoneInfo
    opens: WeeklyMoment
    closes: WeeklyMoment
    holidays: frozenset[date] = frozenset()
    business_day_starts: time = time(9, 0)
    business_day_ends: time = time(17, 0)
    business_days: frozenset[int] = frozenset(range(5))  # Monday (0) to Friday (4)


@dataclass(frozen=True)
class AfterHours:
    """How an incident of a business-hours-only priority raised outside business hours is held.

    Its clocks start, and its escalations, responder requests and status updates come, from
    the next business opening; meanwhile its PagerDuty urgency is `urgency_outside` ("low",
    or "keep" as it is), and at the opening `urgency_at_opening` ("high", or "keep").
    """

    urgency_outside: str = "low"
    urgency_at_opening: str = "keep"


@dataclass(frozen=True)
class Matcher:
    """A test on one text field: equals, in, regex, not_regex, exists, gt, gte, lt or lte."""

    kind: str
    value: Any

    def matches(self, text: str | None) -> bool:
        """Return True when `text` (None when the field is absent) passes the test."""
        if self.kind == "exists":
            return (text is not None) == self.value
        if text is None:
            return False
        if self.kind == "equals":
            return text == self.value
        if self.kind == "in":
            return text in self.value
        if self.kind == "regex":
            return self.value.search(text) is not None
        if self.kind == "not_regex":
            return self.value.search(text) is None
        number = _number(text)
        if number is None:
            return False
        return {
            "gt": number > self.value,
            "gte": number >= self.value,
            "lt": number < self.value,
            "lte": number <= self.value,
        }[self.kind]

    def describe(self, name: str, text: str | None) -> str:
        """Say how `text` met this test, for a classification's reason."""
        symbols = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        if self.kind in symbols:
            return f"{name}={text} {symbols[self.kind]} {self.value:g}"
        if self.kind == "exists":
            return f"{name} {'present' if self.value else 'absent'}"
        return f"{name}={text}"


@dataclass(frozen=True)
class Condition:
    """One block of a rule's `when`: every test in it must hold."""

    labels: tuple[tuple[str, Matcher], ...] = ()
    annotations: tuple[tuple[str, Matcher], ...] = ()
    incident: tuple[tuple[str, Matcher], ...] = ()
    during_market_hours: bool | None = None
    trading_path: bool | None = None


@dataclass(frozen=True)
class Rule:
    """A classification rule: when any of its conditions holds, the alert gets `priority`."""

    name: str
    priority: Priority
    runbook: str
    when: tuple[Condition, ...]
    # A choice where the runbook is silent: it applies only when no other rule matches, so a
    # bullet always decides over it (a stale feed on Saturday is not P1 for being critical).
    fallback: bool = False
    # The first response calls the policy's security team in (pagerduty.security).
    page_security_team: bool = False


@dataclass(frozen=True)
class Service:
    """One service of the catalog: the only targets collectors may touch."""

    name: str
    health_url: str
    trading_path: bool = False
    why: str = ""  # why it is, or is not, on the trading path
    compose_service: str = ""
    owner: str = ""
    key_metrics: tuple[str, ...] = ()
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # The runbook's trading flow test on this service: `tick` (POST) and/or `signal` (GET).
    flow_test: Mapping[str, str] = field(default_factory=dict)
    # The catalog services it depends on (its upstreams): the topology correlation walks.
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Management:
    """Whom a responder request calls in when management must hear of an incident, and when."""

    requester_id: str
    targets: tuple[tuple[str, str], ...]  # (id, user_reference | escalation_policy_reference)
    request_for: frozenset[Priority] = frozenset({Priority.P0, Priority.P1})
    message: str = "EAFIX {priority} incident needs management: {title}"


@dataclass(frozen=True)
class SecurityTeam:
    """Whom a responder request calls in when a rule that pages the security team matches."""

    requester_id: str
    targets: tuple[tuple[str, str], ...]  # (id, user_reference | escalation_policy_reference)
    message: str = "EAFIX {priority} security incident: {title}"


@dataclass(frozen=True)
class PagerDutyPolicy:
    """How the responder finds its incident and whether it sets the incident's priority."""

    incident: str = "attach"  # attach to the incident that exists, or trigger one (Events API)
    set_priority: bool = True
    # Our priority -> the account's priority name (PagerDuty's standard scheme is P1..P5).
    priorities: Mapping[str, str] = field(
        default_factory=lambda: {"P0": "P1", "P1": "P2", "P2": "P3", "P3": "P4"}
    )
    management: Management | None = None  # None: the management deadline only leaves a note
    security: SecurityTeam | None = None  # None: the first note asks to call them in by hand


@dataclass(frozen=True)
class ResolvedPolicy:
    """What the responder does when Alertmanager reports every alert of a group resolved."""

    # The clocks that wait on a person answering the alert: with the alerts gone, they stop.
    stop_clocks: tuple[str, ...] = ("acknowledge", "respond")
    # The runbook's Validation: the collectors that check the system is well again.
    validate: tuple[str, ...] = ("http", "flow")
    # Resolve the PagerDuty incident when every check passed; off: a person resolves it.
    resolve_incident: bool = False


@dataclass(frozen=True)
class StormPolicy:
    """How the responder holds up when alerts come in storms."""

    # Of PagerDuty's request budget, the share routine (P2/P3) work may use; the rest is
    # always left for urgent (P0/P1) work.
    routine_budget_share: float = 0.6
    # A busy incident's evidence is collected again at most this often, unless priority rises.
    evidence_refresh: timedelta = timedelta(minutes=10)
    # Deliveries that join a run are summed up in one note per incident per this interval.
    joined_alerts_every: timedelta = timedelta(minutes=5)
    # A PagerDuty write failing (5xx, network) for this long goes to the dead-letter set.
    give_up_after: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class WatchdogPolicy:
    """Watching the watcher: Alertmanager's always-firing alert must keep arriving."""

    # No arrival for this long (during market hours, when `market_hours_only`) opens a P1.
    interval: timedelta
    market_hours_only: bool = True
    alertname: str = "Watchdog"


DEFAULT_WATCHDOG_ALERTNAME = WatchdogPolicy(timedelta(0)).alertname
MIN_WATCHDOG_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class ActionCheck:
    """One check that an action worked, on its target, passing within `within`.

    `health`: the target's health reads ok (or stops answering: down). `get`: a path on the
    target's host whose JSON answer has every field of `expect`.
    """

    within: timedelta
    health: str = ""  # ok | down
    get: str = ""
    expect: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContractCheck:
    """A contract check: GET a path on a catalog service; its JSON has `fields` and `expect`."""

    service: str
    get: str
    fields: tuple[str, ...] = ()
    expect: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Validation:
    """The runbook's Validation as an action: checks only, nothing on EAFIX changes but the
    runbook's own test tick."""

    health: bool = False  # every catalog service's health URL reads ok
    flow: bool = False  # the catalog's trading flow test: a simulated tick makes a signal
    contracts: tuple[ContractCheck, ...] = ()
    # 4. the performance test: p99 latency from Prometheus under the threshold (None: not run)
    latency: LatencyTest | None = None


@dataclass(frozen=True)
class Action:
    """A runbook action: an HTTP call to a path on a catalog service, or a Docker call on its
    container; the only things the responder may do to EAFIX."""

    name: str
    does: str
    service: str  # the fixed catalog service it acts on; "" when one is named at approval
    approvers: tuple[str, ...]  # PagerDuty user ids or e-mails, or "anyone"
    http_method: str = ""
    http_path: str = ""
    docker: str = ""  # stop | start | restart
    needs_approval: bool = True
    # How many different people must approve before it runs (the two-person rule: 2).
    approvals_required: int = 1
    timeout: timedelta = timedelta(seconds=30)
    verify: tuple[ActionCheck, ...] = ()
    validation: Validation | None = None  # a validation: it checks every catalog service
    # The catalog's next ways to do the same, in order: a proposal takes the first whose
    # target answers (the gateway's stop-trading, then stopping the execution engine).
    otherwise: tuple[str, ...] = ()
    # A command a person runs (the responder cannot deploy): a fixed template whose only
    # placeholder is {revision}, filled with a checked git sha (triage.actions.manual_command).
    manual_command: str = ""

    @property
    def named_at_approval(self) -> bool:
        """Return True when the approval names which catalog service it acts on."""
        return not self.service and self.validation is None and not self.manual_command

    @property
    def call(self) -> str:
        """Return what it does to its target: `POST /emergency/stop-trading`, `docker stop`."""
        if self.validation is not None:
            return "checks only (validation)"
        if self.manual_command:
            return f"run by a person: {self.manual_command}"
        return f"{self.http_method} {self.http_path}" if self.http_path else f"docker {self.docker}"


@dataclass(frozen=True)
class ServiceCondition:
    """What the run's evidence must show of one catalog service for a proposal rule to fit.

    Every facet given must hold for the same service; `names` empty means any catalog service.
    """

    names: tuple[str, ...] = ()
    container: tuple[str, ...] = ()  # its container's state is one of these (docker collector)
    down: bool = False  # its health check is not ok or its container is not running
    trading_path: bool | None = None  # it is (or is not) on the trading path


@dataclass(frozen=True)
class ProposalCondition:
    """When a proposal rule fits a run: every facet given holds (an empty one always does)."""

    priorities: tuple[Priority, ...] = ()
    during_market_hours: bool | None = None
    service: ServiceCondition | None = None
    rules: tuple[str, ...] = ()  # the classification rule that gave the priority is one of these
    positions: tuple[str, ...] = ()  # open, none or unknown (unreadable), per the trading collector
    # A deploy (a commit in the deploy repo, per the git collector) this long or less before
    # the alert started; None: not a condition.
    deployed_within: timedelta | None = None


@dataclass(frozen=True)
class ProposalRule:
    """A policy rule that proposes an action when a run's evidence and priority fit it.

    `automatic`: approved by the policy at once, at most once per `at_most_once_per` per target.
    """

    name: str
    action: str
    why: str
    when: ProposalCondition
    automatic: bool = False
    at_most_once_per: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class StopAgain:
    """Containment while the cause persists: after a way to stop trading ran, its checks are
    read again every `every`; trading seen to resume while the incident's P0 cause still fires
    proposes that way again, once per resumption."""

    ways_of: str  # the catalog action whose ways (itself and its `otherwise`) stop trading
    every: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class ActionPolicy:
    """The action catalog, the rules that propose its actions, and how long a proposal waits."""

    catalog: Mapping[str, Action] = field(default_factory=dict)
    proposal_ttl: timedelta = timedelta(minutes=30)
    propose: tuple[ProposalRule, ...] = ()
    stop_again: StopAgain | None = None

    def ways_to_stop(self) -> tuple[str, ...]:
        """Return the catalog's ways to stop trading, in order ((): none is watched)."""
        if self.stop_again is None or self.stop_again.ways_of not in self.catalog:
            return ()
        first = self.catalog[self.stop_again.ways_of]
        return (first.name, *(n for n in first.otherwise if n in self.catalog))


@dataclass(frozen=True)
class EmailPolicy:
    """How the responder's e-mails look: whom they come from, how their subjects begin."""

    sender: str = "eafix-responder@example.com"  # RESPONDER_SMTP_FROM overrides it
    subject_prefix: str = "[EAFIX]"


@dataclass(frozen=True)
class DeskCall:
    """Whom a PagerDuty responder request calls in (PagerDuty places the phone call) when the
    trading collector finds a critical trading impact, and which impacts count."""

    # No targets: nobody is called in by PagerDuty; the note asks a person to phone `phone`.
    requester_id: str = ""
    targets: tuple[tuple[str, str], ...] = ()  # (id, user_reference | escalation_policy_reference)
    when: frozenset[str] = frozenset({"positions_at_risk", "orders_failing"})
    market_hours_only: bool = True  # the runbook's "Trading Desk: [Phone - Market Hours Only]"
    message: str = "EAFIX {priority} incident with trading impact ({impact}): {title}"
    phone: str = ""  # the desk's number, for the note when a person must call


@dataclass(frozen=True)
class TradingDesk:
    """The trading desk: e-mailed at once for the priorities in `notify` raised during market
    hours, and again with a summary after resolution; called when trading is hit."""

    email: tuple[str, ...] = ()
    notify: frozenset[Priority] = frozenset({Priority.P0, Priority.P1})
    call: DeskCall | None = None  # None: a trading impact only says so in the evidence


@dataclass(frozen=True)
class ManagementChannel:
    """Where management hears of incidents beside PagerDuty: e-mail (Slack plugs in later)."""

    email: tuple[str, ...] = ()
    summary: bool = True  # the P2/P3 next-business-day summary goes to `email` too


@dataclass(frozen=True)
class Contact:
    """A person the runbook's contacts call in for some priorities only (the CTO: P0): e-mailed
    with management's notice, and called in by a PagerDuty responder request when one is set."""

    email: tuple[str, ...] = ()
    priorities: frozenset[Priority] = frozenset({Priority.P0})
    request: Management | None = None  # None: e-mail only


@dataclass(frozen=True)
class Communication:
    """The runbook's External Communication: the trading desk and management, by e-mail."""

    email: EmailPolicy = field(default_factory=EmailPolicy)
    trading_desk: TradingDesk = field(default_factory=TradingDesk)
    management: ManagementChannel = field(default_factory=ManagementChannel)
    cto: Contact | None = None  # the runbook's "CTO: [Phone] (P0 only)"


# The classifications no rule of the policy gives: their names are reserved.
DEFAULT_RULE = "default"
SEVERITY_FALLBACK_RULE = "severity-fallback"
FALLBACK_RULES = frozenset({DEFAULT_RULE, SEVERITY_FALLBACK_RULE})


MARKET_STATES = ("open", "closed", "any")


@dataclass(frozen=True)
class SlackChannel:
    """A Slack channel the responder posts to, for which priorities and in which market state."""

    channel: str  # "#name" or a channel id (the id lets a retry read the channel's history)
    priorities: frozenset[Priority]
    market: str = "any"  # open | closed | any

    def wants(self, priority: str, market_open: bool) -> bool:
        """Return True when an incident of `priority` is posted here in this market state."""
        if priority not in {p.value for p in self.priorities}:
            return False
        return self.market == "any" or (self.market == "open") == market_open


@dataclass(frozen=True)
class SlackPolicy:
    """Where Slack messages go (`communication.slack`) and who may approve from Slack.

    `incidents` holds one thread per incident; `trading` and `dev` get one post each.
    `approvers` maps a Slack user id to the identity the action approvers name (a PagerDuty
    user id or an e-mail); a click by anyone else approves nothing.
    """

    incidents: SlackChannel | None = None
    trading: SlackChannel | None = None
    dev: SlackChannel | None = None
    approvers: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """Return True when the policy names any Slack channel."""
        return any((self.incidents, self.trading, self.dev))


CORRELATION_MODES = ("off", "shadow", "on")


@dataclass(frozen=True)
class CorrelationRule:
    """When a new alert group belongs to an open incident instead of starting its own.

    It applies to the firing alerts `match` passes that carry every `group_by` label (a missing
    key means the rule does not apply: never a catch-all bucket). They join an incident whose
    firing members share those labels' values, while the incident is younger than
    `max_lifetime` and was last joined within `window` (a sliding window), and only when at
    least `min_firing` such members fire. `max_distance`: the topology hops between their
    services that still count as related (0: the same service); None: the shared keys alone.
    """

    name: str
    match: tuple[tuple[str, Matcher], ...]
    group_by: tuple[str, ...]
    window: timedelta
    max_lifetime: timedelta
    max_distance: int | None = None
    # Alerts these matchers pass are about the whole flow (EAFIXCompleteOutage names no
    # service): 0 hops from every service, so they tie to what they explain.
    everywhere: tuple[tuple[str, Matcher], ...] = ()
    min_firing: int = 1


@dataclass(frozen=True)
class CorrelationPolicy:
    """The correlation rules and what is done with their decisions: off, shadow or on.

    In shadow mode the decisions are made and recorded, and nothing acts on them.
    """

    mode: str = "shadow"
    rules: tuple[CorrelationRule, ...] = ()
    # When Alertmanager pages PagerDuty: merge a joining group's incident into the one it joins
    # (PagerDuty resolves it and stops its escalation); False only links them, with notes.
    merge: bool = True
    # How long after a join its note waits, for other groups of the same outage to join it too.
    note_after: timedelta = timedelta(seconds=20)
    # A group that resolved and fires again within this goes back to its incident (flapping);
    # zero: never.
    flap_window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class WatchPeriod:
    """Post-Incident "Increased monitoring for 24 hours": the same alert group firing again
    this soon after its incident resolved opens an incident one step more urgent."""

    within: timedelta = timedelta(hours=24)  # zero: no watch period
    # The most urgent a raise makes it: P0 is the runbook's own criteria (all hands), which a
    # recurrence alone does not meet; P1 already pages at once. A P0 stays P0.
    highest: Priority = Priority.P1


def _default_severity_fallback() -> Mapping[str, Priority]:
    # Without a `severity_fallback` in the file a critical alert still pages: never a silent P3.
    return {"critical": Priority.P1, "warning": Priority.P2}


@dataclass(frozen=True)
class Policy:
    """The whole policy, as validated data."""

    rules: tuple[Rule, ...]
    sla: Mapping[Priority, SlaTargets]
    catalog: Mapping[str, Service]
    plan: Mapping[Priority, tuple[str, ...]]
    market_hours: MarketHours
    default_priority: Priority = Priority.P3
    # No rule matched: the alert's `severity` label picks the priority; others get the default.
    severity_fallback: Mapping[str, Priority] = field(default_factory=_default_severity_fallback)
    runbook_url: str = ""
    source: str = "<policy>"
    pagerduty: PagerDutyPolicy = field(default_factory=PagerDutyPolicy)
    storm: StormPolicy = field(default_factory=StormPolicy)
    on_resolved: ResolvedPolicy = field(default_factory=ResolvedPolicy)
    # A directory whose templates override the built-in note templates ("": none).
    note_templates: str = ""
    # Priorities handled during business hours only (P2 "Page during business hours", P3
    # "Handle during business hours"), with what their incidents get outside them.
    business_hours_only: Mapping[Priority, AfterHours] = field(default_factory=dict)
    # Where the next business day's management summary goes: a note on each incident in it.
    summary_to: str = "incident_notes"
    actions: ActionPolicy = field(default_factory=ActionPolicy)
    slack: SlackPolicy = field(default_factory=SlackPolicy)  # communication.slack
    communication: Communication = field(default_factory=Communication)
    correlation: CorrelationPolicy = field(default_factory=CorrelationPolicy)
    watch_period: WatchPeriod = field(default_factory=WatchPeriod)
    # None: the silence of Alertmanager's Watchdog alert is not watched (arrivals are still
    # noted, never an incident).
    watchdog: WatchdogPolicy | None = None
    # The runbook's network checks, queue depths and per-edge latency (triage.diagnostics).
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def watchdog_alertname(self) -> str:
        """Return the name of the always-firing alert the receiver notes instead of handling."""
        return self.watchdog.alertname if self.watchdog else DEFAULT_WATCHDOG_ALERTNAME

    @cached_property  # built once: every correlation decision reads it
    def topology(self) -> Topology:
        """Return the catalog's topology: each service and the services it depends on."""
        return Topology.of({name: s.depends_on for name, s in self.catalog.items()})

    def summarised(self) -> tuple[Priority, ...]:
        """Return the priorities whose management hears of them in a next-business-day summary."""
        return tuple(p for p in Priority if self.sla[p].notify_management.summary)

    @property
    def timezone(self) -> ZoneInfo:
        """Return the time zone business days and market hours are counted in."""
        return self.market_hours.timezone

    def security_rule(self, names: Iterable[str]) -> Rule | None:
        """Return the first of the rules named that pages the security team, or None."""
        paging = {rule.name: rule for rule in self.rules if rule.page_security_team}
        return next((paging[name] for name in names if name in paging), None)


def _read_yaml(text: str, loader_class: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    """Return the node tree of `text` and the values built from it: the text is read once."""
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def _parse(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """Return the YAML node tree and the values of `text`; PolicyError if it is not YAML."""
    try:
        return _read_yaml(text, YAML_LOADER)
    except yaml.YAMLError:
        pass
    # Refused: PyYAML's own parser words why better (what it expected, what it found).
    try:
        return _read_yaml(text, yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError([Problem(source, line, "(file)", f"not valid YAML: {problem}")]) from None


# The policy is frozen, so callers of one process (a worker's runtimes, the CLI's commands,
# the tests') share the copy parsed from the same text; a refusal is not kept, it is raised.
@lru_cache(maxsize=64)
def load(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate policy YAML text; raise PolicyError listing every problem."""
    root, raw = _parse(text, source)
    if duplicates := _duplicate_keys(root, source):
        raise PolicyError(duplicates)  # YAML keeps the last silently: a whole section lost
    located = _Located(source, root)
    found: dict[tuple[str | int, ...], str] = {}
    for path, message in [*schema_problems(raw), *semantic_problems(raw)]:
        found.setdefault(tuple(path), message)  # one message per field, the structural first
    if found:
        problems = [located.problem(path, message) for path, message in found.items()]
        raise PolicyError(sorted(problems, key=lambda p: (p.line, p.field)))
    return _build(raw, source)


def _duplicate_keys(root: yaml.Node | None, source: str) -> list[Problem]:
    """Return a problem for every key given twice in one mapping of the document."""
    problems: list[Problem] = []
    stack = [(root, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value)
                field_name = f"{where}.{name}" if where else name
                if name in seen:
                    problems.append(Problem(source, key.start_mark.line + 1, field_name,
                                            f"'{name}' is given twice in this mapping "
                                            "(YAML would keep only the last)"))  # fmt: skip
                seen.add(name)
                stack.append((value, field_name))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node.value))
    return sorted(problems, key=lambda p: p.line)


def load_file(path: str | Path) -> Policy:
    """Read and validate the policy file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            [Problem(str(path), 0, "(file)", f"cannot read: {exc.strerror}")]
        ) from None
    return relative_to(load(text, source=str(path)), path)


def relative_to(policy: Policy, path: str | Path) -> Policy:
    """Return `policy` with its relative paths (note templates) taken from file `path`'s folder.

    So a policy and the templates beside it move together.
    """
    if policy.note_templates and not Path(policy.note_templates).is_absolute():
        return replace(policy, note_templates=str(Path(path).parent / policy.note_templates))
    return policy


def builtin_text() -> str:
    """Return the text of the built-in runbook policy."""
    return resources.files("triage").joinpath("default_policy.yaml").read_text(encoding="utf-8")


@cache  # the policy is frozen: every caller in a process may share the one parsed copy
def builtin() -> Policy:
    """Return the built-in runbook policy."""
    return load(builtin_text(), source="builtin:default_policy.yaml")


def line_of(text: str, path: Sequence[str | int]) -> int:
    """Return the 1-based line of the field at `path` in policy YAML text (nearest parent)."""
    return _Located("", yaml.compose(text, Loader=YAML_LOADER)).line(path)


@cache
def _schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(resources.files("triage").joinpath("policy.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_problems(raw: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Return (path, message) for every place `raw` breaks the policy schema."""
    found = []
    for error in _schema_validator().iter_errors(raw):
        specific = best_match(error.context) if error.context else error
        assert isinstance(specific, ValidationError)
        path = tuple(specific.absolute_path)
        if specific.validator == "additionalProperties":
            for extra in _unknown_fields(specific):
                found.append(((*path, extra), f"unknown field {extra!r}"))
            continue
        found.append((path, _schema_message(specific)))
    return found


def _unknown_fields(error: ValidationError) -> list[str]:
    known = set(error.schema.get("properties", {}))
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    return sorted(
        key
        for key in error.instance
        if key not in known and not any(p.search(str(key)) for p in patterns)
    )


def _schema_message(error: ValidationError) -> str:
    if "x-message" in error.schema:
        return f"{error.schema['x-message']}, got {error.instance!r}"
    if error.validator == "const":
        return f"expected {error.validator_value!r}, got {error.instance!r}"
    return error.message


def semantic_problems(raw: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Return problems no schema can see: time zones, spans, regexes, duplicate names.

    Reads `raw` defensively, so it reports alongside structural errors, not after them.
    """
    found: list[tuple[tuple[str | int, ...], str]] = []
    if not isinstance(raw, Mapping):
        return found
    hours = raw.get("market_hours")
    if isinstance(hours, Mapping):
        zone = hours.get("timezone")
        if isinstance(zone, str) and zone:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                found.append((("market_hours", "timezone"), f"unknown time zone {zone!r}"))
        days = [
            m.get("day")
            for m in (hours.get("opens"), hours.get("closes"))
            if isinstance(m, Mapping)
        ]
        if len(days) == 2 and days[0] is not None and days[0] == days[1]:
            found.append(
                (("market_hours", "closes"), "the market must close on another day than it opens")
            )
        starts = _clock_text(hours.get("business_day_starts", "09:00"))
        ends = _clock_text(hours.get("business_day_ends", "17:00"))
        if starts is not None and ends is not None and ends <= starts:
            found.append(
                (
                    ("market_hours", "business_day_ends"),
                    f"the business day must end after it starts ({starts:%H:%M}), got {ends:%H:%M}",
                )
            )
    watchdog = raw.get("watchdog")
    interval = watchdog.get("interval") if isinstance(watchdog, Mapping) else None
    if isinstance(interval, str):
        try:
            too_short = parse_span(interval).duration < MIN_WATCHDOG_INTERVAL
        except ValueError:
            too_short = False  # the schema names a malformed duration
        if too_short:
            found.append(
                (
                    ("watchdog", "interval"),
                    f"expected at least 1m (shorter would page between two of Alertmanager's "
                    f"repeats of the Watchdog), got {interval!r}",
                )
            )
    sla = raw.get("sla")
    for priority, row in sla.items() if isinstance(sla, Mapping) else ():
        for name, value in row.items() if isinstance(row, Mapping) else ():
            try:
                span = parse_span(value)
            except ValueError as exc:
                found.append((("sla", priority, name), str(exc)))
                continue
            except (KeyError, TypeError, AttributeError):
                continue  # a malformed span: the schema names it
            if name == "update_every" and not _is_cadence(span):
                found.append(
                    (("sla", priority, name), f"expected a duration such as 30m, got {value!r}")
                )
            if name == "initial_update" and not span.wall:
                found.append(
                    (
                        ("sla", priority, name),
                        f"expected 'immediately' or a duration such as 10m, got {value!r}",
                    )
                )
            if span.summary and name != "notify_management":
                found.append(
                    (
                        ("sla", priority, name),
                        "'next business day summary' is for notify_management only",
                    )
                )
    rules = raw.get("rules")
    found += _duplicates(rules, "rules", "rule name")
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        name = rule.get("name") if isinstance(rule, Mapping) else None
        if name in FALLBACK_RULES:
            reserved = f"{name!r} is reserved for a classification no rule gives"
            found.append((("rules", index, "name"), reserved))
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        when = rule.get("when") if isinstance(rule, Mapping) else None
        blocks = when if isinstance(when, list) else [when]
        for number, block in enumerate(blocks):
            base: tuple[str | int, ...] = ("rules", index, "when")
            base += (number,) if isinstance(when, list) else ()
            found += _regex_problems(block, base)
    found += _duplicates(raw.get("catalog"), "catalog", "service")
    found += _flow_test_problems(raw.get("catalog"))
    found += _depends_on_problems(raw.get("catalog"))
    found += _correlation_problems(raw.get("correlation"))
    found += _action_problems(raw.get("actions"), raw.get("catalog"))
    found += _diagnostics_problems(raw.get("diagnostics"), raw.get("catalog"))
    return found


def _diagnostics_problems(section: Any, catalog: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Return a problem for a probing container that is not a catalog service's, and for a
    dependency named twice."""
    if not isinstance(section, Mapping):
        return []
    entries = [e for e in catalog if isinstance(e, Mapping)] if isinstance(catalog, list) else []
    names = {e.get("name") for e in entries}
    found = _duplicates(section.get("external_dependencies"), "diagnostics.external_dependencies",
                        "dependency")  # fmt: skip
    found = [(("diagnostics", "external_dependencies", *path[1:]), m) for path, m in found]
    network = section.get("network")
    probing = network.get("from_containers") if isinstance(network, Mapping) else None
    for index, name in enumerate(probing if isinstance(probing, list) else ()):
        if isinstance(name, str) and name not in names:
            where = ("diagnostics", "network", "from_containers", index)
            found.append((where, f"{name!r} is not a catalog service"))
    return found


def _action_problems(actions: Any, catalog: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Return what the schema cannot see in the action catalog: unknown services, an action
    that does nothing or two things, a check that tests nothing or two things."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    if not isinstance(actions, Mapping):
        return found
    entries = actions.get("catalog")
    found += [
        (("actions", "catalog", *path[1:]), m) for path, m in _duplicates(entries, "x", "action")
    ]
    services = (
        {entry.get("name") for entry in catalog if isinstance(entry, Mapping)}
        if isinstance(catalog, list)
        else set()
    )
    for index, action in enumerate(entries if isinstance(entries, list) else ()):
        if not isinstance(action, Mapping):
            continue
        base: tuple[str | int, ...] = ("actions", "catalog", index)
        target = action.get("target")
        service = target.get("service") if isinstance(target, Mapping) else None
        if isinstance(service, str) and service not in services:
            found.append(((*base, "target", "service"), f"no catalog service named {service!r}"))
        if sum(kind in action for kind in ("http", "docker", "validation", "manual")) != 1:
            found.append(
                (
                    base,
                    "expected exactly one of http (a call to a path on the "
                    "target), docker (stop, start or restart its container), validation "
                    "or manual (a command a person runs)",
                )
            )
        deployment = isinstance(target, Mapping) and target.get("deployment") is True
        if deployment != ("manual" in action):
            found.append(
                (
                    (*base, "target"),
                    "a manual command acts on the deployment: target {deployment: true} "
                    "goes with manual, and only with it",
                )
            )
        manual = action.get("manual")
        command = manual.get("command") if isinstance(manual, Mapping) else None
        if isinstance(command, str) and _placeholders(command) != ["revision"]:
            found.append(
                (
                    (*base, "manual", "command"),
                    "expected a fixed command with one placeholder, {revision} (the git "
                    "sha to return to), and no other braces",
                )
            )
        every = isinstance(target, Mapping) and target.get("all_services") is True
        if every != ("validation" in action):
            found.append(
                (
                    (*base, "target"),
                    "a validation checks every catalog service: target {all_services: true} "
                    "goes with validation, and only with it",
                )
            )
        found += _approvals_problems(action, base)
        for number, other in enumerate(action.get("otherwise") or ()):
            if other not in {a.get("name") for a in entries if isinstance(a, Mapping)}:
                found.append(((*base, "otherwise", number), f"no action named {other!r}"))
        validation = action.get("validation")
        contracts = validation.get("contracts") if isinstance(validation, Mapping) else None
        for number, contract in enumerate(contracts if isinstance(contracts, list) else ()):
            name = contract.get("service") if isinstance(contract, Mapping) else None
            if isinstance(name, str) and name not in services:
                where = (*base, "validation", "contracts", number, "service")
                found.append((where, f"no catalog service named {name!r}"))
        for number, check in enumerate(action.get("verify") or ()):
            if not isinstance(check, Mapping):
                continue
            where = (*base, "verify", number)
            if ("health" in check) == ("get" in check):
                found.append((where, "expected exactly one of health (ok or down) or get (a path)"))
            if ("get" in check) != ("expect" in check):
                found.append(
                    (
                        where,
                        "get and expect go together: the path and the fields its "
                        "JSON answer must have",
                    )
                )
    found += _proposal_rule_problems(actions, services)
    again = actions.get("stop_again")
    named = (
        {a.get("name") for a in entries if isinstance(a, Mapping)}
        if isinstance(entries, list)
        else set()
    )
    if isinstance(again, Mapping) and isinstance(again.get("ways_of"), str):
        if again["ways_of"] not in named:
            found.append(
                (("actions", "stop_again", "ways_of"), f"no action named {again['ways_of']!r}")
            )
    return found


def _placeholders(command: str) -> list[str]:
    """Return the {names} of a command template, and "?" for a brace that opens none."""
    names = re.findall(r"\{([^{}]*)\}", command)
    stray = re.sub(r"\{[^{}]*\}", "", command)
    return names + (["?"] if "{" in stray or "}" in stray else [])


def _approvals_problems(
    action: Mapping[str, Any], base: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Return a problem when an action's `approvals_required` cannot be met or means nothing."""
    required = action.get("approvals_required", 1)
    if not isinstance(required, int) or isinstance(required, bool) or required < 2:
        return []
    where = (*base, "approvals_required")
    if action.get("needs_approval") is False:
        return [(where, "an action that needs no approval cannot need several")]
    approvers = action.get("approvers")
    named = [a for a in approvers if isinstance(a, str)] if isinstance(approvers, list) else []
    open_kinds = {"anyone", "assigned"}
    people = {a.lower() for a in named if a.lower() not in open_kinds}
    if named and not open_kinds & {a.lower() for a in named} and len(people) < required:
        return [
            (
                where,
                f"needs {required} different approvers but approvers names only "
                f"{len(people)}: name more, or anyone or assigned",
            )
        ]
    return []


def _proposal_rule_problems(
    actions: Mapping[str, Any], services: set[Any]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Return what the schema cannot see in the proposal rules: an action or service that is
    not in a catalog, a rule that could name no target, a limit without `automatic`."""
    rules = actions.get("propose")
    found = [
        (("actions", "propose", *path[1:]), m) for path, m in _duplicates(rules, "x", "rule name")
    ]
    entries = actions.get("catalog")
    known = {
        entry.get("name"): entry
        for entry in (entries if isinstance(entries, list) else ())
        if isinstance(entry, Mapping)
    }
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        if not isinstance(rule, Mapping):
            continue
        base: tuple[str | int, ...] = ("actions", "propose", index)
        action = known.get(rule.get("action"))
        when = rule.get("when") if isinstance(rule.get("when"), Mapping) else {}
        service = when.get("service") if isinstance(when.get("service"), Mapping) else None
        if isinstance(rule.get("action"), str) and action is None:
            names = ", ".join(sorted(str(n) for n in known)) or "none"
            found.append(
                ((*base, "action"), f"no action named {rule['action']!r} (known: {names})")
            )
        target = action.get("target") if isinstance(action, Mapping) else None
        if isinstance(target, Mapping) and target.get("named_at_approval") and service is None:
            found.append(
                (
                    (*base, "when"),
                    f"{rule['action']} acts on a service the rule must pick: expected "
                    "a service condition (its container or down)",
                )
            )
        rollback = isinstance(target, Mapping) and target.get("deployment") is True
        if rollback and "deployed_within" not in when:
            found.append(
                (
                    (*base, "when"),
                    f"{rule['action']} returns to the revision before a deploy: expected "
                    "deployed_within (how soon before the alert a deploy counts)",
                )
            )
        if service is not None:
            for number, name in enumerate(service.get("name") or ()):
                if isinstance(name, str) and name not in services:
                    where = (*base, "when", "service", "name", number)
                    found.append((where, f"no catalog service named {name!r}"))
            if "container" not in service and "down" not in service:
                found.append(
                    (
                        (*base, "when", "service"),
                        "expected container (its states) or down: true, what the evidence "
                        "must show of the service",
                    )
                )
        if "at_most_once_per" in rule and not rule.get("automatic"):
            found.append(
                ((*base, "at_most_once_per"), "a limit on automatic runs needs automatic: true")
            )
        required = action.get("approvals_required", 1) if isinstance(action, Mapping) else 1
        if rule.get("automatic") is True and isinstance(required, int) and required > 1:
            found.append(
                (
                    (*base, "automatic"),
                    f"{rule['action']} needs {required} different people to approve: "
                    "the policy cannot approve it automatically",
                )
            )
    return found


def _flow_test_problems(catalog: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Return a problem for each flow-test step a second service names: the test has one."""
    first: dict[str, str] = {}
    found: list[tuple[tuple[str | int, ...], str]] = []
    for index, entry in enumerate(catalog if isinstance(catalog, list) else ()):
        steps = entry.get("flow_test") if isinstance(entry, Mapping) else None
        for step in steps if isinstance(steps, Mapping) else ():
            if step in first:
                where = ("catalog", index, "flow_test", step)
                found.append((where, f"the trading flow test's {step} is {first[step]}'s already"))
            first.setdefault(step, str(entry.get("name")))
    return found


def _depends_on_problems(catalog: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Return a problem for each dependency on a name not in the catalog, and for a cycle."""
    entries = [e for e in catalog if isinstance(e, Mapping)] if isinstance(catalog, list) else []
    names = {e.get("name") for e in entries}
    found: list[tuple[tuple[str | int, ...], str]] = []
    edges: dict[str, list[str]] = {}
    for index, entry in enumerate(catalog if isinstance(catalog, list) else ()):
        upstreams = entry.get("depends_on") if isinstance(entry, Mapping) else None
        if not isinstance(upstreams, list) or not isinstance(entry.get("name"), str):
            continue
        edges[entry["name"]] = [u for u in upstreams if isinstance(u, str)]
        for number, upstream in enumerate(upstreams):
            if isinstance(upstream, str) and upstream not in names:
                where = ("catalog", index, "depends_on", number)
                found.append((where, f"no catalog service named {upstream!r}"))
    if cycle := find_cycle(edges):
        # Named at the service that closes the loop, the last edge the walk took.
        index = next(i for i, e in enumerate(catalog) if e.get("name") == cycle[-2])
        where = ("catalog", index, "depends_on")
        found.append((where, f"a dependency cycle: {' -> '.join(cycle)}"))
    return found


def _correlation_problems(section: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Return what the schema cannot see in the correlation rules: duplicate names, bad
    regexes, a window longer than the lifetime it slides within."""
    if not isinstance(section, Mapping):
        return []
    rules = section.get("rules")
    found = [
        (("correlation", *path), m) for path, m in _duplicates(rules, "rules", "correlation rule")
    ]
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        if not isinstance(rule, Mapping):
            continue
        base: tuple[str | int, ...] = ("correlation", "rules", index)
        # The match block is a classification rule's `labels`: the same matchers, same checks.
        for block in ("match", "everywhere"):
            checked = _regex_problems({"labels": rule.get(block)}, ())
            found += [((*base, block, *path[1:]), message) for path, message in checked]
        try:
            window, lifetime = (parse_span(rule[k]).duration for k in ("window", "max_lifetime"))
        except (KeyError, ValueError, TypeError):
            continue  # the schema names a missing or malformed duration
        if window > lifetime:
            found.append(
                (
                    (*base, "window"),
                    f"the window ({rule['window']}) must not be longer than "
                    f"max_lifetime ({rule['max_lifetime']})",
                )
            )
    return found


def _is_cadence(span: Span) -> bool:
    """Return True for a span status updates can repeat on: a positive wall-clock duration."""
    return span.wall and span.duration > timedelta(0)


def _clock_text(text: Any) -> time | None:
    """Return the time of day an HH:MM text names, or None (the schema reports the rest)."""
    try:
        return time.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _duplicates(items: Any, section: str, what: str) -> list[tuple[tuple[str | int, ...], str]]:
    seen: set[Any] = set()
    found: list[tuple[tuple[str | int, ...], str]] = []
    for index, item in enumerate(items if isinstance(items, list) else ()):
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, str) and name in seen:
            found.append(((section, index, "name"), f"duplicate {what} {name!r}"))
        seen.add(name)
    return found


def _regex_problems(
    block: Any, base: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], str]]:
    found: list[tuple[tuple[str | int, ...], str]] = []
    if not isinstance(block, Mapping):
        return found
    for group in ("labels", "annotations", "incident"):
        tests = block.get(group)
        for key, test in tests.items() if isinstance(tests, Mapping) else ():
            for kind in ("regex", "not_regex"):
                pattern = test.get(kind) if isinstance(test, Mapping) else None
                if isinstance(pattern, str):
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        found.append(
                            ((*base, group, key, kind), f"invalid regular expression: {exc}")
                        )
    return found


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_BUSINESS_DAYS = re.compile(r"^\s*(\d+)\s+business\s+days?\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_span(value: str | Mapping[str, str]) -> Span:
    """Parse `5m`, `2h`, `immediately`, `5 business days`, `next business day`, `next business
    day summary`, `{within: 2h, clock: market_hours}`, `{within: 1h, clock: business_hours}` or
    `{within: 24h, clock: calendar}`."""
    if isinstance(value, Mapping):
        inner = parse_span(value["within"])
        clock = value.get("clock")
        if not inner.wall:
            raise ValueError(f"a {str(clock).replace('_', '-')} clock takes a duration like 2h")
        return Span(
            duration=inner.duration,
            market_clock=clock == "market_hours",
            business_clock=clock == "business_hours",
            calendar_clock=clock == "calendar",
        )
    text = str(value).strip().lower()
    if text == "immediately":
        return Span()
    if text == "next business day":
        return Span(next_business_day=True)
    if text == "next business day summary":
        return Span(next_business_day=True, summary=True)
    if match := _BUSINESS_DAYS.match(text):
        return Span(business_days=int(match.group(1)))
    if match := _DURATION.match(text):
        return Span(duration=timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}))
    raise ValueError(
        "expected a duration like 15m, 2h or 1d, 'N business days', 'next business day', "
        f"'next business day summary' or 'immediately', got {text!r}"
    )


def format_duration(delta: timedelta) -> str:
    """Format a duration the way the runbook writes it: 5m, 2h, 1h30m."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "immediately"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _number(text: str) -> float | None:
    try:
        return float(text.strip().removesuffix("s"))
    except ValueError:
        return None


class _Located:
    """Find the line of a field in the composed YAML node tree."""

    def __init__(self, source: str, root: yaml.Node | None) -> None:
        self.source = source
        self.root = root

    def line(self, path: Sequence[str | int]) -> int:
        node = self.root
        if node is None:
            return 1
        line = node.start_mark.line + 1
        for step in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next((v for k, v in node.value if k.value == step), None)
                key = next((k for k, v in node.value if k.value == step), None)
                if key is not None:
                    line = key.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
                child = node.value[step] if step < len(node.value) else None
                if child is not None:
                    line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        return Problem(self.source, self.line(path), _dotted(path), message)


def _dotted(path: Iterable[str | int]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "(top level)"


def _build(raw: Mapping[str, Any], source: str) -> Policy:
    """Turn validated raw data into the Policy."""
    hours = raw["market_hours"]
    return Policy(
        rules=tuple(_rule(entry) for entry in raw["rules"]),
        sla={
            p: SlaTargets(**{k: parse_span(v) for k, v in raw["sla"][p.value].items()})
            for p in Priority
        },
        catalog={entry["name"]: _service(entry) for entry in raw["catalog"]},
        plan={p: tuple(raw["plan"][p.value]) for p in Priority},
        market_hours=MarketHours(
            timezone=ZoneInfo(hours["timezone"]),
            opens=_moment(hours["opens"]),
            closes=_moment(hours["closes"]),
            holidays=frozenset(date.fromisoformat(d) for d in hours.get("holidays", [])),
            business_day_starts=time.fromisoformat(hours.get("business_day_starts", "09:00")),
            business_day_ends=time.fromisoformat(hours.get("business_day_ends", "17:00")),
            business_days=frozenset(
                WEEKDAYS.index(day) for day in hours.get("business_days", WEEKDAYS[:5])
            ),
        ),
        default_priority=Priority(raw["default_priority"]),
        severity_fallback=_severity_fallback(raw),
        runbook_url=raw.get("runbook_url", ""),
        source=source,
        pagerduty=_pagerduty(raw.get("pagerduty", {})),
        storm=_storm(raw.get("storm", {})),
        watchdog=_watchdog(raw["watchdog"]) if "watchdog" in raw else None,
        on_resolved=_on_resolved(raw.get("on_resolved", {})),
        note_templates=raw.get("notes", {}).get("templates", ""),
        business_hours_only={
            Priority(p): AfterHours(**held)
            for p, held in raw.get("business_hours_only", {}).items()
        },
        summary_to=raw.get("management_summary", {}).get("post_to", "incident_notes"),
        actions=_actions(raw.get("actions", {})),
        slack=_slack(raw.get("communication", {}).get("slack", {})),
        communication=_communication(raw.get("communication", {})),
        correlation=_correlation(raw.get("correlation", {})),
        diagnostics=diagnostics_of(raw.get("diagnostics", {}), seconds_of),
        watch_period=_watch_period(raw.get("watch_period", {})),
    )


def _watch_period(raw: Mapping[str, Any]) -> WatchPeriod:
    defaults = WatchPeriod()
    return WatchPeriod(
        within=parse_span(raw["within"]).duration if "within" in raw else defaults.within,
        highest=Priority(raw.get("highest", defaults.highest)),
    )


def seconds_of(value: float | int | str) -> float:
    """Return a threshold in seconds: a number is seconds, a text a duration such as 2s."""
    if isinstance(value, int | float):
        return float(value)
    return parse_span(value).duration.total_seconds()


# YAML 1.1 reads a bare `on` and `off` as booleans; both spellings mean the same mode.
_MODE_OF_BOOLEAN = {True: "on", False: "off"}


def _correlation(raw: Mapping[str, Any]) -> CorrelationPolicy:
    return CorrelationPolicy(
        mode=_MODE_OF_BOOLEAN.get(mode, mode)
        if (mode := raw.get("mode")) is not None
        else "shadow",
        merge=bool(raw.get("merge", True)),
        note_after=parse_span(raw["note_after"]).duration
        if "note_after" in raw
        else timedelta(seconds=20),
        flap_window=parse_span(raw["flap_window"]).duration
        if "flap_window" in raw
        else timedelta(minutes=15),
        rules=tuple(
            CorrelationRule(
                name=rule["name"],
                match=tuple((k, _matcher(v)) for k, v in rule.get("match", {}).items()),
                group_by=tuple(rule.get("group_by", ())),
                window=parse_span(rule["window"]).duration,
                max_lifetime=parse_span(rule["max_lifetime"]).duration,
                max_distance=rule.get("max_distance"),
                min_firing=rule.get("min_firing", 1),
                everywhere=tuple((k, _matcher(v)) for k, v in rule.get("everywhere", {}).items()),
            )
            for rule in raw.get("rules", ())
        ),
    )


def _slack(raw: Mapping[str, Any]) -> SlackPolicy:
    channels = raw.get("channels", {})

    def channel(name: str) -> SlackChannel | None:
        entry = channels.get(name)
        if entry is None:
            return None
        return SlackChannel(
            entry["channel"],
            frozenset(Priority(p) for p in entry["priorities"]),
            entry.get("market", "any"),
        )

    return SlackPolicy(
        incidents=channel("incidents"),
        trading=channel("trading"),
        dev=channel("dev"),
        approvers=dict(raw.get("approvers", {})),
    )


def _communication(raw: Mapping[str, Any]) -> Communication:
    email, desk, management = (
        raw.get(part, {}) for part in ("email", "trading_desk", "management")
    )
    defaults = Communication()
    call = desk.get("call")
    return Communication(
        email=EmailPolicy(
            sender=email.get("from", defaults.email.sender),
            subject_prefix=email.get("subject_prefix", defaults.email.subject_prefix),
        ),
        trading_desk=TradingDesk(
            email=tuple(desk.get("email", ())),
            notify=frozenset(Priority(p) for p in desk["notify"])
            if "notify" in desk
            else defaults.trading_desk.notify,
            call=_desk_call(call) if call is not None else None,
        ),
        management=ManagementChannel(
            email=tuple(management.get("email", ())),
            summary=management.get("summary", defaults.management.summary),
        ),
        cto=_contact(raw["contacts"]["cto"]) if "cto" in raw.get("contacts", {}) else None,
    )


def _contact(raw: Mapping[str, Any]) -> Contact:
    request = raw.get("request")
    return Contact(
        email=tuple(raw.get("email", ())),
        priorities=frozenset(Priority(p) for p in raw.get("priorities", ("P0",))),
        request=Management(
            requester_id=request["requester_id"],
            targets=tuple((t["id"], t["type"]) for t in request["targets"]),
            request_for=frozenset(Priority(p) for p in raw.get("priorities", ("P0",))),
            message="EAFIX {priority} incident: the CTO is called in (P0 only): {title}",
        )
        if request is not None
        else None,
    )


def _desk_call(raw: Mapping[str, Any]) -> DeskCall:
    defaults = DeskCall()
    return DeskCall(
        requester_id=raw.get("requester_id", ""),
        targets=tuple((t["id"], t["type"]) for t in raw.get("targets", ())),
        when=frozenset(raw.get("when", defaults.when)),
        market_hours_only=raw.get("market_hours_only", defaults.market_hours_only),
        message=raw.get("message", defaults.message),
        phone=raw.get("phone", ""),
    )


def _actions(raw: Mapping[str, Any]) -> ActionPolicy:
    defaults = ActionPolicy()
    ttl = parse_span(raw["proposal_ttl"]).duration if "proposal_ttl" in raw else None
    return ActionPolicy(
        catalog={entry["name"]: _action(entry) for entry in raw.get("catalog", ())},
        proposal_ttl=ttl or defaults.proposal_ttl,
        propose=tuple(_proposal_rule(entry) for entry in raw.get("propose", ())),
        stop_again=_stop_again(raw["stop_again"]) if "stop_again" in raw else None,
    )


def _stop_again(raw: Mapping[str, Any]) -> StopAgain:
    every = parse_span(raw["every"]).duration if "every" in raw else StopAgain("").every
    return StopAgain(ways_of=raw["ways_of"], every=every)


def _proposal_rule(raw: Mapping[str, Any]) -> ProposalRule:
    when = raw.get("when", {})
    service = when.get("service")
    limit = raw.get("at_most_once_per")
    return ProposalRule(
        name=raw["name"],
        action=raw["action"],
        why=raw["why"],
        when=ProposalCondition(
            priorities=tuple(Priority(p) for p in when.get("priority", ())),
            during_market_hours=when.get("during_market_hours"),
            rules=tuple(when.get("rule", ())),
            positions=tuple(when.get("positions", ())),
            deployed_within=(
                parse_span(when["deployed_within"]).duration if "deployed_within" in when else None
            ),
            service=ServiceCondition(
                names=tuple(service.get("name", ())),
                container=tuple(service.get("container", ())),
                down=service.get("down", False),
                trading_path=service.get("trading_path"),
            )
            if service is not None
            else None,
        ),
        automatic=raw.get("automatic", False),
        at_most_once_per=parse_span(limit).duration if limit else timedelta(hours=1),
    )


def _action(raw: Mapping[str, Any]) -> Action:
    http = raw.get("http", {})
    timeout = parse_span(raw["timeout"]).duration if "timeout" in raw else None
    return Action(
        name=raw["name"],
        does=raw["does"],
        service=raw["target"].get("service", ""),
        approvers=tuple(raw["approvers"]),
        http_method=http.get("method", ""),
        http_path=http.get("path", ""),
        docker=raw.get("docker", ""),
        needs_approval=raw.get("needs_approval", True),
        approvals_required=raw.get("approvals_required", 1),
        timeout=timeout or Action("", "", "", ()).timeout,
        verify=tuple(
            ActionCheck(
                within=parse_span(check["within"]).duration,
                health=check.get("health", ""),
                get=check.get("get", ""),
                expect=dict(check.get("expect", {})),
            )
            for check in raw.get("verify", ())
        ),
        validation=_validation(raw["validation"]) if "validation" in raw else None,
        otherwise=tuple(raw.get("otherwise", ())),
        manual_command=raw.get("manual", {}).get("command", ""),
    )


def _validation(raw: Mapping[str, Any]) -> Validation:
    return Validation(
        health=raw.get("health", False),
        flow=raw.get("flow", False),
        contracts=tuple(
            ContractCheck(
                service=c["service"],
                get=c["get"],
                fields=tuple(c.get("fields", ())),
                expect=dict(c.get("expect", {})),
            )
            for c in raw.get("contracts", ())
        ),
        latency=latency_test_of(raw.get("latency", False), seconds_of),
    )


def _severity_fallback(raw: Mapping[str, Any]) -> Mapping[str, Priority]:
    if "severity_fallback" not in raw:
        return _default_severity_fallback()
    return {severity: Priority(p) for severity, p in raw["severity_fallback"].items()}


def _on_resolved(raw: Mapping[str, Any]) -> ResolvedPolicy:
    defaults = ResolvedPolicy()
    return ResolvedPolicy(
        stop_clocks=tuple(raw.get("stop_clocks", defaults.stop_clocks)),
        validate=tuple(raw.get("validate", defaults.validate)),
        resolve_incident=raw.get("resolve_incident", defaults.resolve_incident),
    )


def _watchdog(raw: Mapping[str, Any]) -> WatchdogPolicy:
    defaults = WatchdogPolicy(timedelta(0))
    return WatchdogPolicy(
        interval=parse_span(raw["interval"]).duration,
        market_hours_only=raw.get("market_hours_only", defaults.market_hours_only),
        alertname=raw.get("alertname", defaults.alertname),
    )


def _storm(raw: Mapping[str, Any]) -> StormPolicy:
    defaults = StormPolicy()
    spans = {
        name: parse_span(raw[name]).duration
        for name in ("evidence_refresh", "joined_alerts_every", "give_up_after")
        if name in raw
    }
    share = float(raw.get("routine_budget_share", defaults.routine_budget_share))
    return replace(defaults, routine_budget_share=share, **spans)


def _pagerduty(raw: Mapping[str, Any]) -> PagerDutyPolicy:
    defaults = PagerDutyPolicy()
    return PagerDutyPolicy(
        incident=raw.get("incident", defaults.incident),
        set_priority=raw.get("set_priority", defaults.set_priority),
        priorities={**defaults.priorities, **raw.get("priorities", {})},
        management=_management(raw["management"]) if "management" in raw else None,
        security=_security(raw["security"]) if "security" in raw else None,
    )


def _security(raw: Mapping[str, Any]) -> SecurityTeam:
    defaults = SecurityTeam("", ())
    return SecurityTeam(
        requester_id=raw["requester_id"],
        targets=tuple((t["id"], t["type"]) for t in raw["targets"]),
        message=raw.get("message", defaults.message),
    )


def _management(raw: Mapping[str, Any]) -> Management:
    defaults = Management("", ())
    return Management(
        requester_id=raw["requester_id"],
        targets=tuple((t["id"], t["type"]) for t in raw["targets"]),
        request_for=frozenset(Priority(p) for p in raw["request_for"])
        if "request_for" in raw
        else defaults.request_for,
        message=raw.get("message", defaults.message),
    )


def _moment(raw: Mapping[str, str]) -> WeeklyMoment:
    return WeeklyMoment(WEEKDAYS.index(raw["day"]), time.fromisoformat(raw["time"]))


def _rule(raw: Mapping[str, Any]) -> Rule:
    blocks = raw["when"] if isinstance(raw["when"], list) else [raw["when"]]
    return Rule(
        raw["name"],
        Priority(raw["priority"]),
        raw.get("runbook", ""),
        tuple(_condition(b) for b in blocks),
        fallback=raw.get("fallback", False),
        page_security_team=raw.get("page_security_team", False),
    )


def _condition(raw: Mapping[str, Any]) -> Condition:
    def matchers(group: str) -> tuple[tuple[str, Matcher], ...]:
        return tuple((k, _matcher(v)) for k, v in raw.get(group, {}).items())

    return Condition(
        labels=matchers("labels"),
        annotations=matchers("annotations"),
        incident=matchers("incident"),
        during_market_hours=raw.get("during_market_hours"),
        trading_path=raw.get("trading_path"),
    )


def _matcher(raw: Any) -> Matcher:
    if isinstance(raw, str):
        return Matcher("equals", raw)
    if isinstance(raw, list):
        return Matcher("in", tuple(raw))
    [(kind, value)] = raw.items()
    if kind in ("regex", "not_regex"):
        return Matcher(kind, re.compile(value))
    return Matcher(kind, tuple(value) if kind == "in" else value)


def _service(raw: Mapping[str, Any]) -> Service:
    return Service(
        name=raw["name"],
        health_url=raw["health_url"],
        trading_path=raw.get("trading_path", False),
        why=raw.get("why", ""),
        compose_service=raw.get("compose_service", raw["name"]),
        owner=raw.get("owner", ""),
        key_metrics=tuple(raw.get("key_metrics", ())),
        endpoints=dict(raw.get("endpoints", {})),
        flow_test=dict(raw.get("flow_test", {})),
        depends_on=tuple(raw.get("depends_on", ())),
    )


def service_endpoint(service: Service, path: str) -> str:
    """Return `path` on a catalog service's host: the scheme and host of its health URL.

    The only way a URL is made from the catalog: a label or a person picks a service by name,
    the policy lists the path.
    """
    parts = urlsplit(service.health_url)
    return f"{parts.scheme}://{parts.netloc}{path}"


def shown_url(url: str) -> str:
    """Return a URL as it may be logged or noted: without a user or password in it."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
