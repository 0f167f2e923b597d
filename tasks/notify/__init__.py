"""Notifications beside PagerDuty: Slack and e-mail, each message sent exactly once in effect by a
task of its own, with the same once-records as the notes.

Two layers (`tests/unit/test_import_rules.py`): the gateways (`slack`, `slack_blocks`, `email`,
`email_compose`) are services, below the runtime that builds them, and `slack_queue` is the
queue side, below `tasks.run`; the senders (`slack_send`, `email_send`, `desk`, `management`,
`approval_links`) sit above `tasks.run`, beside `tasks.actions`.
"""
