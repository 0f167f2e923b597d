"""Bundles in a shared S3 store (moto's server mode, a real HTTP S3 server on loopback): written
by one host's worker, served by another receiver process whose own folder is empty."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from bench.shared_bundles import BUCKET, S3Server, bundles_written_in, open_bundle
from tasks.evidence import bundle
from tasks.evidence.links import signed_query
from tasks.gateways.bundle_store import BundleStoreError, S3Bundles, make_bundle_store
from tasks.run import evidence_note as evidence_run
from tasks.run import first_response, prepare
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings, settings_from_env
from tests.support import PROJECT, TOKEN, answers_health, sample_payload, stop_server, wait_for
from tests.support.incident_page import make_incident
from webhooks import create_app


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """Run one S3 server for the module."""
    with S3Server() as server:
        yield server


def store_settings(base: Settings, s3: S3Server, folder: Path, prefix: str) -> Settings:
    """Return `base` writing bundles to `folder` and the S3 store under `prefix`, outbox mode."""
    shared = settings_from_env(s3.settings(prefix))
    return replace(
        base,
        pagerduty_token=Secret(""),
        outbox_dir=folder / "outbox",
        bundle_dir=folder / "bundles",
        bundle_store=shared.bundle_store,
        s3_endpoint_url=shared.s3_endpoint_url,
        s3_region=shared.s3_region,
        s3_access_key_id=shared.s3_access_key_id,
        s3_secret_access_key=shared.s3_secret_access_key,
    )


def store_of(s3: S3Server, tmp_path: Path, prefix: str) -> S3Bundles:
    """Return the S3 store the settings name (the backend the responder would choose)."""
    store = make_bundle_store(store_settings(Settings(), s3, tmp_path, prefix))
    assert isinstance(store, S3Bundles)
    return store


def test_a_published_bundle_is_listed_opened_tailed_fetched_and_pruned(
    s3: S3Server, tmp_path: Path
) -> None:
    store = store_of(s3, tmp_path, "roundtrip")
    folder = tmp_path / "written" / "r1"
    (folder / "docker").mkdir(parents=True)
    (folder / "docker" / "api.log").write_text("".join(f"line {n}\n" for n in range(1000)))
    (folder / "manifest.json").write_text('{"bundle_id": "r1"}')
    (folder / "empty.txt").write_text("")
    (folder / ".bundle.tar.gz.part").write_text("a write in progress")
    store.publish(folder, "r1")

    assert store.names("r1") == ["docker/api.log", "empty.txt", "manifest.json"]
    assert store.location("r1") == f"s3://{BUCKET}/roundtrip/r1/"
    opened = store.open("r1", "manifest.json")
    assert opened is not None and b"".join(opened.chunks) == b'{"bundle_id": "r1"}'
    assert opened.size == len(b'{"bundle_id": "r1"}')
    assert store.open("r1", "nope.txt") is None
    assert store.tail("r1", "docker/api.log", 10) == b"\nline 999\n"
    assert store.tail("r1", "empty.txt", 10) == b""
    assert store.tail("r1", "nope.txt", 10) is None

    other_host = tmp_path / "other" / "r1"
    (other_host / "docker").mkdir(parents=True)
    (other_host / "docker" / "api.log").write_text("this host's own copy")
    # Every file the store holds comes back with its size; only the ones this host lacked
    # were copied.
    assert store.fetch("r1", other_host) == {
        "docker/api.log": len("".join(f"line {n}\n" for n in range(1000))),
        "empty.txt": 0,
        "manifest.json": len('{"bundle_id": "r1"}'),
    }
    assert (other_host / "docker" / "api.log").read_text() == "this host's own copy"
    assert (other_host / "manifest.json").read_text() == '{"bundle_id": "r1"}'

    now = datetime.now(UTC).timestamp()
    assert store.prune(cutoff=now - 3600) == 0  # written just now: kept
    assert store.prune(cutoff=now + 3600) == 1
    assert store.names("r1") == []


@pytest.mark.parametrize("name", ["../r2/manifest.json", "/etc/passwd", "docker/.hidden", ""])
def test_a_file_name_that_would_escape_the_bundle_makes_no_key(
    s3: S3Server, tmp_path: Path, name: str
) -> None:
    with pytest.raises(ValueError, match="invalid bundle file name"):
        store_of(s3, tmp_path, "escape").open("r1", name)


def test_a_store_that_does_not_answer_says_what_was_being_done(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_from_env(
        {
            "RESPONDER_BUNDLE_STORE": "s3://nobody-home/x",
            "RESPONDER_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "RESPONDER_S3_ACCESS_KEY_ID": "id-1",
            "RESPONDER_S3_SECRET_ACCESS_KEY": "never-shown-7Qz",
        }
    )
    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    with pytest.raises(BundleStoreError) as refused:
        make_bundle_store(settings).publish(folder, "r1")
    assert str(refused.value).startswith("writing x/r1/manifest.json: ")
    assert "never-shown-7Qz" not in str(refused.value)


def run_pipeline(settings: Settings, others: Settings) -> tuple[Runtime, str, str]:
    """Run a delivery's pipeline in-process: half the collectors on `others`' host (its own
    folder), the other half and the finish on `settings`' host; return (rt, run, delivery)."""
    client = create_app(settings).test_client()
    accepted = client.post(
        "/webhooks/alertmanager",
        json=sample_payload(),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).get_json()
    rt, elsewhere = Runtime(settings), Runtime(others)
    state = prepare.prepare_run(rt, accepted["delivery_id"], 1, datetime.now(UTC))
    assert state is not None and len(state.collectors) >= 2
    incident = first_response.resolve_incident(rt, state)
    first_response.post_first_note(rt, state, incident)
    entries = [
        evidence_run.collect_evidence(elsewhere if n % 2 else rt, state.run_id, name)
        for n, name in enumerate(state.collectors)
    ]
    evidence_run.finish_run(rt, state.run_id, entries, datetime.now(UTC))
    return rt, state.run_id, accepted["delivery_id"]


def evidence_note(outbox: Path) -> str:
    """Return the content of the last note written to the outbox."""
    calls = [json.loads(p.read_text()) for p in sorted(outbox.glob("*.json"))]
    return str(calls[-1]["json"]["note"]["content"])


@pytest.fixture
def receiver_b(responder_env: dict[str, str], s3: S3Server, tmp_path: Path) -> Iterator[str]:
    """Serve another receiver process (gunicorn) with the same store and an empty folder."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        **responder_env,
        **s3.settings("shared"),
        "RESPONDER_BUNDLE_DIR": str(tmp_path / "host-b" / "bundles"),
        "RESPONDER_QUEUE": "responder-bundle-store-test",  # no worker reads it
    }
    with (tmp_path / "receiver-b.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
             "--config", "python:webhooks.gunicorn_config", "webhooks:create_app()"],
            cwd=PROJECT, env=env, stderr=log,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers_health(url, server, "receiver-b.log"), what="receiver B to serve")
        yield url
    finally:
        stop_server(server)


def test_a_bundle_written_on_one_host_is_served_by_another_receiver_with_an_empty_folder(
    intake_settings: Settings, s3: S3Server, tmp_path: Path, receiver_b: str
) -> None:
    host_a = store_settings(intake_settings, s3, tmp_path / "host-a", "shared")
    host_c = store_settings(intake_settings, s3, tmp_path / "host-c", "shared")
    rt, run_id, delivery_id = run_pipeline(host_a, host_c)

    assert rt.deliveries.get(delivery_id)["bundle_path"] == f"s3://{BUCKET}/shared/{run_id}/"
    # Host C's collectors published their files; host A fetched them to finish the bundle.
    manifest = json.loads((tmp_path / "host-a" / "bundles" / run_id / "manifest.json").read_text())
    listed = {name for entry in manifest["collectors"] for name in entry["files"]}
    stored = set(make_bundle_store(host_a).names(run_id))
    assert listed and listed <= stored
    written_on_c = {n for n in listed if (tmp_path / "host-c" / "bundles" / run_id / n).is_file()}
    assert written_on_c and written_on_c < listed  # both hosts' collectors wrote files
    assert {"manifest.json", "summary.md", "index.html", bundle.ARCHIVE} <= stored

    secret = intake_settings.link_secret.reveal()
    opened = open_bundle(receiver_b, run_id, secret)
    assert opened["served"], opened
    for name in sorted(listed):
        expires = int(datetime.now(UTC).timestamp()) + 600
        answer = requests.get(
            f"{receiver_b}/bundles/{run_id}/{name}?{signed_query(run_id, expires, secret)}",
            timeout=10,
        )
        assert answer.status_code == 200, name
        assert answer.content == (tmp_path / "host-a" / "bundles" / run_id / name).read_bytes()
    assert not (tmp_path / "host-b" / "bundles").exists()  # nothing came from B's own disk
    assert bundles_written_in(tmp_path / "host-a" / "bundles") == [run_id]


def test_finishing_a_bundle_uploads_only_what_the_store_lacks(
    intake_settings: Settings, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads: list[list[str]] = []
    publish = S3Bundles.publish

    def recorded(self: S3Bundles, folder: Path, bundle_id: str, names=None) -> None:
        names = None if names is None else list(names)
        uploads.append(["(all)"] if names is None else sorted(names))
        publish(self, folder, bundle_id, names)

    monkeypatch.setattr(S3Bundles, "publish", recorded)
    host_a = store_settings(intake_settings, s3, tmp_path / "host-a", "once")
    host_c = store_settings(intake_settings, s3, tmp_path / "host-c", "once")
    rt, run_id, _ = run_pipeline(host_a, host_c)

    # Each collector published its files on its own host; the finish adds the manifest before
    # the note and the archive after it, and sends none of the collectors' files again.
    assert uploads[-2:] == [sorted(bundle.MANIFEST_FILES), [bundle.ARCHIVE]]
    sent = [name for names in uploads for name in names]
    assert len(sent) == len(set(sent)), sent
    assert set(sent) == set(rt.bundles.names(run_id))


def test_a_store_that_refuses_the_bundle_leaves_the_note_saying_where_it_is(
    intake_settings: Settings, s3: S3Server, tmp_path: Path
) -> None:
    host_a = store_settings(intake_settings, s3, tmp_path / "host-a", "refused")
    # A bucket that does not exist: every write is refused (NoSuchBucket).
    refusing = replace(host_a, bundle_store="s3://no-such-bucket-here/x")
    rt, run_id, delivery_id = run_pipeline(refusing, refusing)

    note = evidence_note(tmp_path / "host-a" / "outbox")
    folder = (tmp_path / "host-a" / "bundles" / run_id).resolve()
    assert "Bundle: NOT in the shared bundle store (writing x/" in note
    assert "NoSuchBucket" in note
    assert f"it is on host {socket.gethostname()} in {folder}" in note
    assert (folder / "manifest.json").is_file()  # the evidence is where the note says
    record = rt.deliveries.get(delivery_id)
    assert record is not None and record["bundle_path"] == f"{socket.gethostname()}:{folder}"
    assert "NoSuchBucket" in record["failures"]["bundle_store"]


def test_a_receiver_whose_store_does_not_answer_says_503_after_checking_the_link(
    intake_settings: Settings, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = replace(
        intake_settings,
        bundle_store="s3://bundles-down/x",
        s3_endpoint_url=f"http://127.0.0.1:{port}",
        s3_access_key_id=Secret("id"),
        s3_secret_access_key=Secret("key"),
    )
    client = create_app(down).test_client()
    secret = down.link_secret.reveal()
    expires = int(datetime.now(UTC).timestamp()) + 600
    refused = client.get(f"/bundles/r1/manifest.json?{signed_query('r1', expires, 'wrong')}")
    assert refused.status_code == 403  # the link is checked first: no store call for it
    answer = client.get(f"/bundles/r1/manifest.json?{signed_query('r1', expires, secret)}")
    assert answer.status_code == 503
    assert answer.get_json()["error"] == "the bundle store does not answer; retry"
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_incident_page_and_its_zip_read_the_bundle_from_the_store(
    intake_settings: Settings, s3: S3Server, tmp_path: Path, redis_client
) -> None:
    writer = store_settings(intake_settings, s3, tmp_path / "host-a", "page")
    made = make_incident(Runtime(writer), "PS3PAGE1", datetime.now(UTC))
    folder = tmp_path / "host-a" / "bundles" / made.run_id
    make_bundle_store(writer).publish(folder, made.run_id)  # as finish_run does
    # Another host's receiver: same store, same Redis, its own folder empty.
    reader = store_settings(intake_settings, s3, tmp_path / "host-b", "page")
    client = create_app(reader).test_client()

    page = client.get(made.path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "order router lost its connection to the gateway" in html  # a log tail, from S3
    archive = client.get(made.path.replace("?", "/evidence.zip?", 1))
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.data)) as packed:
        names = set(packed.namelist())
    assert {f"{made.run_id}/manifest.json", f"{made.run_id}/docker/execution-engine.log"} <= names
    assert not (tmp_path / "host-b" / "bundles").exists()
