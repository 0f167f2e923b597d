"""One pipeline run, step by step: its state, the first-response and evidence notes posted
once, and the alerts that joined it.

May import: anything in `tasks` below it (store, pagerduty, evidence, notes, runtime) and
`collectors`; not `tasks.sla`, `tasks.cli` or the Celery tasks (`tasks.pipeline`).
"""
