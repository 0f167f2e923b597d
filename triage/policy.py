"""Load and validate the responder policy: rules, SLA matrix, service catalog and plan."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from triage.models import Priority


class PolicyError(ValueError):
    """A policy that cannot be used; the message names the source and the field."""


@dataclass(frozen=True)
class Span:
    """A length of time in the SLA matrix: a plain duration or a number of business days."""

    duration: timedelta = timedelta(0)
    business_days: int = 0

    def __str__(self) -> str:
        if self.business_days:
            return f"{self.business_days} business day{'s' if self.business_days != 1 else ''}"
        return format_duration(self.duration)


@dataclass(frozen=True)
class SlaTargets:
    """The runbook's targets for one priority."""

    acknowledge: Span
    respond: Span
    resolve: Span
    update_every: Span
    notify_management: Span


@dataclass(frozen=True)
class Service:
    """One service of the catalog: the only targets collectors may touch."""

    name: str
    health_url: str
    trading_path: bool = False
    compose_service: str = ""
    owner: str = ""


@dataclass(frozen=True)
class Rule:
    """A classification rule: when every condition holds, the alert gets `priority`."""

    name: str
    priority: Priority
    runbook: str
    labels: Mapping[str, tuple[str, ...]]
    trading_path: bool | None = None


@dataclass(frozen=True)
class Policy:
    """The whole policy, as validated data."""

    rules: tuple[Rule, ...]
    sla: Mapping[Priority, SlaTargets]
    catalog: Mapping[str, Service]
    plan: Mapping[Priority, tuple[str, ...]]
    default_priority: Priority = Priority.P3
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/New_York"))
    runbook_url: str = ""
    source: str = "<policy>"


def load(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate policy YAML text; raise PolicyError naming the field on bad input."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    reader = _Reader(source)
    return reader.policy(raw)


def load_file(path: str | Path) -> Policy:
    """Read and validate the policy file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc.strerror}") from None
    return load(text, source=str(path))


def builtin_text() -> str:
    """Return the text of the built-in runbook policy."""
    return resources.files("triage").joinpath("default_policy.yaml").read_text(encoding="utf-8")


def builtin() -> Policy:
    """Return the built-in runbook policy."""
    return load(builtin_text(), source="builtin:default_policy.yaml")


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_BUSINESS_DAYS = re.compile(r"^\s*(\d+)\s+business\s+days?\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_span(text: str) -> Span:
    """Parse `5m`, `2h`, `immediately`, `5 business days` or `next business day`."""
    text = str(text).strip().lower()
    if text == "immediately":
        return Span()
    if text == "next business day":
        return Span(business_days=1)
    if match := _BUSINESS_DAYS.match(text):
        return Span(business_days=int(match.group(1)))
    if match := _DURATION.match(text):
        return Span(duration=timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}))
    raise ValueError(
        f"expected a duration like 15m, 2h, 1d, 'N business days' or 'immediately', got {text!r}"
    )


def format_duration(delta: timedelta) -> str:
    """Format a duration the way the runbook writes it: 5m, 2h, 1h30m."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "immediately"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


class _Reader:
    """Walk raw YAML data, turning each problem into a PolicyError with its path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> PolicyError:
        return PolicyError(f"{self.source}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "expected a mapping")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "expected a non-empty string")
        return value

    def priority(self, value: Any, where: str) -> Priority:
        try:
            return Priority(value)
        except ValueError:
            raise self.fail(where, f"expected one of P0, P1, P2, P3, got {value!r}") from None

    def span(self, value: Any, where: str) -> Span:
        try:
            return parse_span(value)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None

    def policy(self, raw: Any) -> Policy:
        top = self.mapping(raw, "(top level)")
        if top.get("version") != 1:
            raise self.fail("version", f"expected 1, got {top.get('version')!r}")
        try:
            zone = ZoneInfo(self.text(top.get("timezone", "America/New_York"), "timezone"))
        except ZoneInfoNotFoundError:
            raise self.fail("timezone", f"unknown time zone {top.get('timezone')!r}") from None
        catalog = self.catalog(top.get("catalog"))
        return Policy(
            rules=self.rules(top.get("rules")),
            sla=self.sla(top.get("sla")),
            catalog=catalog,
            plan=self.plan(top.get("plan")),
            default_priority=self.priority(top.get("default_priority", "P3"), "default_priority"),
            timezone=zone,
            runbook_url=str(top.get("runbook_url", "")),
            source=self.source,
        )

    def sla(self, raw: Any) -> Mapping[Priority, SlaTargets]:
        table = self.mapping(raw, "sla")
        result = {}
        for priority in Priority:
            row = self.mapping(table.get(priority.value), f"sla.{priority.value}")
            spans = {}
            for name in ("acknowledge", "respond", "resolve", "update_every", "notify_management"):
                if name not in row:
                    raise self.fail(f"sla.{priority.value}.{name}", "missing")
                spans[name] = self.span(row[name], f"sla.{priority.value}.{name}")
            result[priority] = SlaTargets(**spans)
        return result

    def rules(self, raw: Any) -> tuple[Rule, ...]:
        if not isinstance(raw, list):
            raise self.fail("rules", "expected a list")
        rules, names = [], set()
        for index, item in enumerate(raw):
            where = f"rules[{index}]"
            entry = self.mapping(item, where)
            name = self.text(entry.get("name"), f"{where}.name")
            if name in names:
                raise self.fail(f"{where}.name", f"duplicate rule name {name!r}")
            names.add(name)
            match = self.mapping(entry.get("match"), f"{where}.match")
            labels = {}
            for key, value in self.mapping(
                match.get("labels", {}), f"{where}.match.labels"
            ).items():
                values = value if isinstance(value, list) else [value]
                labels[key] = tuple(self.text(v, f"{where}.match.labels.{key}") for v in values)
            trading_path = match.get("trading_path")
            if trading_path is not None and not isinstance(trading_path, bool):
                raise self.fail(f"{where}.match.trading_path", "expected true or false")
            if not labels and trading_path is None:
                raise self.fail(f"{where}.match", "a rule needs at least one condition")
            rules.append(
                Rule(
                    name=name,
                    priority=self.priority(entry.get("priority"), f"{where}.priority"),
                    runbook=str(entry.get("runbook", "")),
                    labels=labels,
                    trading_path=trading_path,
                )
            )
        return tuple(rules)

    def catalog(self, raw: Any) -> Mapping[str, Service]:
        if not isinstance(raw, list):
            raise self.fail("catalog", "expected a list of services")
        services: dict[str, Service] = {}
        for index, item in enumerate(raw):
            where = f"catalog[{index}]"
            entry = self.mapping(item, where)
            name = self.text(entry.get("name"), f"{where}.name")
            if name in services:
                raise self.fail(f"{where}.name", f"duplicate service {name!r}")
            url = self.text(entry.get("health_url"), f"{where}.health_url")
            if not url.startswith(("http://", "https://")):
                raise self.fail(f"{where}.health_url", "expected an http:// or https:// URL")
            services[name] = Service(
                name=name,
                health_url=url,
                trading_path=bool(entry.get("trading_path", False)),
                compose_service=str(entry.get("compose_service", name)),
                owner=str(entry.get("owner", "")),
            )
        return services

    def plan(self, raw: Any) -> Mapping[Priority, tuple[str, ...]]:
        table = self.mapping(raw, "plan")
        result = {}
        for priority in Priority:
            names = table.get(priority.value, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise self.fail(f"plan.{priority.value}", "expected a list of collector names")
            result[priority] = tuple(names)
        return result
