"""Queue Slack messages: the one way the pipeline, the SLA clock and the receiver ask for one.

Loads nothing of the worker's (no slack_sdk): the receiver sends these tasks by name.
"""

from __future__ import annotations

import logging
from typing import Any

from tasks.lanes import notify_queue
from tasks.names import SLACK_MESSAGE
from tasks.runtime import Runtime
from tasks.store.slack import SlackThreads

log = logging.getLogger(__name__)


def tell_slack(rt: Runtime, request: dict[str, Any], priority: str | None = None) -> bool:
    """Queue one Slack request about an incident on its priority's notify queue; say if it was.

    Without `priority`, only an incident that has a Slack thread is told more (its thread's
    priority picks the lane); others, and processes that cannot send tasks, queue nothing.
    """
    if rt.send_task is None or not rt.policy.slack.enabled:
        return False
    if priority is None:
        thread = SlackThreads(rt.redis).get(str(request["incident_id"]))
        if thread is None:
            return False
        priority = thread.priority
    try:
        rt.send_task(SLACK_MESSAGE, [request], notify_queue(rt.settings.queue, priority))
    except Exception:  # Slack is the second channel: a note already went out; never fail it
        log.exception("cannot queue the Slack message %s", request.get("what"))
        return False
    return True
