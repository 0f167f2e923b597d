"""The pure rules of runbook actions: which target an approval may name, who may approve,
where a call goes, whether a check passed. No network, no clock: time is an argument.

A target is a catalog service picked by its exact name; nothing an approver or an alert sends
ever becomes part of a URL, a container filter or an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from triage.policy import Action, ActionCheck, Policy, Service, service_endpoint

ANYONE = "anyone"


class ActionRefused(ValueError):
    """An action that cannot run as asked; the message says why, for the note and the caller."""


@dataclass(frozen=True)
class Resolved:
    """An action and the one catalog service it acts on."""

    action: Action
    service: Service


def resolve(policy: Policy, action_name: str, target: str | None) -> Resolved:
    """Return the action named and its catalog target; raise ActionRefused saying why not.

    A fixed target ignores nothing silently: naming another service is refused.
    """
    action = policy.actions.catalog.get(action_name)
    if action is None:
        known = ", ".join(sorted(policy.actions.catalog)) or "none"
        raise ActionRefused(f"no action named {_shown(action_name)} (known: {known})")
    if action.named_at_approval:
        if not target:
            raise ActionRefused(f"{action.name} needs a catalog service to act on")
        service = policy.catalog.get(target)
        if service is None:
            known = ", ".join(sorted(policy.catalog))
            raise ActionRefused(f"no catalog service named {_shown(target)} (known: {known})")
        return Resolved(action, service)
    if target and target != action.service:
        raise ActionRefused(f"{action.name} acts on {action.service} only, not on {_shown(target)}")
    return Resolved(action, policy.catalog[action.service])


def may_approve(action: Action, approver: str) -> bool:
    """Return True when `approver` (a PagerDuty user id, an e-mail or a name) may approve.

    An action the policy says needs no approval runs for whoever asks it through a path.
    """
    if not action.needs_approval:
        return True
    allowed = {a.lower() for a in action.approvers}
    return ANYONE in allowed or approver.strip().lower() in allowed


def expired(expires_at: datetime, now: datetime) -> bool:
    """Return True when a proposal expiring at `expires_at` can no longer be approved."""
    return now >= expires_at


def call_url(resolved: Resolved) -> str:
    """Return the URL of an HTTP action: the target's host and the catalog's path."""
    return service_endpoint(resolved.service, resolved.action.http_path)


def check_url(service: Service, check: ActionCheck) -> str:
    """Return the URL a verification check reads: the health URL or a path on the host."""
    return service_endpoint(service, check.get) if check.get else service.health_url


def check_passed(check: ActionCheck, status: int | None, body: Any) -> bool:
    """Return True when one read of a check's URL (status None: no answer) meets the check."""
    if check.health == "down":
        return status is None or status >= 500
    if status is None or status >= 400:
        return False
    if check.health == "ok":
        return not isinstance(body, Mapping) or body.get("status", "ok") == "ok"
    return isinstance(body, Mapping) and all(
        str(body.get(key)) == value for key, value in check.expect.items()
    )


def describe_check(check: ActionCheck) -> str:
    """Say what a check waits for, for notes and the audit record."""
    if check.health:
        return f"health {check.health}"
    wanted = ", ".join(f"{k}={v}" for k, v in check.expect.items())
    return f"GET {check.get} says {wanted}"


def _shown(name: str) -> str:
    """Return a name as a message may quote it: short, one line, repr-escaped."""
    return repr(name[:60] + ("..." if len(name) > 60 else ""))
