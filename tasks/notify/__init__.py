"""Notifications beside PagerDuty: Slack and e-mail, each message sent exactly once in effect by a
task of its own, through `tasks.store.effects.once` as the notes are. The gateways they send
through (Slack, SMTP) and the messages those carry are in `tasks.gateways`.

Layer `actions and senders` (`tests/unit/test_import_rules.py`): the senders (`slack_send`,
`email_send`, `desk`, `management`, `approval_links`) sit above `tasks.run`, beside
`tasks.actions`. Slack work is queued by `tasks.slack_queue`, outside this package, so that
`run` and the approval path queue it without importing `notify`.
"""
