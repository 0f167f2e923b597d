"""The recording path's own Redis connection: recovers from a stale socket, survives a fork."""

from __future__ import annotations

import os
import socket

import pytest
import redis

from tasks.store.redis_direct import DirectCommands


def test_a_killed_connection_is_replaced_and_the_command_answered(
    redis_client: redis.Redis,
) -> None:
    direct = DirectCommands(redis_client)
    first_id = direct.execute("CLIENT", "ID")
    redis_client.client_kill_filter(_id=str(first_id))  # as when Redis restarts

    assert direct.execute("PING") == b"PONG"  # retried on a new connection
    assert direct.execute("CLIENT", "ID") != first_id


def test_a_server_that_is_not_there_raises_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    direct = DirectCommands(redis.Redis(port=port, socket_connect_timeout=0.5))
    with pytest.raises(redis.ConnectionError):
        direct.execute("PING")


def test_a_forked_child_opens_its_own_connection(redis_client: redis.Redis) -> None:
    direct = DirectCommands(redis_client)
    parent_id = direct.execute("CLIENT", "ID")
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which reports through the pipe
        try:
            os.write(write_end, str(direct.execute("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_id = int(os.read(read_end, 64))
    os.waitpid(child, 0)
    os.close(read_end)

    assert child_id != parent_id
    assert direct.execute("CLIENT", "ID") == parent_id  # the parent's socket was left alone


def test_a_command_about_earlier_writes_is_never_sent_on_a_new_connection(
    redis_client: redis.Redis,
) -> None:
    # WAIT counts the replicas holding this connection's writes: on a new one it would
    # confirm writes it never made, so the receiver would answer 2xx for nothing.
    direct = DirectCommands(redis_client)
    with pytest.raises(redis.ConnectionError, match="the connection that wrote is gone"):
        direct.execute("WAIT", 0, 0, reconnect=False)  # nothing written on it yet
    first_id = direct.execute("CLIENT", "ID")
    assert direct.execute("WAIT", 0, 0, reconnect=False) == 0  # the same connection: sent
    redis_client.client_kill_filter(_id=str(first_id))
    with pytest.raises(redis.ConnectionError):
        direct.execute("WAIT", 0, 0, reconnect=False)  # not retried on a new connection
    assert direct.execute("CLIENT", "ID") != first_id  # other commands reconnect as before
