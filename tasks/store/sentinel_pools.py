"""Every Sentinel-managed Redis pool of a process follows a failover once any one of them sees it.

redis-py (8.2, `redis/sentinel.py`) asks the Sentinels for the master only when one of a
pool's connections connects, and when the answer changed it drops the idle connections of
that pool alone (`SentinelConnectionPoolProxy.get_master_address`; redis/redis-py#1034, fixed
per pool for #1345). Every other pool keeps its idle connections to the old primary, and when
its host was cut off (packets dropped, no RST) the first command on each waits out the whole
socket timeout. A worker holds many such pools: kombu builds two per channel (the BRPOP
connections, and the rest) for the consumer, the producers and the remote control, beside
Celery's result backend and our state client.

The failover bench traced what that costs (docs/failover.md): the urgent worker received the
P0's message by BRPOP on a connection to the new primary, then blocked 5 s in kombu's
`QoS.append` on its other pool's idle connection to the cut one; the append failed, and the
message, already popped, was lost until the stalled-run recovery queued the delivery again
(160 s). Here a pool that learns of a new master tells every pool of the same service and
Sentinels in the process, and each does what redis-py does for itself: takes the new address
and drops its idle connections (those in use are dropped when released: `owns_connection`).
A message reaches the consumer only through a connection to the new primary, so its pools
know of the new primary before the append. Checked against redis-py 8.2.0 and kombu 5.7.0;
`tests/integration/test_sentinel_pools.py` shows a second client and a kombu channel use the
new primary at once after a cut primary.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import weakref
from typing import Any

import redis
from redis.sentinel import SentinelConnectionPool, SentinelConnectionPoolProxy

_PATCHED = "_responder_pools_follow_together"
# How often a worker process asks the Sentinels whether the master moved, at most: one small
# reply from the host's own Sentinel. A process that does not ask learns of a failover only
# when a command on a connection to the old primary times out (2 s for the state client).
MASTER_CHECK_SECONDS = 1.0
_checked_at = [float("-inf")]
_pools: weakref.WeakSet[SentinelConnectionPool] = weakref.WeakSet()
_lock = threading.Lock()


def _new_lock_in_child() -> None:
    """Give a forked child its own lock: another thread may have held it at the fork."""
    global _lock
    _lock = threading.Lock()


def follow_failovers_together() -> None:
    """Make every Sentinel-managed pool in this process leave an old master as soon as any one
    of them learns of a new one (idempotent)."""
    if getattr(SentinelConnectionPoolProxy.get_master_address, _PATCHED, False):
        return
    created = SentinelConnectionPool.__init__
    asked = SentinelConnectionPoolProxy.get_master_address

    @functools.wraps(created)
    def __init__(self: SentinelConnectionPool, *args: Any, **kwargs: Any) -> None:
        created(self, *args, **kwargs)
        with _lock:
            _pools.add(self)

    @functools.wraps(asked)
    def get_master_address(self: SentinelConnectionPoolProxy) -> Any:
        address = asked(self)
        if self.is_master:
            tell_pools(self, address)
        return address

    setattr(get_master_address, _PATCHED, True)
    SentinelConnectionPool.__init__ = __init__  # type: ignore[method-assign]
    SentinelConnectionPoolProxy.get_master_address = get_master_address  # type: ignore[method-assign]
    os.register_at_fork(after_in_child=_new_lock_in_child)


def check_master(client: redis.Redis, every: float = MASTER_CHECK_SECONDS) -> bool:
    """Ask the Sentinels for the master through `client`'s pool, at most every `every` seconds;
    a new master moves every pool of the process to it. Return True when it asked.

    Pool processes forked before a failover hold idle connections to the old primary that no
    error of theirs has dropped yet: asked before each task, their first command after the
    promotion goes to the new primary instead of waiting out its socket timeout.
    """
    pool = client.connection_pool
    now = time.monotonic()
    if not isinstance(pool, SentinelConnectionPool) or now - _checked_at[0] < every:
        return False
    _checked_at[0] = now
    try:
        pool.get_master_address()  # drops this pool's idle connections if it moved; tells others
    except redis.RedisError:
        pass  # no Sentinel answers, or none names a master yet: the command will say so
    return True


def tell_pools(proxy: SentinelConnectionPoolProxy, address: Any) -> int:
    """Move every other master pool of `proxy`'s service to `address`; return how many moved.

    A pool that never connected (no address yet) asks the Sentinels itself when it does.
    """
    service = _service(proxy)
    with _lock:
        pools = list(_pools)
    moved = 0
    for pool in pools:
        other = pool.proxy
        if other is proxy or not other.is_master or other.master_address in (None, address):
            continue
        if _service(other) != service:
            continue  # another deployment's master of the same name
        other.master_address = address
        pool.disconnect(inuse_connections=False)
        moved += 1
    return moved


def _service(proxy: SentinelConnectionPoolProxy) -> tuple[str, frozenset[tuple[Any, Any]]]:
    """Return what names a monitored master: its name and the Sentinels asked (in any order)."""
    sentinels = frozenset(
        (
            s.connection_pool.connection_kwargs.get("host"),
            s.connection_pool.connection_kwargs.get("port"),
        )
        for s in proxy.sentinel_manager.sentinels
    )
    return proxy.service_name, sentinels
