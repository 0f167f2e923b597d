"""The one way to PagerDuty: the REST and Events API client (or the outbox without a token)
and the request budget every worker shares; over the runtime, what a run, the SLA clock and
the actions do with it: notes posted once (`notes`), incidents found by key and the account's
priorities (`incidents`), responder requests made once (`responders`).

Two layers (`tests/unit/test_import_rules.py`): `client` and `budget` are services and may
import only `tasks.store`, `tasks.settings`, `tasks.retries`, `tasks.lanes`; `notes`,
`incidents` and `responders` are runtime services (above the runtime and the queue side, below
`tasks.run`). The package pair it forms with `tasks.runtime` is a known exception.
"""
