"""Real redis-server processes on loopback for tests and benches: a lone server, a replica,
and a Sentinel set (a primary, a replica, three Sentinels) that can fail over.

Debian's redis-server package has no separate `redis-sentinel` binary here: a Sentinel is
`redis-server <conf> --sentinel`. Sentinel rewrites its configuration file, so each one gets
its own in its own directory. Timeouts are low (down after 1 s) so a failover takes seconds.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

MASTER_NAME = "responder-test"


def free_port() -> int:
    """Return a TCP port nobody listens on now, on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; `make test-services` installs it")
    return binary


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except redis.RedisError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class RedisServer:
    """One redis-server of our own on a free port: started, stopped, paused, restarted."""

    def __init__(self, directory: Path, *, replica_of: int | None = None, aof: bool = False):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.replica_of = replica_of
        self.aof = aof
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the server's redis:// URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """Return a plain client of this server."""
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=0.5)

    def start(self) -> RedisServer:
        """Start the server (on the same port and files as before) and wait until it answers."""
        command = [
            _binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.aof else "no", "--dir", str(self.directory),
        ]  # fmt: skip
        if self.replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        wait_until(self.client().ping, 10, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        """Kill the server and wait for it (nothing is written out)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot die otherwise
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """SHUTDOWN the server (its AOF written out, as an operator's restart) and start it."""
        try:
            self.client().shutdown()
        except redis.RedisError:  # it closes the connection as it goes
            pass
        if self.process is not None:
            self.process.wait(timeout=30)
        self.start()

    def pause(self) -> None:
        """Stop the process where it stands (SIGSTOP): connected, answering nothing."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


class SentinelSet:
    """A primary, one replica and three Sentinels watching them as MASTER_NAME."""

    def __init__(self, directory: Path, sentinels: int = 3) -> None:
        self.directory = directory
        self.primary = RedisServer(directory / "primary")
        self.replica = RedisServer(directory / "replica", replica_of=self.primary.port)
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.sentinel_processes: list[subprocess.Popen[bytes]] = []
        self.master_name = MASTER_NAME

    @property
    def url(self) -> str:
        """Return the responder's RESPONDER_REDIS_URL for this set (Celery's Sentinel form)."""
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinel_ports) + "/0"

    def env(self) -> dict[str, str]:
        """Return the RESPONDER_* variables that point the responder at this set."""
        return {
            "RESPONDER_REDIS_URL": self.url,
            "RESPONDER_REDIS_SENTINEL_MASTER": self.master_name,
        }

    def start(self) -> SentinelSet:
        """Start the servers and Sentinels; return once every Sentinel knows all the others."""
        self.primary.start()
        self.replica.start()
        wait_until(self._replica_in_sync, 20, "the replica to sync")
        for number, port in enumerate(self.sentinel_ports):
            folder = self.directory / f"sentinel-{number}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                f"sentinel failover-timeout {self.master_name} 3000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            with (folder / "sentinel.log").open("ab") as log:
                self.sentinel_processes.append(
                    subprocess.Popen([_binary(), str(conf), "--sentinel"], stdout=log, stderr=log)
                )
        wait_until(self._all_known, 30, "the Sentinels to find the replica and each other")
        return self

    def stop(self) -> None:
        """Stop every process of the set."""
        for process in self.sentinel_processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.sentinel_processes = []
        self.primary.stop()
        self.replica.stop()

    def sentinel(self, number: int = 0) -> redis.Redis:
        """Return a client of one Sentinel."""
        port = self.sentinel_ports[number]
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=0.5)

    def master_port(self) -> int:
        """Return the port of the primary the first answering Sentinel names now."""
        for number in range(len(self.sentinel_ports)):
            try:
                host, port = self.sentinel(number).sentinel_get_master_addr_by_name(
                    self.master_name
                )
                return int(port)
            except (redis.RedisError, TypeError):
                continue
        raise RuntimeError("no Sentinel answers")

    def server_on(self, port: int) -> RedisServer:
        """Return the server of the set listening on `port`."""
        return self.primary if self.primary.port == port else self.replica

    def failover(self, timeout: float = 30) -> int:
        """Have the Sentinels promote the replica (SENTINEL FAILOVER); return the new port.

        Returns once every Sentinel names the new primary, it accepts writes, and the old one
        replicates it: until then the old primary still takes writes, which the switch loses
        (asynchronous replication; what RESPONDER_REDIS_WAIT_REPLICAS guards a 2xx against).
        """
        before = self.master_port()
        self.sentinel().execute_command("SENTINEL FAILOVER", self.master_name)
        after = self._await_new_master(before, timeout)
        demoted = self.server_on(before).client()
        wait_until(
            lambda: demoted.info("replication").get("master_link_status") == "up",
            timeout,
            "the old primary to replicate the new one",
        )
        return after

    def kill_master(self, timeout: float = 30) -> int:
        """Kill the primary's process; return the new primary's port once promoted."""
        before = self.master_port()
        self.server_on(before).stop()
        return self._await_new_master(before, timeout)

    def pause_master(self, timeout: float = 30) -> int:
        """Pause the primary (SIGSTOP: connected, answering nothing, as a host cut off the
        network); return the new primary's port once promoted. `resume` it afterwards."""
        before = self.master_port()
        self.server_on(before).pause()
        return self._await_new_master(before, timeout)

    def _await_new_master(self, before: int, timeout: float) -> int:
        def promoted() -> int | None:
            ports = set()
            for number in range(len(self.sentinel_ports)):
                try:
                    _, port = self.sentinel(number).sentinel_get_master_addr_by_name(
                        self.master_name
                    )
                    ports.add(int(port))
                except (redis.RedisError, TypeError):
                    continue
            if len(ports) != 1 or before in ports:
                return None
            (port,) = ports
            role = self.server_on(port).client().execute_command("ROLE")[0]
            return port if role == b"master" else None

        return int(wait_until(promoted, timeout, "the Sentinels to promote the replica"))

    def _replica_in_sync(self) -> bool:
        info = self.replica.client().info("replication")
        return info.get("master_link_status") == "up"

    def _all_known(self) -> bool:
        others = len(self.sentinel_ports) - 1
        for number in range(len(self.sentinel_ports)):
            sentinel = self.sentinel(number)
            replicas = sentinel.execute_command("SENTINEL REPLICAS", self.master_name)
            peers = sentinel.execute_command("SENTINEL SENTINELS", self.master_name)
            if len(replicas) < 1 or len(peers) < others:
                return False
        return True
