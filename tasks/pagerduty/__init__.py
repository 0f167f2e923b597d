"""What a run, the SLA clock and the actions do on a PagerDuty incident, over the runtime and
its PagerDuty gateway (`tasks.gateways.pagerduty`): notes posted once (`notes`), incidents
found by key and the account's priorities (`incidents`), responder requests made once
(`responders`).

Layer `runtime services` (`tests/unit/test_import_rules.py`): above the runtime and the queue
side, below `tasks.run`.
"""
