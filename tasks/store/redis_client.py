"""Build every client of the responder's own Redis: a plain `redis://` URL, or Sentinel.

`sentinel://h1:26379;sentinel://h2:26379;sentinel://h3:26379/0` is Celery's (kombu's) form:
each address is one Sentinel, the database comes last, and a password in the first address
that carries one is the master's. The monitored master's name is a setting of its own
(`RESPONDER_REDIS_SENTINEL_MASTER`), as in kombu's `master_name` transport option. A client
built here asks the Sentinels for the master on every new connection, so it follows a
failover by itself: redis-py turns the old master's READONLY reply into a ConnectionError and
connects again (`redis.sentinel.SentinelManagedConnection`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_SOCKET_TIMEOUT = 10.0  # seconds; kombu's BRPOP returns within 1 s when all is well
SENTINEL_CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class SentinelUrl:
    """The parts of a `sentinel://` URL: the Sentinels' addresses, the database, the master's
    credentials (None: none given)."""

    sentinels: tuple[tuple[str, int], ...]
    db: int
    username: str | None
    password: str | None


def is_sentinel_url(url: str) -> bool:
    """Return True when `url` names Sentinels (`sentinel://...`) rather than one Redis."""
    return url.split("://", 1)[0].lower() == SENTINEL_SCHEME


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Return the parts of a `sentinel://` URL; ValueError naming the bad address by position.

    The messages never repeat the value: an address may carry the master's password.
    """
    addresses = [part.strip() for part in url.split(";")]
    sentinels: list[tuple[str, int]] = []
    username = password = None
    db = 0
    for number, address in enumerate(addresses, start=1):
        where = f"Sentinel address {number} of {len(addresses)}"
        if not address:
            raise ValueError(f"{where} is empty (addresses are separated by ';')")
        if "://" not in address or not is_sentinel_url(address):
            raise ValueError(f"{where} does not start with sentinel://")
        parts = urlsplit(address)
        try:
            port = parts.port or DEFAULT_SENTINEL_PORT
        except ValueError:
            raise ValueError(f"{where}: the port is not a number from 0 to 65535") from None
        if not parts.hostname:
            raise ValueError(f"{where}: no host after sentinel://")
        path = parts.path.strip("/")
        if path:
            if number != len(addresses):
                raise ValueError(f"{where}: only the last address may name the database")
            if not path.isdigit():
                raise ValueError(
                    f"{where}: the database is not a number (sentinel://host:port/NUMBER)"
                )
            db = int(path)
        if password is None and parts.password is not None:
            username = unquote(parts.username) if parts.username else None
            password = unquote(parts.password)
        sentinels.append((parts.hostname, port))
    return SentinelUrl(tuple(sentinels), db, username, password)


def connect(
    url: str, *, master: str = "", sentinel_password: str = "", **options: Any
) -> redis.Redis:
    """Return a client of the responder's Redis at `url`; through Sentinel for `sentinel://`.

    `options` are redis-py connection options (timeouts); they apply to the Sentinels too.
    """
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    if not master:
        raise ValueError("a sentinel:// URL needs the master's name")
    parsed = parse_sentinel_url(url)
    asking = {k: v for k, v in options.items() if k.startswith("socket_")}
    if sentinel_password:
        asking["password"] = sentinel_password
    sentinel = Sentinel(
        list(parsed.sentinels),
        sentinel_kwargs=asking,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        **options,
    )
    return sentinel.master_for(master)


def celery_transport_options(url: str, master: str, sentinel_password: str = "") -> dict[str, Any]:
    """Return kombu's Sentinel transport options for `url` (none for a plain Redis URL)."""
    if not is_sentinel_url(url):
        return {}
    options: dict[str, Any] = {
        "master_name": master,
        # A primary whose host drops off the network sends no RST: without these a consumer
        # blocked on its socket waits forever (the cross-host bench saw the survivor's workers
        # stop consuming). Timeouts turn the silence into a ConnectionError and a reconnect,
        # which asks the Sentinels for the new primary.
        "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
        "socket_connect_timeout": SENTINEL_CONNECT_TIMEOUT,
        "socket_keepalive": True,
    }
    if sentinel_password:
        options["sentinel_kwargs"] = {"password": sentinel_password}
    return options
