"""Where evidence bundles live: a local directory (one host) or an S3-compatible object store
that every host reads (docs/bundles.md).

Writers build a bundle in a local folder (`RESPONDER_BUNDLE_DIR`) and publish it; the receiver
reads it back from the store, whichever host wrote it. With the local backend the folder is the
store, and publishing does nothing.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from tasks.settings import Settings, parse_bundle_store

CHUNK_BYTES = 64 * 1024
# A file name of the bundle: what collectors, the manifest and the archive write (checked in
# store_files), never "..", never absolute, never hidden (".x.part" is a write in progress).
_NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,254}\Z")


def bundle_path(root: Path, bundle_id: str) -> Path:
    """Return the folder of bundle `bundle_id` under `root`."""
    if not bundle_id or "/" in bundle_id or bundle_id.startswith("."):
        raise ValueError(f"invalid bundle id {bundle_id!r}")
    return root / bundle_id


class BundleStoreError(Exception):
    """The store refused a read or write; the message says why, and holds no secret."""


def file_key(name: str) -> str:
    """Return `name` as the checked relative path of a bundle file; ValueError if it escapes."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or not all(_NAME_PART.match(p) for p in path.parts):
        raise ValueError(f"invalid bundle file name {name!r}")
    return str(path)


def folder_key(prefix: str, bundle_id: str) -> str:
    """Return the S3 key under which bundle `bundle_id`'s files are kept (ending in "/").

    The bundle id passes the same check as a local folder's (bundle_path).
    """
    folder = bundle_path(Path(), bundle_id).name
    return f"{prefix}/{folder}/" if prefix else f"{folder}/"


def object_key(prefix: str, bundle_id: str, name: str) -> str:
    """Return the S3 key of bundle `bundle_id`'s file `name`: no key is made of unchecked text."""
    return folder_key(prefix, bundle_id) + file_key(name)


def content_type(name: str) -> tuple[str, str | None]:
    """Return the mimetype and content encoding the receiver serves file `name` with."""
    mimetype, encoding = mimetypes.guess_type(name)
    return mimetype or "application/octet-stream", encoding


@dataclass
class StoredFile:
    """One file of a bundle, opened for streaming: its chunks are read as they are sent."""

    chunks: Iterator[bytes]
    size: int


class BundleStore(Protocol):
    """What writers and the receiver need of wherever bundles are kept."""

    shared: bool  # True when every host reads it (the receiver never reads the local folder)

    def location(self, bundle_id: str) -> str:
        """Return where the bundle is kept, for a person and the delivery record."""
        ...

    def publish(self, folder: Path, bundle_id: str, names: Iterable[str] | None = None) -> None:
        """Copy the named files (all when None) of a local folder into the store."""
        ...

    def fetch(self, bundle_id: str, folder: Path) -> dict[str, int]:
        """Copy into `folder` the bundle's files it lacks (other hosts' collectors); return the
        size of every file the store holds of the bundle, by name."""
        ...

    def open(self, bundle_id: str, name: str) -> StoredFile | None:
        """Open one file for streaming; None when the bundle has no such file."""
        ...

    def tail(self, bundle_id: str, name: str, limit: int) -> bytes | None:
        """Return at most the last `limit` bytes of a file; None when there is none."""
        ...

    def names(self, bundle_id: str) -> list[str]:
        """Return the bundle's file names, sorted; [] when there is no such bundle."""
        ...

    def prune(self, cutoff: float) -> int:
        """Delete bundles last written before `cutoff` (Unix time); return how many went."""
        ...


def _file_chunks(path: Path) -> Iterator[bytes]:
    """Yield a file's bytes in chunks, closing it when done or abandoned."""
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


class LocalBundles:
    """Bundles in one directory of this host: the single-host default."""

    shared = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, bundle_id: str, name: str) -> Path | None:
        """Return the path of a stored file, or None when it is not one."""
        path = bundle_path(self.root, bundle_id) / file_key(name)
        return path if path.is_file() else None

    def location(self, bundle_id: str) -> str:
        """Return the bundle folder's absolute path."""
        return str(bundle_path(self.root, bundle_id).resolve())

    def publish(self, folder: Path, bundle_id: str, names: Iterable[str] | None = None) -> None:
        """Copy files into the store's folder; nothing to do when `folder` is that folder."""
        target = bundle_path(self.root, bundle_id)
        if folder.resolve() == target.resolve():
            return
        for name in local_names(folder) if names is None else names:
            (target / file_key(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, target / name)

    def fetch(self, bundle_id: str, folder: Path) -> dict[str, int]:
        """Copy missing files from the store's folder (none when it is `folder` itself); return
        the sizes of the files it holds."""
        source = bundle_path(self.root, bundle_id)
        held = {name: (source / name).stat().st_size for name in local_names(source)}
        if folder.resolve() == source.resolve():
            return held
        for name in held:
            if not (folder / name).exists():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / name, folder / name)
        return held

    def open(self, bundle_id: str, name: str) -> StoredFile | None:
        """Open a file of the bundle folder."""
        path = self._file(bundle_id, name)
        return None if path is None else StoredFile(_file_chunks(path), path.stat().st_size)

    def tail(self, bundle_id: str, name: str, limit: int) -> bytes | None:
        """Return the end of a file of the bundle folder."""
        path = self._file(bundle_id, name)
        if path is None:
            return None
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read()

    def names(self, bundle_id: str) -> list[str]:
        """Return the bundle folder's files."""
        return local_names(bundle_path(self.root, bundle_id))

    def prune(self, cutoff: float) -> int:
        """Leave pruning to bundle.prune over RESPONDER_BUNDLE_DIR, which is this store."""
        return 0


def local_names(folder: Path) -> list[str]:
    """Return the relative names of a folder's files, leaving out partial (hidden) writes."""
    if not folder.is_dir():
        return []
    names = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not any(p.startswith(".") for p in PurePosixPath(relative).parts):
            names.append(relative)
    return names


class S3Bundles:
    """Bundles in an S3-compatible bucket, under a prefix: every host reads the same."""

    shared = True

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def location(self, bundle_id: str) -> str:
        """Return the bundle's s3:// URL."""
        return f"s3://{self.bucket}/{folder_key(self.prefix, bundle_id)}"

    def publish(self, folder: Path, bundle_id: str, names: Iterable[str] | None = None) -> None:
        """Upload files of `folder` (all when None) under the bundle's key.

        A name no key may be made of is not uploaded; the others are, then the error names it.
        """
        refused = []
        for name in local_names(folder) if names is None else names:
            try:
                key = object_key(self.prefix, bundle_id, name)
            except ValueError:
                refused.append(name)
                continue
            mimetype, _ = content_type(name)
            with _store_errors(f"writing {key}"):
                self.client.upload_file(
                    str(folder / name), self.bucket, key, ExtraArgs={"ContentType": mimetype}
                )
        if refused:
            raise BundleStoreError(f"file names not fit for a key, left out: {refused!r}")

    def fetch(self, bundle_id: str, folder: Path) -> dict[str, int]:
        """Download the bundle's files that `folder` lacks; return the sizes the store holds."""
        held = self._sizes(bundle_id)
        for name in sorted(held):
            if (folder / name).exists():
                continue
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            key = object_key(self.prefix, bundle_id, name)
            with _store_errors(f"reading {key}"):
                self.client.download_file(self.bucket, key, str(folder / name))
        return held

    def open(self, bundle_id: str, name: str) -> StoredFile | None:
        """Open an object for streaming; its body is read as the response is sent."""
        key = object_key(self.prefix, bundle_id, name)
        with _store_errors(f"reading {key}"):
            answer = self._get(key)
        if answer is None:
            return None
        body = answer["Body"]
        return StoredFile(_body_chunks(body), int(answer["ContentLength"]))

    def tail(self, bundle_id: str, name: str, limit: int) -> bytes | None:
        """Return the end of an object, asking S3 for that range only."""
        key = object_key(self.prefix, bundle_id, name)
        with _store_errors(f"reading {key}"):
            answer = self._get(key, Range=f"bytes=-{limit}")
            if answer is None:
                return None
            if answer == {}:  # an empty object has no range to give
                return b""
            with answer["Body"] as body:
                return bytes(body.read())

    def _get(self, key: str, **options: str) -> dict[str, Any] | None:
        """Return get_object's answer; None when there is no such key, {} on an empty range."""
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.get_object(Bucket=self.bucket, Key=key, **options))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                return None
            if code == "InvalidRange":
                return {}
            raise

    def names(self, bundle_id: str) -> list[str]:
        """List the bundle's objects, as names relative to its key."""
        return sorted(self._sizes(bundle_id))

    def _sizes(self, bundle_id: str) -> dict[str, int]:
        """Return the size of each of the bundle's objects, by name relative to its key."""
        folder = folder_key(self.prefix, bundle_id)
        return {key[len(folder) :]: size for key, _, size in self._objects(folder)}

    def _objects(self, prefix: str) -> Iterator[tuple[str, float, int]]:
        """Yield (key, last modified as Unix time, size) of every object under `prefix`."""
        with _store_errors(f"listing {prefix or 'the bucket'}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"].timestamp(), int(item["Size"])

    def prune(self, cutoff: float) -> int:
        """Delete every bundle whose newest object was written before `cutoff`."""
        root = f"{self.prefix}/" if self.prefix else ""
        newest: dict[str, float] = {}
        keys: dict[str, list[str]] = {}
        for key, modified, _ in self._objects(root):
            bundle_id = key[len(root) :].split("/", 1)[0]
            newest[bundle_id] = max(newest.get(bundle_id, 0.0), modified)
            keys.setdefault(bundle_id, []).append(key)
        old = [bundle_id for bundle_id, modified in newest.items() if modified < cutoff]
        doomed = [key for bundle_id in old for key in keys[bundle_id]]
        for start in range(0, len(doomed), 1000):  # DeleteObjects takes 1,000 keys at most
            batch = [{"Key": key} for key in doomed[start : start + 1000]]
            with _store_errors("deleting old bundles"):
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
        return len(old)


def _body_chunks(body: Any) -> Iterator[bytes]:
    """Yield an S3 body's bytes in chunks, closing the connection when done or abandoned."""
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()


class _store_errors:
    """Turn boto3's and the disk's errors into BundleStoreError saying what was being done."""

    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> bool:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        if exc is None or not isinstance(exc, BotoCoreError | ClientError | Boto3Error | OSError):
            return False
        raise BundleStoreError(f"{self.doing}: {store_reason(exc)}") from exc


def store_reason(exc: BaseException) -> str:
    """Return a short reason for a store error: S3's error code and message, or the class."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    # botocore's messages name the endpoint and operation, never the credentials.
    return f"{type(exc).__name__}: {exc}"


def make_bundle_store(settings: Settings) -> BundleStore:
    """Return the store settings name: S3 for an s3:// RESPONDER_BUNDLE_STORE, else the folder.

    boto3 is imported here, not at import time, and the client connects on its first call.
    """
    if not settings.bundle_store:
        return LocalBundles(settings.bundle_dir)
    bucket, prefix = parse_bundle_store(settings.bundle_store)
    client = _s3_client(
        settings.s3_endpoint_url or None,
        settings.s3_access_key_id.reveal() or None,
        settings.s3_secret_access_key.reveal() or None,
        settings.s3_region or None,
        os.getpid(),
    )
    return S3Bundles(client, bucket, prefix)


# One client per address and key in a process: making one reads botocore's service models,
# about 0.1 s, and a client is safe to share between threads. Keyed on the process too: a
# client made before a fork keeps its connections, which a pool child must not share.
@lru_cache(maxsize=8)
def _s3_client(
    endpoint: str | None, key_id: str | None, secret: str | None, region: str | None, pid: int
) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region
    )
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        # MinIO, Ceph and test servers answer on one host name: bucket in the path, not the host.
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return session.client("s3", endpoint_url=endpoint, config=config)
