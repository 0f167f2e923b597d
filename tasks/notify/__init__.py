"""Notifications beside PagerDuty: Slack and e-mail, each message sent exactly once in effect by a
task of its own, through `tasks.store.effects.once` as the notes are.

Two layers (`tests/unit/test_import_rules.py`): the gateways (`slack`, `slack_blocks`, `email`,
`email_compose`) are services, below the runtime that builds them; the senders (`slack_send`,
`email_send`, `desk`, `management`, `approval_links`) sit above `tasks.run`, beside
`tasks.actions`. Slack work is queued by `tasks.slack_queue`, outside this package, so that
`run` and the approval path queue it without importing `notify`. The one package pair it is
allowed to form is with `tasks.runtime` (the runtime builds the gateways).
"""
