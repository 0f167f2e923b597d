"""Keep a worker alive across a Redis restart or failover: a workaround for a Celery 5.7 crash.

The crash (`Unrecoverable error: AttributeError("'NoneType' object has no attribute
'hostname'")`, the worker exits) needs a worker holding a message it has not acknowledged
(a task waiting for its countdown, or running with acks_late) when the broker goes away:

1. Celery 5.7's `Consumer.on_connection_error_after_connected` calls `connection.collect()`
   and then `connection.close()` (celery/celery#10242, "prevent graceful shutdown regression
   in connection recovery", first released in 5.7.0).
2. `collect()` closes the channel, which fails half way in kombu's Redis `Channel.close` (its
   pending BRPOP read raises a connection error before the channel is marked closed), then
   detaches the transport from the connection: `transport.client = None`.
3. `close()` closes the same channel again. Now it reaches `restore_unacked`, which needs a
   connection pool, and kombu's `Channel._connparams` reads `self.connection.client.hostname`
   from the detached transport: AttributeError. `ignore_errors` only swallows connection and
   channel errors, so it reaches the worker, which exits.

A channel whose transport is detached cannot reach Redis: that is a connection error, and
raising one is what the first close met too. Every caller already handles it (`ignore_errors`,
an ack after the loss is logged "Couldn't ack" and left to `recover`). Checked against
celery 5.7.0 / kombu 5.7.0; `tests/unit/test_broker_guard.py` fails the day kombu stops
needing it, and `tests/integration/test_broker_restart.py` keeps a worker up across a restart.
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_GUARDED = "_responder_detached_guard"


def guard_detached_channels() -> None:
    """Make a kombu Redis channel whose connection was closed raise ConnectionError, not crash."""
    original = kombu_redis.Channel._connparams
    if getattr(original, _GUARDED, False):
        return

    @functools.wraps(original)
    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        return original(self, asynchronous)

    setattr(_connparams, _GUARDED, True)
    kombu_redis.Channel._connparams = _connparams  # SentinelChannel inherits it
