"""The contract tasks/recovery.py holds with the installed kombu's Redis transport.

Recovery gives a dead worker's messages back by reading the transport's unacknowledged-message
hash and index: private layout, not an API. These tests take a message through kombu itself,
against the real Redis, and fail the day kombu keeps it anywhere or any way else.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis
from kombu.utils.json import loads

from tasks import recovery
from tasks.celery_app import make_celery
from tasks.settings import Settings

pytestmark = pytest.mark.integration

QUEUE = "responder-kombu-contract"


@pytest.fixture
def clean(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    keys = (QUEUE, recovery.UNACKED_KEY, recovery.UNACKED_INDEX_KEY)
    redis_client.delete(*keys)
    yield redis_client
    redis_client.delete(*keys)


def test_recovery_reads_the_keys_kombu_documents_as_its_unacked_transport_options() -> None:
    documented = kombu_redis.__doc__ or ""
    assert "``unacked_key``" in documented and "``unacked_index_key``" in documented
    assert recovery.UNACKED_KEY == kombu_redis.Channel.unacked_key
    assert recovery.UNACKED_INDEX_KEY == kombu_redis.Channel.unacked_index_key


def test_the_responder_leaves_kombus_unacked_keys_at_their_defaults(settings: Settings) -> None:
    options = make_celery(settings).conf.broker_transport_options
    assert not {"unacked_key", "unacked_index_key", "global_keyprefix"} & set(options)


def test_a_message_taken_and_not_acknowledged_is_where_recovery_looks_and_comes_back_from_it(
    clean: redis.Redis, redis_url: str
) -> None:
    queue = Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE)
    with Connection(redis_url) as producing:
        producing.Producer().publish(
            {"delivery": "contract"}, exchange=queue.exchange, routing_key=QUEUE,
            declare=[queue], serializer="json",
        )  # fmt: skip
    holder = Connection(redis_url)  # the worker that will "die" holding the message
    taken = queue(holder.channel()).get(no_ack=False)
    assert taken is not None and taken.payload == {"delivery": "contract"}
    tag = taken.delivery_tag

    # Where recovery looks: the hash holds [message, exchange, routing key] under the tag ...
    raw = clean.hget(recovery.UNACKED_KEY, tag)
    assert raw is not None, "kombu no longer keeps unacknowledged messages in this hash"
    message, exchange, routing_key = loads(raw)
    assert (exchange, routing_key) == (QUEUE, QUEUE)
    assert isinstance(message, dict) and "body" in message and "properties" in message
    # ... and the index scores it by when it was delivered (seconds since the epoch).
    delivered = clean.zscore(recovery.UNACKED_INDEX_KEY, tag)
    assert delivered is not None and abs(delivered - time.time()) < 3600

    # No living worker names the tag: recovery gives it back, kombu delivers it again.
    assert recovery.reclaim_orphans(clean, time.time() + recovery.GRACE_SECONDS + 1) == [QUEUE]
    assert clean.hlen(recovery.UNACKED_KEY) == 0
    with Connection(redis_url) as consuming:
        again = queue(consuming.channel()).get(no_ack=False)
        assert again is not None and again.payload == {"delivery": "contract"}
        assert again.delivery_info.get("redelivered") is True
        again.ack()
    holder.release()  # kombu restores what a closing channel held: nothing is left to restore
    assert clean.llen(QUEUE) == 0
    assert clean.hlen(recovery.UNACKED_KEY) == 0
