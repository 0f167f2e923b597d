"""Runbook actions: proposals and approvals (one path for every approval), execution on
catalog targets only, verification and the audit record.

Two layers (`tests/unit/test_import_rules.py`): `approval` is the queue side, below `tasks.run`
(the receiver, the CLI and a run propose and approve through it; it sends tasks by name); `act`,
`execute`, `recheck` and `validation` sit above `tasks.run`.
"""
