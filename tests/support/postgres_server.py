"""A private, throwaway PostgreSQL server started with settings the shared test server lacks.

`shared_preload_libraries` takes effect only at a server's start: the shared test server is
used by other test runs at the same time and must not be restarted, so a test that needs a
library preloaded (pg_stat_statements) starts its own cluster, on its own port, and removes it.
Debian's binaries, run as the `postgres` user when we are root (initdb refuses root), as
`scripts/ensure-postgres` does.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_binary(name: str) -> str:
    """Return a PostgreSQL server binary (on PATH or Debian's newest); raise when there is none."""
    found = shutil.which(name) or max(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(Path(path).parts[4]) if Path(path).parts[4].isdigit() else 0,
        default=None,
    )
    if found is None:
        raise RuntimeError(f"{name} is not installed (apt-get install postgresql)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def private_postgres(*settings: str) -> Iterator[str]:
    """Start a throwaway cluster with `settings` (`name=value`); yield its DSN; remove it."""
    initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
    data = Path(tempfile.mkdtemp(prefix="responder-pg-"))  # under /tmp: the server user reads it
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")  # KeyError names the missing user
        os.chown(data, user.pw_uid, user.pw_gid)
    port = _free_port()
    try:
        subprocess.run(
            _as_server_user([initdb, "-D", str(data / "db"), "-U", "postgres", "--auth=trust"]),
            check=True,
            capture_output=True,
            text=True,
        )
        # Loopback only, no Unix socket; -w waits until it takes connections.
        options = " ".join(
            [f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="]
            + [f"-c {setting}" for setting in settings]
        )
        log = data / "server.log"
        subprocess.run(
            _as_server_user(
                [pg_ctl, "-D", str(data / "db"), "-l", str(log), "-o", options, "-w", "start"]
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                _as_server_user([pg_ctl, "-D", str(data / "db"), "-m", "immediate", "stop"]),
                capture_output=True,
                text=True,
            )
    finally:
        shutil.rmtree(data, ignore_errors=True)
