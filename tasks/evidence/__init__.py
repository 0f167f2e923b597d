"""Evidence bundles: the folder, manifest and HTML view of a run, signed links to them, and
collector checks shared between incidents; `collect` runs one collector into a bundle.

Two layers (`tests/unit/test_import_rules.py`): the bundle modules are services and may import
only `collectors.contract`, `triage`, `tasks.store`, `tasks.settings`; `collect` is a runtime
service (it takes the runtime and runs `collectors.registry`).
"""
