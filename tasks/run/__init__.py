"""One pipeline run, step by step: its state (`state`), its start (`prepare`), its first
response (`first_response`), its evidence note (`evidence_note`) and proposals (`proposals`),
correlation, the alerts that joined it, and its resolution.

Layer "run" of the stack in `tests/unit/test_import_rules.py` (docs/architecture.md): may
import the layers below it (store, basics, the services: pagerduty, evidence, notes, notify's
gateways; runtime; the queue side: `tasks.slack_queue`, `actions.approval`; the runtime
services: `pagerduty.notes`, `pagerduty.incidents`, `pagerduty.responders`, `evidence.collect`),
`collectors` and `triage`; not notify's senders, the rest of `actions`, `tasks.sla`,
`tasks.cli` or the Celery tasks. The test also fails on a package that imports `run` while
`run` imports it: `run` imports nothing of `tasks.notify` (notify's senders read the run).
"""
