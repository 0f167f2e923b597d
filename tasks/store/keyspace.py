"""The responder's whole key space: every key it keeps starts with `PREFIX` (`responder:`)."""

from __future__ import annotations

import redis

from tasks.store.deliveries import PREFIX


def forget_everything(client: redis.Redis) -> int:
    """Delete every key the responder keeps; return how many went (a demo's fresh start)."""
    gone = 0
    for key in client.scan_iter(f"{PREFIX}*", count=1000):
        gone += int(client.delete(key))
    return gone
