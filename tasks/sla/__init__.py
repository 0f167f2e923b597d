"""The SLA clock's actions (escalate, remind, status updates, management), PagerDuty's
incident events (acknowledged, resolved, ...) applied to the incident record, and the closing
of a resolved incident (its timeline and closing note).

May import: `tasks.run` (notes posted once), `tasks.store`, `tasks.pagerduty`, `tasks.runtime`;
not `tasks.cli` or the Celery tasks.
"""
