"""The SLA clock's actions (escalate, remind, status updates, management), PagerDuty's
incident events (acknowledged, resolved, ...) applied to the incident record, and the closing
of a resolved incident (its timeline and closing note).

Layer "sla" of the stack in `tests/unit/test_import_rules.py`: may import every layer below it
(`tasks.run`, `tasks.actions`, notify's senders, `tasks.store`, `tasks.pagerduty`,
`tasks.runtime`, ...); not `tasks.cli` or the Celery tasks.
"""
