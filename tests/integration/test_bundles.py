"""Bundles on disk and over HTTP: schema-valid manifest, HTML view, archive, caps, signed links."""

from __future__ import annotations

import json
import tarfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from flask.testing import FlaskClient

from collectors.contract import Evidence, Status
from tasks.evidence import bundle
from tasks.evidence.links import bundle_link
from tasks.notes.voice import Voice
from tasks.settings import Settings
from triage.policy import builtin
from webhooks import create_app

SCHEMA = json.loads((Path(bundle.__file__).parent / "bundle_manifest.schema.json").read_text())


def validate_manifest(manifest: dict) -> None:
    """Fail unless `manifest` follows the versioned bundle schema shipped with the code."""
    jsonschema.validate(
        manifest, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def make_bundle(root: Path, bundle_id: str = "b-20261127-r1") -> Path:
    folder = root / bundle_id
    ok = Evidence(
        "redis", Status.OK, "PONG", files={"redis/info.json": "{}"}, duration_seconds=0.01
    )
    failed = Evidence(
        "docker", Status.FAILED, "risk-manager unhealthy",
        files={"docker/risk-manager.errors.log": "10:01 ERROR <script>x</script>\n"},
        duration_seconds=0.2,
    )  # fmt: skip
    entries = []
    for evidence in (ok, failed):
        stored = bundle.store_files(folder, evidence.files, lambda t: t)
        entries.append(bundle.manifest_entry(evidence, stored, lambda t: t))
    header = {
        "bundle_id": bundle_id,
        "title": "RiskManagerDown",
        "classification": {"priority": "P0", "rule": "risk-management-failure", "reason": "r"},
        "deadlines": {"acknowledge": "2026-11-27T12:05:00+00:00"},
    }
    voice = Voice.of(builtin())
    validate_manifest(
        bundle.write_manifest(folder, header, entries, datetime.now(UTC), voice.bundle_index)
    )
    bundle.archive(folder)
    return folder


def test_the_bundle_holds_manifest_summary_html_and_archive(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path)
    page = (folder / "index.html").read_text()
    assert page.index("docker") < page.index("redis")  # failures first
    assert "&lt;script&gt;" in page and "<script>x" not in page  # logs folded and escaped
    assert "<details><summary>docker/risk-manager.errors.log</summary>" in page
    with tarfile.open(folder / bundle.ARCHIVE) as tar:
        names = set(tar.getnames())
    assert {f"{folder.name}/manifest.json", f"{folder.name}/index.html",
            f"{folder.name}/docker/risk-manager.errors.log"} <= names  # fmt: skip


def test_size_caps_cut_text_and_leave_out_what_does_not_fit(tmp_path: Path) -> None:
    big = "".join(f"line {n}\n" for n in range(300_000))
    stored = bundle.store_files(tmp_path, {"a.log": big, "b.png": b"x" * 2_000_000}, lambda t: t)
    assert stored == ["a.log"]
    text = (tmp_path / "a.log").read_text()
    assert len(text.encode()) <= bundle.FILE_CAP_BYTES
    assert text.endswith("more bytes]\n") and text.splitlines()[-2].startswith("line ")
    assert (
        (tmp_path / "omitted.txt").read_text().startswith("b.png: 2000000 bytes, over the size cap")
    )


def test_old_bundles_are_pruned(tmp_path: Path) -> None:
    make_bundle(tmp_path, "old")
    assert bundle.prune(tmp_path, cutoff=datetime.now(UTC).timestamp() + 10) == 1
    assert not (tmp_path / "old").exists()


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> tuple[FlaskClient, str]:
    make_bundle(tmp_path)
    app = create_app(replace(settings, bundle_dir=tmp_path))
    expires = int(datetime.now(UTC).timestamp()) + 600
    link = bundle_link("http://x", "b-20261127-r1", expires, settings.link_secret.reveal())
    parts = urlsplit(link)
    return app.test_client(), f"{parts.path}?{parts.query}"


def test_a_signed_link_serves_the_page_and_its_files(served) -> None:
    client, path = served
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    query = urlsplit(path).query
    assert f'href="./manifest.json?{query}"' in html  # the page's links carry the signature
    # Files are streamed from disk: close each response, as a server does.
    with client.get(path.replace("/?", "/manifest.json?")) as manifest:
        assert manifest.status_code == 200 and manifest.get_json()["title"] == "RiskManagerDown"
    with client.get(path.replace("/?", f"/{bundle.ARCHIVE}?")) as archive:
        assert archive.status_code == 200 and archive.data[:2] == b"\x1f\x8b"


@pytest.mark.parametrize(
    ("mangle", "status", "error"),
    [
        (lambda p: p.replace("sig=", "sig=0"), 403, "signature does not match"),
        (lambda p: p.split("?")[0], 403, "carries no signature"),
        (lambda p: p.replace("b-20261127-r1", "b-20261127-r2"), 403, "signature does not match"),
        (lambda p: p.replace("/?", "/nope.txt?"), 404, None),
        (lambda p: p.replace("/?", "/..%2f..%2fetc%2fpasswd?"), 404, None),
    ],
)
def test_tampered_links_and_escapes_are_refused(served, mangle, status, error) -> None:
    client, path = served
    answer = client.get(mangle(path))
    assert answer.status_code == status
    if error:
        assert error in answer.get_json()["error"]


def test_an_expired_link_is_403(settings: Settings, tmp_path: Path) -> None:
    make_bundle(tmp_path)
    client = create_app(replace(settings, bundle_dir=tmp_path)).test_client()
    link = bundle_link("http://x", "b-20261127-r1", 1_000_000, settings.link_secret.reveal())
    answer = client.get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert answer.status_code == 403 and answer.get_json()["error"] == "the link has expired"
    assert parse_qs(urlsplit(link).query)["expires"] == ["1000000"]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda p: p,  # the HTML view
        lambda p: p.replace("/?", "/manifest.json?"),  # a file of the bundle
        lambda p: p.replace("sig=", "sig=0"),  # a refusal
    ],
    ids=["page", "file", "refusal"],
)
def test_every_bundle_answer_forbids_scripts_sniffing_framing_and_referrers(served, mangle) -> None:
    client, path = served
    with client.get(mangle(path)) as answer:
        headers = answer.headers
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # so no script runs: default-src 'none' covers it
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
