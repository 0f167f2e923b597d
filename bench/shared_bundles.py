"""Bundles in a shared S3 store, for the benches and the tests: a local S3 server (moto's server
mode, a real HTTP server), the settings that point a responder at it, and a check that a
bundle opens through a given receiver, as a reader of the note's link would open it.

The failover bench (bench/failover.py) can use them to open, through the surviving host's
receiver, a bundle the host it cut had written:

    store = S3Server(network.gateway)  # in the root namespace, which every host reaches
    env = {**responder_env(...), **store.settings(), "RESPONDER_LINK_SECRET": SECRET}
    ...  # after the cut:
    for bundle_id in bundles_written_in(directory / network.names[cut] / "bundles"):
        opened = open_bundle(f"http://{network.address(survivor)}:8080", bundle_id, SECRET)
        assert opened["served"], opened
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from tasks.evidence.links import bundle_link

BUCKET = "responder-bundles"
PREFIX = "bench"
# moto accepts any key pair; these stand for the pair a real store would issue.
ACCESS_KEY_ID = "bench-access-key"
SECRET_ACCESS_KEY = "bench-secret-key"


def _free_port(host: str) -> int:
    """Return a TCP port free on `host` now."""
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class S3Server:
    """moto's S3 server on `host` (a real HTTP server in its own process), with one bucket."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log: Path | None = None) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.url = f"http://{host}:{self.port}"
        out = log.open("ab") if log else None
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", host, "-p", str(self.port)],
                stdout=out or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if out is not None:
                out.close()  # the server holds its own copy
        try:
            self._wait_up(timeout=60)
            self.client().create_bucket(Bucket=BUCKET)
        except BaseException:
            self.stop()
            raise

    def _wait_up(self, timeout: float) -> None:
        """Wait until the server answers HTTP (a busy machine takes seconds to import moto)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto's server exited ({self.process.returncode})")
            try:
                requests.get(self.url, timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"moto's server did not answer on {self.url} in {timeout:g} s")

    def client(self) -> Any:
        """Return a boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name="us-east-1",
        )

    def settings(self, prefix: str = PREFIX) -> dict[str, str]:
        """Return the RESPONDER_* variables that put a responder's bundles in this store."""
        return {
            "RESPONDER_BUNDLE_STORE": f"s3://{BUCKET}/{prefix}",
            "RESPONDER_S3_ENDPOINT_URL": self.url,
            "RESPONDER_S3_REGION": "us-east-1",
            "RESPONDER_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "RESPONDER_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }

    def stop(self) -> None:
        """Stop the server (its process only)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def bundles_written_in(folder: Path) -> list[str]:
    """Return the ids of the bundles a host finished in its working folder (RESPONDER_BUNDLE_DIR):
    those with a manifest, which the run writes last before its note."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "manifest.json").is_file())


def open_bundle(
    receiver_url: str, bundle_id: str, link_secret: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Open a bundle through `receiver_url` by a signed link, page and manifest; say what came.

    `served` is True when the page and the manifest answered 200 and the manifest is the
    bundle's own.
    """
    expires = int(time.time()) + 600
    link = bundle_link(receiver_url, bundle_id, expires, link_secret)
    page = requests.get(link, timeout=timeout)
    manifest = requests.get(link.replace("/?", "/manifest.json?", 1), timeout=timeout)
    body = manifest.json() if manifest.status_code == 200 else {}
    return {
        "bundle_id": bundle_id,
        "page_status": page.status_code,
        "manifest_status": manifest.status_code,
        "manifest_bundle_id": body.get("bundle_id"),
        "served": page.status_code == 200
        and manifest.status_code == 200
        and body.get("bundle_id") == bundle_id,
    }
