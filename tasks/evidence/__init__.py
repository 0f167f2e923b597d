"""Evidence bundles: the folder, manifest and HTML view of a run, signed links to them, and
collector checks shared between incidents.

May import: `collectors.contract`, `triage`, `tasks.store`, `tasks.settings`.
"""
