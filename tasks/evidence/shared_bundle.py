"""Moving a run's bundle between this host's working folder and the bundle store.

Collectors may run on several hosts; each writes its files in its own folder and publishes
them, and the host that finishes the run first fetches what the others published. A store that
refuses a write never stops the run: the note says where the evidence is instead.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path

from tasks.gateways.bundle_store import BundleStoreError, local_names
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


def fetch_bundle(rt: Runtime, bundle_id: str, folder: Path) -> dict[str, int]:
    """Copy into `folder` what other hosts published of the bundle; return the size of each
    file the shared store holds of it (none: a store on this host's disk, or one that did not
    answer)."""
    if not rt.bundles.shared:
        return {}
    try:
        return rt.bundles.fetch(bundle_id, folder)
    except BundleStoreError as exc:
        log.warning("bundle %s: other hosts' files not fetched: %s", bundle_id, rt.redact(str(exc)))
        return {}


def not_in_store(folder: Path, in_store: Mapping[str, int], always: Iterable[str]) -> list[str]:
    """Return the files of `folder` the store lacks, or holds at another size, and `always`.

    Sizes, not only names: a collector retried on this host rewrote its files, and if its own
    upload was refused the store still holds the first attempt's.
    """
    return [
        name
        for name in local_names(folder)
        if name in always or in_store.get(name) != (folder / name).stat().st_size
    ]


def stranded(folder: Path, why: str) -> dict[str, str]:
    """Return where a bundle the store refused is kept: this host, its folder, and why."""
    return {"host": socket.gethostname(), "path": str(folder.resolve()), "why": why}
