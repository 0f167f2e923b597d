"""Every Redis key and record the responder keeps: deliveries and their once-markers, incident
records, SLA deadlines, dead letters, the direct connection the receiver records on, and
`effects.once`, the exactly-once protocol over the once-markers.

May import: `triage`, `tasks.enqueue` (the task message type). Nothing that talks to
PagerDuty, runs a collector or renders a note.
"""
