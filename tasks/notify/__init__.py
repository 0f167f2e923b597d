"""Notifications beside PagerDuty: Slack and e-mail, each message sent exactly once in effect by a
task of its own, with the same once-records as the notes."""
