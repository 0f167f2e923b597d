"""Across hosts (network namespaces, root only): a bundle written on a host that is then cut off
the network and killed opens through the other host's receiver, from the shared S3 store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.failover import Network, unused_run_names
from bench.shared_bundles import S3Server, bundles_written_in, open_bundle
from tests.support import PROJECT, answers_health, stop_server, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="builds network namespaces (ip netns): needs root, as CI has"
)

SECRET = "link-secret-for-the-hosts-test"
PORT = 8080
# The writer is the worker's bundle code, run on host 1: files, manifest, page, archive, publish.
WRITER = """
import os, sys
from datetime import UTC, datetime
from collectors.contract import Evidence, Status
from tasks.evidence import bundle
from tasks.gateways.bundle_store import bundle_path
from tasks.runtime import Runtime
from tasks.settings import settings_from_env

rt = Runtime(settings_from_env(os.environ))
bundle_id = sys.argv[1]
folder = bundle_path(rt.settings.bundle_dir, bundle_id)
found = Evidence("docker", Status.FAILED, "api exited",
                 files={"docker/api.errors.log": "2026-12-07T12:00:00Z ERROR lost\\n"},
                 duration_seconds=0.1)
entries = [bundle.manifest_entry(found, bundle.store_files(folder, found.files, rt.redact),
                                 rt.redact)]
header = {"bundle_id": bundle_id, "title": "ApiDown",
          "classification": {"priority": "P1", "rule": "r", "reason": "why"}}
bundle.write_manifest(folder, header, entries, datetime.now(UTC), rt.voice.bundle_index)
bundle.archive(folder)
rt.bundles.publish(folder, bundle_id)
"""


@pytest.fixture
def network() -> Iterator[Network]:
    """Build two hosts on a bridge; remove them, and whatever runs in them, afterwards."""
    # Names and a /24 of this run's own, as the failover test's: two runs at once build apart.
    hosts = Network(*unused_run_names(os.getpid()), hosts=2)
    hosts.build()
    try:
        yield hosts
    finally:
        hosts.remove()


def host_env(store: S3Server, folder: Path) -> dict[str, str]:
    """Return a host's environment: the shared store, its own (empty) folder, the link key."""
    return {
        **os.environ,
        **store.settings("hosts"),
        "RESPONDER_BUNDLE_DIR": str(folder / "bundles"),
        "RESPONDER_LINK_SECRET": SECRET,
        "RESPONDER_ALLOW_UNAUTHENTICATED": "1",
    }


def test_a_bundle_of_a_host_that_was_cut_off_opens_through_the_survivor(
    network: Network, tmp_path: Path
) -> None:
    with S3Server(network.gateway, log=tmp_path / "s3.log") as store:
        writer = subprocess.run(
            [*network.exec(0), sys.executable, "-c", WRITER, "run-on-h1"],
            cwd=PROJECT, env=host_env(store, tmp_path / "h1"), capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        assert writer.returncode == 0, writer.stderr[-3000:]
        assert bundles_written_in(tmp_path / "h1" / "bundles") == ["run-on-h1"]
        network.cut(0)  # host 1 is off the network, its processes killed

        with (tmp_path / "receiver-h2.log").open("wb") as log:
            receiver = subprocess.Popen(
                [*network.exec(1), sys.executable, "-m", "gunicorn", "--workers", "1",
                 "--bind", f"{network.address(1)}:{PORT}",
                 "--config", "python:webhooks.gunicorn_config", "webhooks:create_app()"],
                cwd=PROJECT, env=host_env(store, tmp_path / "h2"), stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        url = f"http://{network.address(1)}:{PORT}"
        try:
            wait_for(
                lambda: answers_health(url, receiver, "receiver-h2.log"),
                timeout=120,
                what="host 2's receiver",
            )
            opened = open_bundle(url, "run-on-h1", SECRET)
            assert opened["served"], opened
            assert not (tmp_path / "h2" / "bundles").exists()  # not from host 2's own disk
        finally:
            stop_server(receiver)
