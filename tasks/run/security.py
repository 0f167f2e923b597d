"""The security team, called in by the first response when a rule that pages it matches.

The runbook's "Security breach with active exploitation" is P0 and suspicious activity (a spike
of failed logins) P1; both need the security team. The policy's rules say which classifications
page it (`page_security_team`), `pagerduty.security` whom: a PagerDuty responder request, sent
once per incident, as the management request of the SLA clock is.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.gateways.pagerduty import IncidentRef
from tasks.notes import lines
from tasks.pagerduty.responders import (
    ResponderRequest,
    describe_targets,
    request_responders_once,
)
from tasks.run.state import RunState
from tasks.runtime import Runtime
from triage.policy import Policy

SECURITY_REQUEST = "security-request"  # the once-marker, kept per incident


@dataclass(frozen=True)
class SecurityCall:
    """That a run calls the security team in: by the rule that pages them, and whom."""

    rule: str
    called: str  # e.g. "PSEC789 (escalation policy)"; "" when the policy names no one


def security_call(policy: Policy, state: RunState) -> SecurityCall | None:
    """Return whom the run calls in from the security team, or None when no rule pages them."""
    # A state saved before runs kept their rules knows only the run's own classification.
    rule = policy.security_rule(state.rules or [state.classification.rule])
    if rule is None:
        return None
    team = policy.pagerduty.security
    return SecurityCall(rule.name, describe_targets(team.targets) if team else "")


def request_security_team(rt: Runtime, state: RunState, incident: IncidentRef) -> str | None:
    """Ask the policy's security team to join the incident, once per incident.

    Return the text of a note to post when PagerDuty refused the request for good (400, 402
    without coordinated responding, 404: then they are called in by hand); None otherwise. A
    failure worth retrying (429, 5xx, the network) is raised, and the task tries again.
    """
    call = security_call(rt.policy, state)
    team = rt.policy.pagerduty.security
    if call is None or team is None or incident.id is None:
        return None
    priority = str(state.classification.priority)
    message = lines.policy_message(team.message, priority=priority, title=state.title)
    request = ResponderRequest(team.requester_id, team.targets, message)
    timeline = lines.timeline("security_requested", called=call.called)
    asked = request_responders_once(
        rt, incident, SECURITY_REQUEST, request, timeline, detail=call.called
    )
    if asked.how == "refused":
        return rt.voice.security_refused(priority, call.called, asked.why)
    return None
