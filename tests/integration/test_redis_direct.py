"""The recording path's own Redis connection: recovers from a stale socket, never doubles work."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import pytest
import redis

from tasks.deliveries import INDEX_KEY, Claim, DeliveryStore, new_delivery_id
from tasks.enqueue import TaskMessage
from tasks.redis_direct import DirectCommands

QUEUE = "responder:test-direct-queue"  # under responder:, so the fixture clears it


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


def test_recording_the_same_delivery_twice_returns_the_first_outcome_and_does_nothing_again(
    redis_client: redis.Redis,
) -> None:
    # What a retried call does when the first reply was lost: the script ran already.
    store = DeliveryStore(redis_client)
    now = datetime.now(UTC)
    delivery_id = new_delivery_id(now)
    message = TaskMessage(QUEUE, '{"task": "start"}', "task-1", "start")

    def record() -> tuple[bool, frozenset[str], str]:
        recorded = store.record(
            delivery_id=delivery_id,
            source="alertmanager",
            raw_body=b"{}",
            headers={},
            dedup_keys=[("fingerprint:firing:t0", "start")],
            fields={},
            now=now,
            claim=Claim.ALERTMANAGER,
            incident="incident-direct",
            messages=[message],
        )
        return recorded.started, recorded.fresh_keys, recorded.pipeline

    first = record()
    again = record()

    assert first == (True, frozenset({"fingerprint:firing:t0"}), "queued")
    assert again == first
    assert redis_client.llen(QUEUE) == 1
    assert redis_client.zcard(INDEX_KEY) == 1
