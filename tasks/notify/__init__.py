"""Slack (and e-mail): messages about an incident besides PagerDuty's notes, each sent exactly
once in effect by a task of its own, with the same once-records as the notes."""
