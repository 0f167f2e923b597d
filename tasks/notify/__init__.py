"""Notifications beside PagerDuty: e-mail (and Slack), with the same exactly-once rules as notes."""
