"""Moving a run's bundle between this host's working folder and the bundle store.

Collectors may run on several hosts; each writes its files in its own folder and publishes
them, and the host that finishes the run first fetches what the others published. A store that
refuses a write never stops the run: the note says where the evidence is instead.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from pathlib import Path

from tasks.gateways.bundle_store import BundleStoreError
from tasks.runtime import Runtime

log = logging.getLogger(__name__)


def publish_bundle(
    rt: Runtime, folder: Path, bundle_id: str, names: Iterable[str] | None = None
) -> str:
    """Copy the named files (all when None) of `folder` into the store; return "" or why not."""
    try:
        rt.bundles.publish(folder, bundle_id, names)
    except BundleStoreError as exc:
        why = rt.redact(str(exc))
        log.warning("bundle %s: not stored in the bundle store: %s", bundle_id, why)
        return why
    return ""


def fetch_bundle(rt: Runtime, bundle_id: str, folder: Path) -> frozenset[str]:
    """Copy into `folder` what other hosts published of the bundle; return the names the
    shared store holds of it (none: a store on this host's disk, or one that did not answer)."""
    if not rt.bundles.shared:
        return frozenset()
    try:
        return frozenset(rt.bundles.fetch(bundle_id, folder))
    except BundleStoreError as exc:
        log.warning("bundle %s: other hosts' files not fetched: %s", bundle_id, rt.redact(str(exc)))
        return frozenset()


def stranded(folder: Path, why: str) -> dict[str, str]:
    """Return where a bundle the store refused is kept: this host, its folder, and why."""
    return {"host": socket.gethostname(), "path": str(folder.resolve()), "why": why}
