"""The SLA clock's actions (escalate, remind, status updates, management) and PagerDuty's
incident events (acknowledged, resolved, ...) applied to the incident record.

May import: `tasks.run` (notes posted once), `tasks.store`, `tasks.pagerduty`, `tasks.runtime`;
not `tasks.cli` or the Celery tasks.
"""
