"""Runbook actions: proposals and approvals (one path for every approval), execution on
catalog targets only, verification and the audit record.

Two layers (`tests/unit/test_import_rules.py`): `approval` is the queue side, below `tasks.run`
(the receiver, the CLI and a run propose and approve through it; it sends tasks by name and
never imports `tasks.notes` or `collectors`); `act`, `execute`, `recheck` and `validation` sit
above `tasks.run` and import nothing of it (notes through `tasks.pagerduty.notes`, collectors
through `tasks.evidence.collect`), so `run` and `actions` are no package pair.
"""
