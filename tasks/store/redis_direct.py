"""One Redis command sent on a thread's own connection, past redis-py's per-command machinery.

The receiver records every webhook with one script call. Through `Redis.execute_command` that
call also pays redis-py's pool checkout and release, retry wrapper and observability hooks:
about 30 us of CPU per call here, as much as all the parsing and classification of a delivery
(`bench/intake.py`). A connection of the client's own class and settings, kept per thread,
sends the same bytes and reads the same reply without them.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis.connection import AbstractConnection


class DirectCommands:
    """Send commands to the server of `client` on a connection each thread keeps for itself.

    Only for commands that are safe to repeat: a connection that has served before may have
    gone stale (Redis restarted), so a connection error on it is retried once on a new one,
    and the first attempt may have reached Redis. Made for gunicorn's sync and gthread workers,
    whose threads last: a server starting a thread (or greenlet) per request opens a connection
    per request, closed when its thread ends.
    """

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        self._connection_kwargs = pool.connection_kwargs
        self._local = threading.local()

    def execute(self, *args: Any, reconnect: bool = True) -> Any:
        """Send one command and return its reply; redis-py's errors as it raises them.

        `reconnect=False` sends it on this thread's connection as it stands, never on a new
        one: for a command about what this connection wrote before (WAIT).
        """
        local = self._local
        # A forked child (gunicorn with --preload) must not share its parent's socket.
        if getattr(local, "pid", None) != os.getpid():
            local.connection = self._connection_class(**self._connection_kwargs)
            local.pid, local.open = os.getpid(), False
        connection = local.connection
        if not reconnect and not local.open:
            raise redis.ConnectionError("the connection that wrote is gone")
        try:
            if not local.open:
                # Opened here, not by send_packed_command: a Sentinel-managed connection asks
                # the Sentinels for the master in connect() alone (the other way it would
                # go to its default address, localhost:6379).
                connection.connect()
            reply = self._send(connection, args)
        except redis.ConnectionError:
            # A stale socket fails this way (a timeout is not retried: it would only double
            # the wait). The connection is closed now; a new one tells whether Redis is there,
            # and one just opened for this call has told already.
            if not local.open or not reconnect:
                local.open = False
                raise
            local.open = False
            connection.connect()
            reply = self._send(connection, args)
        local.open = True
        return reply

    @staticmethod
    def _send(connection: AbstractConnection, args: tuple[Any, ...]) -> Any:
        # Both calls close the connection on any error but a Redis error reply, so the
        # next call connects again: that is how the receiver recovers when Redis returns.
        connection.send_packed_command(connection.pack_command(*args), check_health=False)
        return connection.read_response()
