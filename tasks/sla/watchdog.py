"""Watching the watcher: page once, through the Events API, when the Watchdog alert stops.

Run by beat every few seconds (`watchdog_check`), on whichever host holds the beat lease; safe
to run twice at once: the page of one silence is claimed by one check (a once-marker), and its
dedup key is fixed, so PagerDuty itself folds any second trigger into the open incident.
"""

from __future__ import annotations

import logging
from datetime import datetime

from tasks.gateways.pagerduty import PagerDutyUnavailable
from tasks.pagerduty.incidents import SEVERITY
from tasks.runtime import Runtime
from triage.policy import format_duration
from triage.watchdog import silence

log = logging.getLogger(__name__)

DEDUP_KEY = "eafix-responder/monitoring-pipeline-silent"  # one incident, however often sent
PRIORITY = "P1"


def check(rt: Runtime, now: datetime) -> str:
    """Page once when the Watchdog has been silent for the policy's interval; say what was done."""
    watchdog = rt.policy.watchdog
    if watchdog is None:
        return "not watched (no watchdog in the policy)"
    marks = rt.watchdog
    since = marks.watching_since(now)
    heard = silence(watchdog, rt.policy.market_hours, marks.last_seen(), since, now)
    if not heard.silent:
        return heard.reason
    if not marks.claim_page(heard.since):
        return "silent; already paged"
    silent_for = format_duration(now - heard.since)
    event = {
        "event_action": "trigger",
        "dedup_key": DEDUP_KEY,
        "payload": {
            "summary": rt.voice.watchdog_silent(watchdog.alertname, heard.since, silent_for),
            "source": "eafix-responder",
            "severity": SEVERITY[PRIORITY],
            "custom_details": {
                "last_watchdog_at": heard.since.isoformat(),
                "interval": format_duration(watchdog.interval),
            },
        },
    }
    try:
        rt.pagerduty.trigger(event)
    except PagerDutyUnavailable:
        marks.unclaim_page()  # the next check pages again
        raise
    log.error("no %s alert for %s: paged (%s)", watchdog.alertname, silent_for, DEDUP_KEY)
    return f"silent for {silent_for}: paged"
