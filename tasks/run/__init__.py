"""One pipeline run, step by step: its state, the first-response and evidence notes posted
once, and the alerts that joined it.

Layer "run" of the stack in `tests/unit/test_import_rules.py` (docs/architecture.md): may
import the layers below it (store, pagerduty, evidence, notes, notify's gateways, runtime, the
queue side: `notify.slack_queue`, `actions.approval`) and `collectors`; not notify's senders,
the rest of `actions`, `tasks.sla`, `tasks.cli` or the Celery tasks (`tasks.pipeline`).
"""
