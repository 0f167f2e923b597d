"""Every text the responder writes: PagerDuty notes, status updates, the closing note, report
lines. `voice` renders them from the Jinja2 templates in `templates/` (a policy may override
any of them); `markers` knows our notes again and keeps them short.

May import: `triage`, `collectors.contract`. Pure: no Redis, no network, no clock.
"""
