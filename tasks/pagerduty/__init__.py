"""The one way to PagerDuty: the REST and Events API client (or the outbox without a token)
and the request budget every worker shares.

May import: `tasks.store`, `tasks.settings`, `tasks.retries`, `tasks.lanes`.
"""
