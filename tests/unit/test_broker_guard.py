"""The workaround that keeps a worker up across a broker restart (tasks/broker_guard.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis
from kombu import Connection

from tasks.broker_guard import guard_detached_channels


def detached_channel() -> SimpleNamespace:
    """Return what `_connparams` sees on a channel whose transport collect() detached.

    Only its transport, not a whole channel: creating one connects, and nothing listens here.
    """
    connection = Connection("redis://127.0.0.1:1/0")
    transport = connection.transport
    connection._do_close_transport()  # what Connection.collect() does after closing
    assert transport.client is None
    return SimpleNamespace(connection=transport)


def test_kombu_still_reads_the_host_of_a_detached_transport_so_the_guard_is_needed() -> None:
    # When this fails, kombu handles a detached channel itself: remove tasks/broker_guard.py.
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.Channel._connparams
    unwrapped = getattr(original, "__wrapped__", original)
    with pytest.raises(AttributeError, match="hostname"):
        unwrapped(detached_channel())


def test_a_detached_channel_raises_a_connection_error_every_caller_handles() -> None:
    guard_detached_channels()
    guard_detached_channels()  # idempotent: one wrapper, not two
    from kombu.transport import redis as kombu_redis

    with pytest.raises(redis.ConnectionError, match="was closed"):
        kombu_redis.Channel._connparams(detached_channel())
    connection = Connection("redis://127.0.0.1:1/0")
    assert isinstance(redis.ConnectionError(), connection.connection_errors)
