"""Where bundles are kept: which backend the settings choose, the keys it makes, the local
backend's reads, and the note and links when the shared store holds the bundle or refused it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.evidence.links import bundle_location
from tasks.evidence.shared_bundle import not_in_store
from tasks.gateways.bundle_store import (
    LocalBundles,
    S3Bundles,
    content_type,
    file_key,
    folder_key,
    make_bundle_store,
    object_key,
)
from tasks.notes.voice import Voice
from tasks.settings import Secret, Settings, SettingsError, parse_bundle_store, settings_from_env
from triage.models import Classification, Priority
from triage.policy import builtin

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_no_store_setting_keeps_bundles_in_the_local_folder(tmp_path: Path) -> None:
    store = make_bundle_store(Settings(bundle_dir=tmp_path))
    assert isinstance(store, LocalBundles) and store.root == tmp_path and not store.shared


def test_an_s3_store_setting_chooses_s3_with_its_bucket_prefix_endpoint_and_region() -> None:
    settings = settings_from_env(
        {
            "RESPONDER_BUNDLE_STORE": "s3://eafix-bundles/responder/prod/",
            "RESPONDER_S3_ENDPOINT_URL": "https://minio.internal:9000",
            "RESPONDER_S3_REGION": "eu-west-2",
            "RESPONDER_S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "RESPONDER_S3_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-example",
        }
    )
    store = make_bundle_store(settings)  # no request is made: the client connects when used
    assert isinstance(store, S3Bundles) and store.shared
    assert (store.bucket, store.prefix) == ("eafix-bundles", "responder/prod")
    assert store.client.meta.endpoint_url == "https://minio.internal:9000"
    assert store.client.meta.region_name == "eu-west-2"
    # A server of one host name (MinIO, Ceph, moto) takes the bucket in the path.
    assert store.client.meta.config.s3 == {"addressing_style": "path"}
    credentials = store.client._request_signer._credentials  # boto3 keeps them here
    assert credentials.access_key == "AKIDEXAMPLE"
    assert credentials.secret_key == "wJalrXUtnFEMI-example"


def test_without_keys_of_its_own_s3_takes_the_standard_aws_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMAWSVARS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-aws-vars")
    store = make_bundle_store(Settings(bundle_store="s3://eafix-bundles"))
    assert isinstance(store, S3Bundles) and store.prefix == ""
    assert store.client._request_signer._credentials.access_key == "AKIDFROMAWSVARS"
    assert store.client.meta.config.s3 in (None, {})  # AWS itself: boto3 picks the style


@pytest.mark.parametrize(
    ("value", "bucket", "prefix"),
    [
        ("s3://eafix-bundles", "eafix-bundles", ""),
        ("s3://eafix-bundles/", "eafix-bundles", ""),
        ("s3://eafix.bundles/a/b_c/d-1/", "eafix.bundles", "a/b_c/d-1"),
        ("s3://abc//doubled//slashes", "abc", "doubled/slashes"),
    ],
)
def test_a_store_url_names_a_bucket_and_a_prefix(value: str, bucket: str, prefix: str) -> None:
    assert parse_bundle_store(value) == (bucket, prefix)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("/var/bundles", "expected s3://bucket/prefix"),
        ("gs://eafix-bundles", "expected s3://bucket/prefix"),
        ("s3://", "is not an S3 bucket name"),
        ("s3://Eafix-Bundles", "is not an S3 bucket name"),
        ("s3://ab", "is not an S3 bucket name"),
        ("s3://a..b", "is not an S3 bucket name"),
        ("s3://eafix-bundles/../other", "prefix part '..'"),
        ("s3://eafix-bundles/a b", "prefix part 'a b'"),
        ("s3://eafix-bundles/.hidden", "prefix part '.hidden'"),
    ],
)
def test_a_bad_store_url_is_refused_naming_the_variable(value: str, said: str) -> None:
    with pytest.raises(SettingsError, match="^RESPONDER_BUNDLE_STORE: ") as refused:
        settings_from_env({"RESPONDER_BUNDLE_STORE": value})
    assert said in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("RESPONDER_S3_ENDPOINT_URL", "minio:9000", "not a URL"),
        ("RESPONDER_S3_ENDPOINT_URL", "ftp://minio:9000", "is not one of http:// or https://"),
        ("RESPONDER_S3_ENDPOINT_URL", "http://minio:port", "the port is not a number"),
        ("RESPONDER_S3_REGION", "Frankfurt", "not a region name"),
    ],
)
def test_bad_s3_settings_are_refused_naming_the_variable(
    variable: str, value: str, said: str
) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}: .*{said}"):
        settings_from_env({variable: value})


def test_half_a_key_pair_is_refused_without_showing_it() -> None:
    with pytest.raises(SettingsError, match="set both or neither") as refused:
        settings_from_env({"RESPONDER_S3_SECRET_ACCESS_KEY": "half-of-a-pair-7Qz"})
    assert "half-of-a-pair-7Qz" not in str(refused.value)


def test_the_s3_keys_are_secrets_redacted_everywhere() -> None:
    settings = settings_from_env(
        {"RESPONDER_S3_ACCESS_KEY_ID": "AKIDEXAMPLE", "RESPONDER_S3_SECRET_ACCESS_KEY": "s3cr3t"}
    )
    assert settings.s3_secret_access_key == Secret("s3cr3t")
    assert {"AKIDEXAMPLE", "s3cr3t"} <= set(settings.secrets())
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("prefix", "bundle_id", "name", "key"),
    [
        ("", "r1", "manifest.json", "r1/manifest.json"),
        ("eafix/prod", "r1", "manifest.json", "eafix/prod/r1/manifest.json"),
        ("p", "d-1.2_x", "docker/api.errors.log", "p/d-1.2_x/docker/api.errors.log"),
        ("p", "r1", "bundle.tar.gz", "p/r1/bundle.tar.gz"),
    ],
)  # fmt: skip
def test_keys_are_the_prefix_the_bundle_and_the_file(
    prefix: str, bundle_id: str, name: str, key: str
) -> None:
    assert object_key(prefix, bundle_id, name) == key
    assert key.startswith(folder_key(prefix, bundle_id))


@pytest.mark.parametrize("bundle_id", ["", "a/b", "../r1", ".hidden"])
def test_a_bundle_id_that_is_not_a_folder_name_makes_no_key(bundle_id: str) -> None:
    with pytest.raises(ValueError, match="invalid bundle id"):
        object_key("p", bundle_id, "manifest.json")


@pytest.mark.parametrize(
    "name",
    ["", "/etc/passwd", "../r2/manifest.json", "docker/../../x", "docker/.x.part", "a b.txt",
     "docker\\x.log", "caf\u00e9.log", "x\nmanifest.json"],
)  # fmt: skip
def test_a_file_name_that_is_not_a_plain_relative_path_makes_no_key(name: str) -> None:
    with pytest.raises(ValueError, match="invalid bundle file name"):
        file_key(name)


@pytest.mark.parametrize(
    ("name", "mimetype", "encoding"),
    [
        ("index.html", "text/html", None),
        ("manifest.json", "application/json", None),
        ("prometheus/up.png", "image/png", None),
        ("bundle.tar.gz", "application/x-tar", "gzip"),
        ("docker/api.errors.log", "text/x-log", None),
    ],
)
def test_files_are_served_with_the_type_their_name_says(
    name: str, mimetype: str, encoding: str | None
) -> None:
    found = content_type(name)
    # Some systems do not know .log: it is served as bytes then, never guessed from content.
    assert found in ((mimetype, encoding), ("application/octet-stream", None))
    if not name.endswith(".log"):
        assert found == (mimetype, encoding)


def test_the_local_store_reads_its_own_folder(tmp_path: Path) -> None:
    store = LocalBundles(tmp_path)
    folder = tmp_path / "r1"
    (folder / "docker").mkdir(parents=True)
    (folder / "docker" / "api.log").write_text("first\nsecond\n")
    (folder / ".bundle.tar.gz.part").write_text("partial")
    store.publish(folder, "r1")  # the folder is the store: nothing to copy
    assert store.names("r1") == ["docker/api.log"]
    assert store.tail("r1", "docker/api.log", 7) == b"second\n"
    opened = store.open("r1", "docker/api.log")
    assert opened is not None and b"".join(opened.chunks) == b"first\nsecond\n"
    assert store.open("r1", "docker") is None and store.open("r2", "x.log") is None
    assert store.location("r1") == str(folder.resolve())


def test_without_a_link_secret_the_note_names_the_bundle_in_the_store(tmp_path: Path) -> None:
    local = bundle_location(Settings(bundle_dir=tmp_path), "r1", NOW)
    assert local == f"{(tmp_path / 'r1').resolve()} on the responder host (bundle r1)"
    shared = Settings(bundle_dir=tmp_path, bundle_store="s3://eafix-bundles/prod")
    assert bundle_location(shared, "r1", NOW) == "s3://eafix-bundles/prod/r1/ (bundle r1)"
    with_secret = Settings(bundle_store="s3://eafix-bundles", link_secret=Secret("k"))
    assert "/bundles/r1/?expires=" in bundle_location(with_secret, "r1", NOW)


def test_a_bundle_the_store_refused_is_noted_with_its_host_path_and_why() -> None:
    voice = Voice.of(builtin())
    classification = Classification(Priority.P1, "rule", "why")
    stranded = {"host": "resp-1", "path": "/var/lib/responder/bundles/r1", "why": "AccessDenied"}
    note = voice.evidence(
        classification, "X", [], "https://r/incidents/P1?sig=1", stranded=stranded
    )
    assert (
        "Bundle: NOT in the shared bundle store (AccessDenied); it is on host resp-1 in "
        "/var/lib/responder/bundles/r1, and the incident page cannot show it." in note
    )
    assert "Incident page: https://r/incidents/P1?sig=1" in note
    stored = voice.evidence(classification, "X", [], "https://r/incidents/P1?sig=1")
    assert "NOT in the shared" not in stored and "Incident page: https://r/" in stored


def test_the_finish_uploads_what_the_store_lacks_or_holds_at_another_size(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "api.log").write_text("the second attempt's log")  # rewritten here
    (tmp_path / "redis.txt").write_text("published by its collector")
    (tmp_path / "other-host.txt").write_text("fetched from the store")
    (tmp_path / "refused.txt").write_text("its collector's upload was refused")
    (tmp_path / "manifest.json").write_text("{}")
    in_store = {
        "docker/api.log": len("the first attempt's"),
        "redis.txt": len("published by its collector"),
        "other-host.txt": len("fetched from the store"),
        "manifest.json": 2,  # an earlier finish's: written again all the same
    }
    assert not_in_store(tmp_path, in_store, always=("manifest.json",)) == [
        "docker/api.log",
        "manifest.json",
        "refused.txt",
    ]
