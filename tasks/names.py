"""The Celery task names, the one thing the receiver and the CLI need to know of the worker.

A small module on purpose: the web process enqueues by name and never imports the task
modules (and, through them, the collectors, the bundle writer and the PagerDuty client).
"""

RESPOND = "tasks.pipeline.respond"
GATHER = "tasks.pipeline.gather"
NOTE_RESOLVED = "tasks.pipeline.note_resolved"
SLA_ACTION = "tasks.pipeline.sla_action"
CLOSE_INCIDENT = "tasks.pipeline.close_incident"
JOINED_NOTE = "tasks.pipeline.joined_note"
ANSWER_NOTE = "tasks.pipeline.answer_note"
ACT = "tasks.pipeline.act"
ACTION_REFUSED = "tasks.pipeline.action_refused"
APPROVE_IF_ASSIGNED = "tasks.pipeline.approve_if_assigned"
ACTION_ALREADY = "tasks.pipeline.action_already"
SLACK_MESSAGE = "tasks.pipeline.slack_message"
ACTION_WAITS = "tasks.pipeline.action_waits"
APPROVAL_LINKS = "tasks.pipeline.approval_links"
