"""Which pools leave an old master when one pool of the process learns of a new one."""

from __future__ import annotations

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelConnectionPoolProxy

from tasks.store.sentinel_pools import check_master, follow_failovers_together, tell_pools

OLD, NEW = ("10.0.0.11", 6379), ("10.0.0.12", 6379)


def master_pool(
    sentinels: list[tuple[str, int]], name: str = "responder"
) -> SentinelConnectionPool:
    """Return a master pool (no connection is made) that believes OLD is the master."""
    pool = Sentinel(sentinels).master_for(name).connection_pool
    pool.proxy.master_address = OLD
    return pool


def test_pools_of_the_same_master_and_sentinels_move_in_any_sentinel_order() -> None:
    follow_failovers_together()
    asking = master_pool([("s1", 26379), ("s2", 26379)])
    same = master_pool([("s2", 26379), ("s1", 26379)])  # each host lists its own Sentinel first
    assert tell_pools(asking.proxy, NEW) >= 1
    assert same.master_address == NEW


def test_another_master_or_other_sentinels_or_a_pool_not_yet_connected_stay() -> None:
    follow_failovers_together()
    asking = master_pool([("s1", 26379)])
    other_name = master_pool([("s1", 26379)], name="billing")
    other_sentinels = master_pool([("t1", 26379)])
    fresh = Sentinel([("s1", 26379)]).master_for("responder").connection_pool
    tell_pools(asking.proxy, NEW)
    assert other_name.master_address == OLD
    assert other_sentinels.master_address == OLD
    assert fresh.master_address is None  # it asks the Sentinels itself when it connects


def test_installing_twice_wraps_once() -> None:
    follow_failovers_together()
    wrapped = SentinelConnectionPoolProxy.get_master_address
    follow_failovers_together()
    assert SentinelConnectionPoolProxy.get_master_address is wrapped


def test_a_plain_redis_client_is_never_asked_about_a_master() -> None:
    assert check_master(redis.Redis(port=1), every=0) is False


def test_the_master_is_asked_at_most_once_a_period_and_a_silent_sentinel_is_no_error() -> None:
    follow_failovers_together()
    # A Sentinel on a port nothing listens on: the question fails, quietly.
    client = Sentinel([("127.0.0.1", 1)], sentinel_kwargs={"socket_connect_timeout": 0.2})
    master = client.master_for("responder")
    assert check_master(master, every=0) is True
    assert check_master(master, every=3600) is False  # asked just now
