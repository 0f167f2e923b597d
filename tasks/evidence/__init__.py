"""Evidence bundles: the folder, manifest and HTML view of a run, signed links to them, and
collector checks shared between incidents; `collect` runs one collector into a bundle. Where
bundles are kept (a folder or S3) is the bundle store gateway, `tasks.gateways.bundle_store`.

Two layers (`tests/unit/test_import_rules.py`): the bundle modules are services and may import
only `collectors.contract`, `triage`, `tasks.store`, `tasks.settings` and `tasks.gateways`;
`collect` and `shared_bundle` are runtime services (they take the runtime).
"""
