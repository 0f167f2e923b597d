"""The outside services we write to, one module each, and the message each one carries:
PagerDuty's REST and Events API client (`pagerduty`) with the request budget every worker
shares (`request_budget`), Slack (`slack`, its Block Kit messages in `slack_blocks`), SMTP
(`email`, its messages and the decision on an SMTP reply in `email_compose`) and the bundle
store (`bundle_store`: a local folder or S3). Each gateway has an outbox twin for a process
without credentials.

Layer `gateways` (`tests/unit/test_import_rules.py`): above `tasks.store` and the basics, below
everything that uses them; they may import only `tasks.store`, `tasks.settings`,
`tasks.retries` and `tasks.lanes`. The runtime builds them, once per process.
"""
