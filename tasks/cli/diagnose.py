"""`responder diagnose SERVICE`: run the plan's collectors in-process, as the pipeline would."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

import click

from collectors.contract import Target
from tasks.cli.options import runtime_or_usage_error
from tasks.cli.terminal import say
from tasks.evidence import bundle
from tasks.evidence.collect import collect_into_bundle
from tasks.gateways.bundle_store import BundleStoreError, bundle_path
from triage.models import Priority


@click.command("diagnose")
@click.argument("service")
@click.option(
    "--priority",
    type=click.Choice([p.value for p in Priority]),
    default="P1",
    show_default=True,
    help="Whose plan to run.",
)
@click.option("--dry-run", is_flag=True, help="Say which collectors would run; run none.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def diagnose_command(service: str, priority: str, dry_run: bool, as_json: bool) -> None:
    """Diagnose SERVICE now with the plan's collectors; print results and where the bundle is."""
    runtime = runtime_or_usage_error()
    policy = runtime.policy
    if service not in policy.catalog:
        known = ", ".join(policy.catalog)
        raise click.BadParameter(
            f"{service!r} is not in the catalog ({known})", param_hint="SERVICE"
        )
    plan = policy.plan[Priority(priority)]
    if dry_run:
        say(f"would run for {service} at {priority}: {', '.join(plan) or '(nothing)'}")
        return
    services = (policy.catalog[service], *(s for n, s in policy.catalog.items() if n != service))
    target = Target(services, alert_name=f"diagnose {service}", affected=(service,))
    now = datetime.now(UTC)
    bundle_id = f"diagnose-{service}-{now:%Y%m%dT%H%M%SZ}"
    entries = []
    for number, name in enumerate(plan, 1):
        if not as_json:
            say(f"[{number}/{len(plan)}] {name} ...", nl=False)
        entry = collect_into_bundle(runtime, bundle_id, name, target)
        entries.append(entry)
        if not as_json:
            say(f" {entry['status']} ({entry['duration_seconds']:.2f} s)")
    header = {
        "bundle_id": bundle_id,
        "title": f"diagnose {service}",
        "classification": {"priority": priority, "rule": "manual", "reason": "responder diagnose"},
        "diagnosis": {"service": service, "by": _who(), "via": "responder diagnose (CLI)"},
    }
    folder = bundle_path(runtime.settings.bundle_dir, bundle_id)
    manifest = bundle.write_manifest(
        folder, header, entries, datetime.now(UTC), runtime.voice.bundle_index
    )
    bundle.archive(folder)
    where = str(folder.resolve())
    if runtime.bundles.shared:
        try:
            runtime.bundles.publish(folder, bundle_id)
            where = runtime.bundles.location(bundle_id)
        except BundleStoreError as exc:
            # The bundle is still here: say so, and why the store did not take it.
            say(f"not stored in the bundle store: {runtime.redact(str(exc))}", err=True)
    if as_json:
        say(json.dumps({**manifest, "path": where}, indent=2))
        return
    say("")
    for entry in sorted(entries, key=lambda e: e["status"] == "ok"):
        say(f"{entry['status'].upper():<8} {entry['name']:<11} {entry['summary']}")
    say(f"\nbundle: {where}")


def _who() -> str:
    """Return the login name running the command, as the bundle credits it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return "an unnamed user"
