"""Work that a dead worker held comes back in seconds, and no 2xx delivery is left behind.

Celery's Redis transport keeps each message a worker took in its `unacked` hash until the task
is acknowledged, and gives the messages of a worker that died back only after the visibility
timeout (an hour). Here every worker writes, every few seconds, which of those messages it
holds (a heartbeat with a short expiry); a beat task gives back at once any message that no
living worker holds, as kombu itself would after the timeout. Separately, a delivery whose
pipeline stayed `queued` or `running` past a lease with no message anywhere behind it is
queued again. Once-markers keep every effect single either way.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps, loads

from tasks.store import worker_marks
from tasks.store.deliveries import DELIVERY_ID, pipelines_received_between
from tasks.store.sentinel_pools import check_master

log = logging.getLogger(__name__)

# kombu's Redis transport keeps a message a worker took in a hash, delivery tag -> [message,
# exchange, routing key], and when it was delivered in a sorted set. Their names are transport
# options kombu documents (`unacked_key`, `unacked_index_key`), read here from its Channel so
# that a new default is followed; the layout is private, and the contract test
# (tests/integration/test_kombu_contract.py) fails the day the installed kombu changes it.
# The responder sets neither option nor `global_keyprefix`: the class defaults are the keys.
UNACKED_KEY: str = kombu_redis.Channel.unacked_key
UNACKED_INDEX_KEY: str = kombu_redis.Channel.unacked_index_key
HEARTBEAT_SECONDS = 2.0
# A worker silent this long is gone: seven beats in a row failed, not one slow Redis reply.
HEARTBEAT_TTL_SECONDS = 15
# A message delivered less than this ago may not be in its worker's heartbeat yet (five
# beats; the clocks of the worker that took it and of the one reclaiming may differ a little).
GRACE_SECONDS = 10


class HeldMessages:
    """The delivery tags one worker process holds, published as its heartbeat."""

    def __init__(self, client: redis.Redis, hostname: str) -> None:
        self.redis = client
        self.key = worker_marks.worker_key(hostname)
        self._tags: set[str] = set()
        self._lock = threading.Lock()

    def received(self, tag: str) -> None:
        """Note a message the worker took (including ones it keeps for a countdown)."""
        with self._lock:
            self._tags.add(tag)

    def forget(self) -> None:
        """Stop claiming every message taken so far: the broker connection they came on is gone.

        A message can only be acknowledged on the connection that delivered it. After a
        reconnect its ack fails (Celery logs "Couldn't ack"), so a heartbeat still listing it
        would keep `recover` from giving it back until kombu's visibility timeout (an hour).
        """
        with self._lock:
            self._tags.clear()

    def beat(self) -> None:
        """Publish the tags still unacknowledged; forget the rest (their tasks are done)."""
        with self._lock:
            tags = list(self._tags)
        if tags:
            with self.redis.pipeline(transaction=False) as pipe:
                for tag in tags:
                    pipe.hexists(UNACKED_KEY, tag)
                still = pipe.execute()
            done = {tag for tag, held in zip(tags, still, strict=True) if not held}
            with self._lock:
                self._tags -= done
            tags = [tag for tag in tags if tag not in done]
        self.redis.set(self.key, json.dumps(tags), ex=HEARTBEAT_TTL_SECONDS)

    def run(self) -> None:
        """Beat every few seconds; a failed beat is logged and tried again."""
        while True:
            try:
                # The worker's main process (the consumer's acks, the BRPOPs) leaves a replaced
                # primary here, before its event loop meets an idle connection to it.
                check_master(self.redis)
                self.beat()
            except redis.RedisError as exc:
                log.warning("worker heartbeat failed: %s", type(exc).__name__)
            time.sleep(HEARTBEAT_SECONDS)

    def start(self) -> None:
        """Beat in a daemon thread, for as long as the process lives."""
        threading.Thread(target=self.run, name="responder-heartbeat", daemon=True).start()


_current: HeldMessages | None = None  # this worker process's, once it is ready


def hold(held: HeldMessages) -> None:
    """Make `held` this process's heartbeat: the one a broker reconnect makes forget."""
    global _current
    _current = held


def forget_held() -> None:
    """Forget what this process's heartbeat claims (called on each broker connection)."""
    if _current is not None:
        _current.forget()


def live_tags(client: redis.Redis) -> set[str]:
    """Return the delivery tags that living workers say they hold."""
    return worker_marks.held_tags(client)


def reclaim_orphans(client: redis.Redis, now: float) -> list[str]:
    """Give back every unacknowledged message no living worker holds; return the queues."""
    held = live_tags(client)
    old = client.zrangebyscore(UNACKED_INDEX_KEY, "-inf", now - GRACE_SECONDS)
    returned = []
    for raw_tag in old:
        tag = raw_tag.decode()
        if tag in held:
            continue
        if (queue := _restore(client, tag)) is not None:
            returned.append(queue)
    if returned:
        by_queue = ", ".join(f"{n} to {queue}" for queue, n in Counter(returned).items())
        log.warning("gave back %d task(s) no living worker held: %s", len(returned), by_queue)
    return returned


def _restore(client: redis.Redis, tag: str) -> str | None:
    """Move one message from the unacked hash back to the front of its queue, atomically."""
    restored: list[str] = []

    def move(pipe: Any) -> None:
        raw = pipe.hget(UNACKED_KEY, tag)
        pipe.multi()
        pipe.zrem(UNACKED_INDEX_KEY, tag)
        pipe.hdel(UNACKED_KEY, tag)
        if raw:
            # The routing key is the queue's name: each queue is bound by its own name
            # (tasks.celery_app), as kombu's own restore would find through the exchange.
            message, _exchange, queue = loads(raw)
            message.get("headers", {})["redelivered"] = True
            message.get("properties", {}).get("delivery_info", {})["redelivered"] = True
            pipe.rpush(queue, dumps(message))  # BRPOP takes from the right: next in line
            restored.append(queue)

    client.transaction(move, UNACKED_KEY)
    return restored[0] if restored else None


def referenced_deliveries(client: redis.Redis, queues: Iterable[str]) -> set[bytes]:
    """Return the delivery ids any waiting or held task message names."""
    found: set[bytes] = set()
    for queue in queues:
        start = 0
        while batch := client.lrange(queue, start, start + 999):
            for message in batch:
                found.update(m.group(0) for m in DELIVERY_ID.finditer(message))
            start += len(batch)
    for _, value in client.hscan_iter(UNACKED_KEY):
        found.update(m.group(0) for m in DELIVERY_ID.finditer(value))
    return found


def stalled_deliveries(
    client: redis.Redis, now: float, lease_seconds: float, horizon_seconds: float
) -> list[tuple[str, str]]:
    """Return (delivery id, pipeline) of deliveries still queued or running past the lease."""
    received = pipelines_received_between(client, now - horizon_seconds, now - lease_seconds)
    return [(delivery_id, p) for delivery_id, p in received if p in ("queued", "running")]
