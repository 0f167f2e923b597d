"""Runbook actions: proposals and approvals (one path for every approval), execution on
catalog targets only, verification and the audit record."""
