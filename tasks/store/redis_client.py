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

from tasks.store.sentinel_pools import follow_failovers_together

SENTINEL_SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379
# A reply from the primary on a dead socket: a worker blocked in an acknowledgement waits this
# long before it reconnects (10 s held the routine worker 10 s after the cut). kombu's BRPOP
# returns within 1 s when all is well, and no broker command of ours blocks for longer.
SENTINEL_SOCKET_TIMEOUT = 5.0
# A TCP handshake with a primary on the local network; until the Sentinels have promoted a
# replica they name the dead one, and each reconnect attempt pays this (3 s: 3 s each).
SENTINEL_CONNECT_TIMEOUT = 1.0
# Asking a Sentinel for the master is one small reply on the local network. A Sentinel on a
# host that is cut off answers nothing (packets dropped, no RST), and every new connection
# asks the Sentinels in the URL's order, the dead one first: its timeout is paid on each
# reconnect, so it must be short (the 10 s above cost 10 s per reconnect, several in a row).
SENTINEL_ASK_TIMEOUT = 1.0
# kombu 5.7 drops a BRPOP connection whose reply is overdue by brpop_timeout (1 s) plus this,
# checking every this many seconds: a consumer on a half-open socket recovers within about
# 1 + 2 x 2 = 5 s instead of kombu's default 51 s (its ``health_check_interval``, 25). redis-py
# also PINGs a connection idle for longer than this before using it.
BROKER_HEALTH_CHECK_SECONDS = 2


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
    follow_failovers_together()  # this client's pools and the process's others, together
    parsed = parse_sentinel_url(url)
    asking = sentinel_kwargs(sentinel_password)
    sentinel = Sentinel(
        list(parsed.sentinels),
        sentinel_kwargs=asking,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        **options,
    )
    return sentinel.master_for(master)


def sentinel_kwargs(sentinel_password: str = "") -> dict[str, Any]:
    """Return the connection options of a client of the Sentinels themselves (not the master).

    redis-py (and kombu, and Celery's result backend) give a Sentinel client only what this
    says when it is given: without the timeouts a Sentinel whose host is cut off holds a new
    connection until TCP gives up on the SYN (127 s with Linux's tcp_syn_retries 6).
    """
    asking: dict[str, Any] = {
        "socket_timeout": SENTINEL_ASK_TIMEOUT,
        "socket_connect_timeout": SENTINEL_ASK_TIMEOUT,
        "socket_keepalive": True,
    }
    if sentinel_password:
        asking["password"] = sentinel_password
    return asking


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
        # The event loop's BRPOP and pub/sub sockets have no socket timeout: kombu's own
        # health check is what notices that they went silent (see the constant).
        "health_check_interval": BROKER_HEALTH_CHECK_SECONDS,
        "sentinel_kwargs": sentinel_kwargs(sentinel_password),
    }
    return options
