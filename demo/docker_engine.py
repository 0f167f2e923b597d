"""A Docker Engine API for the demo world and the tests, served on a Unix socket: the endpoints
the `docker` collector calls (containers list, inspect, logs, one-shot stats), with the documented
response shapes, including the multiplexed log stream of a container without a TTY, and the ones
actions call (`POST /containers/{id}/stop|start|restart`: 204, or 304 when it is already in that
state), and exec as the `network` collector uses it (`POST /containers/{id}/exec`: 201 with the
exec's id, 409 when the container is not running; `POST /exec/{id}/start`: the command's output as
the multiplexed raw stream with `200`, as dockerd answers a start without `Upgrade: tcp` (one
asking to upgrade is refused with 501: this server cannot hijack its connection);
`GET /exec/{id}/json`: its exit code). What a command prints and exits with is `exec_handler`'s
answer; without one every program is missing from the image (exit 127), as in a slim image. The
Docker SDK talks to it as to dockerd (`DockerClient(base_url=engine.url)`).

`on_change` hears every state a stop, start or restart leaves a container in, so the demo world
stops and starts the simulated service behind it; `set_state` is the other way round (the
service's process died: its container exited).
"""

from __future__ import annotations

import json
import re
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

API = "/v1.43"
_EXEC = re.compile(rf"POST {API}/(containers/[0-9a-f]+/exec|exec/[0-9a-f]+/start)\?*$")
# (container, argv) -> (exit code, output): what a command run by exec does.
ExecHandler = Callable[["FakeContainer", list[str]], tuple[int, str]]


def missing_program(container: FakeContainer, argv: list[str]) -> tuple[int, str]:
    """Answer as runc does for a program the image lacks: its error text, exit 127."""
    return 127, (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        f'exec: "{argv[0]}": executable file not found in $PATH: unknown\n'
    )


@dataclass
class FakeContainer:
    """One container of the compose project."""

    service: str
    state: str = "running"
    health: str = "healthy"
    restarts: int = 0
    exit_code: int = 0  # of its last exit, shown while it is not running
    env: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    project: str = "eafix"

    @property
    def id(self) -> str:
        return f"{abs(hash(self.service)):064x}"[:64]

    @property
    def name(self) -> str:
        return f"{self.project}-{self.service}-1"


def host_network_exec(container: FakeContainer, argv: list[str]) -> tuple[int, str]:
    """Answer `ping -c 1 -W S HOST`, `curl -sS -I ... -m S URL` and `nc -z -w S HOST PORT` as
    containers on the host's network would (the demo's services share its loopback); any other
    program is missing (exit 127). Exit codes and output as the real tools write them.
    """
    program, seconds = argv[0] if argv else "", _flag(argv)
    if program == "ping":
        try:
            socket.getaddrinfo(argv[-1], None)
        except OSError:
            return 2, f"ping: {argv[-1]}: Name or service not known\n"
        return 0, ("1 packets transmitted, 1 received, 0% packet loss, time 0ms\n"
                   "rtt min/avg/max/mdev = 0.050/0.050/0.050/0.000 ms\n")  # fmt: skip
    if program == "curl":
        try:
            answer = requests.head(argv[-1], timeout=seconds, allow_redirects=False)
        except requests.Timeout:
            return 28, f"curl: (28) Connection timed out after {int(seconds * 1000)} milliseconds\n"
        except requests.ConnectionError:
            return 7, "curl: (7) Failed to connect: Connection refused\n"
        return 0, f"HTTP/1.1 {answer.status_code} {answer.reason}\r\n"
    if program == "nc":
        try:
            socket.create_connection((argv[-2], int(argv[-1])), timeout=seconds).close()
        except OSError:
            return 1, ""
        return 0, ""
    return missing_program(container, argv)


def _flag(argv: list[str]) -> float:
    """Return the timeout a probe's argv carries (-W, -m or -w), 3 s when none."""
    for flag in ("-W", "-m", "-w"):
        if flag in argv[:-1]:
            return float(argv[argv.index(flag) + 1])
    return 3.0


class FakeDockerEngine:
    """Serve the containers over the Engine API on a Unix socket; `url` is for DockerClient."""

    def __init__(
        self,
        containers: list[FakeContainer],
        on_change: Callable[[FakeContainer], None] | None = None,
    ) -> None:
        self.containers = {c.id: c for c in containers}
        self.on_change = on_change
        self.requests: list[str] = []
        self._lock = threading.Lock()  # one state change at a time, as the engine does
        # Seconds a stop, start or restart takes before it answers (a slow container).
        self.action_delay = 0.0
        self.exec_handler: ExecHandler = missing_program
        self.execs: dict[str, dict[str, Any]] = {}  # exec id -> its container, argv, exit code
        self.socket_path = str(Path(tempfile.mkdtemp(prefix="fake-docker-")) / "docker.sock")
        self.url = f"unix://{self.socket_path}"
        self._routes = Map(
            [
                Rule(f"{API}/containers/json", endpoint="list"),
                Rule(f"{API}/containers/<id>/json", endpoint="inspect"),
                Rule(f"{API}/containers/<id>/logs", endpoint="logs"),
                Rule(f"{API}/containers/<id>/stats", endpoint="stats"),
                Rule(f"{API}/containers/<id>/stop", endpoint="stop", methods=["POST"]),
                Rule(f"{API}/containers/<id>/start", endpoint="start", methods=["POST"]),
                Rule(f"{API}/containers/<id>/restart", endpoint="restart", methods=["POST"]),
                Rule(f"{API}/containers/<id>/exec", endpoint="exec_create", methods=["POST"]),
                Rule(f"{API}/exec/<exec_id>/start", endpoint="exec_start", methods=["POST"]),
                Rule(f"{API}/exec/<exec_id>/json", endpoint="exec_inspect"),
                Rule(f"{API}/version", endpoint="version"),
            ]
        )
        self._server: Any = None

    def start(self) -> FakeDockerEngine:
        """Serve in a background thread."""
        self._server = make_server(self.url, 0, self, threaded=True, request_handler=_Quiet)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and remove the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            Path(self.socket_path).unlink(missing_ok=True)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append(f"{request.method} {request.full_path}")
        try:
            endpoint, values = self._routes.bind_to_environ(environ).match()
        except Exception:
            return _json({"message": "page not found"}, 404)(environ, start_response)
        known = ("inspect", "logs", "stats", "stop", "start", "restart", "exec_create")
        if endpoint in known and values["id"] not in self.containers:
            message = f"No such container: {values['id']}"
            return _json({"message": message}, 404)(environ, start_response)
        if values.get("exec_id", "") and values["exec_id"] not in self.execs:
            message = f"No such exec instance: {values['exec_id']}"
            return _json({"message": message}, 404)(environ, start_response)
        return getattr(self, f"_{endpoint}")(request, **values)(environ, start_response)

    def acted(self) -> list[str]:
        """Return the POSTs received but the network check's execs (stop, start, restart), in
        order: any other POST counts, so a test sees whatever acted on a container."""
        return [r for r in self.requests if r.startswith("POST ") and not _EXEC.match(r)]

    def container(self, service: str) -> FakeContainer:
        """Return the container of a compose service (KeyError when there is none)."""
        for c in self.containers.values():
            if c.service == service:
                return c
        raise KeyError(f"no container of compose service {service!r}")

    def set_state(self, service: str, state: str, exit_code: int = 0) -> None:
        """Put a service's container in `state` from outside the API (its process exited)."""
        with self._lock:
            c = self.container(service)
            c.state, c.exit_code = state, exit_code
            c.health = "healthy" if state == "running" else "unhealthy"

    def _stop(self, request: Request, id: str) -> Response:
        time.sleep(self.action_delay)
        with self._lock:
            c = self.containers[id]
            if c.state != "running":
                return Response(status=304)  # the engine's "container already stopped"
            c.state, c.exit_code, c.health = "exited", 143, "unhealthy"  # SIGTERM, then gone
        self._changed(c)
        return Response(status=204)

    def _start(self, request: Request, id: str) -> Response:
        time.sleep(self.action_delay)
        with self._lock:
            c = self.containers[id]
            if c.state == "running":
                return Response(status=304)  # "container already started"
            c.state, c.health = "running", "healthy"
        self._changed(c)
        return Response(status=204)

    def _restart(self, request: Request, id: str) -> Response:
        time.sleep(self.action_delay)
        with self._lock:
            c = self.containers[id]
            c.state, c.health, c.restarts = "running", "healthy", c.restarts + 1
        self._changed(c)
        return Response(status=204)

    def _changed(self, c: FakeContainer) -> None:
        if self.on_change is not None:
            self.on_change(c)

    def executed(self) -> list[list[str]]:
        """Return the argv of every exec started, in order."""
        return [e["argv"] for e in self.execs.values() if e["started"]]

    def _exec_create(self, request: Request, id: str) -> Response:
        c = self.containers[id]
        if c.state != "running":
            return _json({"message": f"Container {c.id} is not running"}, 409)
        body = json.loads(request.get_data() or b"{}")
        with self._lock:
            exec_id = f"{len(self.execs) + 1:064x}"
            self.execs[exec_id] = {
                "container": id, "argv": list(body.get("Cmd") or []), "exit_code": None,
                "started": False,
            }  # fmt: skip
        return _json({"Id": exec_id}, 201)

    def _exec_start(self, request: Request, exec_id: str) -> Response:
        record = self.execs[exec_id]
        record["started"] = True
        exit_code, output = self.exec_handler(self.containers[record["container"]], record["argv"])
        record["exit_code"] = exit_code
        body = _frame(1, output) if output else b""
        if request.headers.get("Upgrade", "").lower() == "tcp":
            # dockerd answers 101 and hijacks the connection; this server cannot, so it says
            # so instead of sending a stream the client would read from under its buffer.
            return _json({"message": "this fake engine starts execs without Upgrade only"}, 501)
        return Response(body, content_type="application/vnd.docker.raw-stream")

    def _exec_inspect(self, request: Request, exec_id: str) -> Response:
        record = self.execs[exec_id]
        argv = record["argv"] or [""]
        return _json(
            {
                "ID": exec_id,
                "ContainerID": record["container"],
                "Running": False,
                "ExitCode": record["exit_code"],
                "ProcessConfig": {"entrypoint": argv[0], "arguments": argv[1:], "tty": False,
                                  "privileged": False, "user": ""},
                "OpenStdin": False, "OpenStderr": True, "OpenStdout": True,
                "CanRemove": False, "DetachKeys": "", "Pid": 0,
            }
        )  # fmt: skip

    def _version(self, request: Request) -> Response:
        return _json({"ApiVersion": "1.43", "Version": "24.0.0-fake"})

    def _list(self, request: Request) -> Response:
        filters = json.loads(request.args.get("filters", "{}"))
        wanted = filters.get("label", [])
        wanted = wanted if isinstance(wanted, list) else list(wanted)
        show_all = request.args.get("all") in ("1", "true", "True")
        found = [
            self._summary(c)
            for c in self.containers.values()
            if (show_all or c.state == "running")
            and all(label in _labels(c).items() or label in _label_strings(c) for label in wanted)
        ]
        return _json(found)

    def _inspect(self, request: Request, id: str) -> Response:
        c = self.containers[id]
        return _json(
            {
                "Id": c.id,
                "Name": f"/{c.name}",
                "RestartCount": c.restarts,
                "State": {
                    "Status": c.state,
                    "Running": c.state == "running",
                    "ExitCode": 0 if c.state == "running" else c.exit_code,
                    "StartedAt": "2026-11-27T09:00:00.000000000Z",
                    "Health": {
                        "Status": c.health,
                        "FailingStreak": 0 if c.health == "healthy" else 3,
                    },
                },
                "Config": {
                    "Tty": False,
                    "Env": c.env,
                    "Labels": _labels(c),
                    "Image": f"eafix/{c.service}",
                },
            }
        )

    def _logs(self, request: Request, id: str) -> Response:
        # As the engine does: `since` (Unix seconds) drops older lines, then `tail` keeps the
        # last N. A line's time is its leading RFC 3339 timestamp, as `timestamps=1` writes it.
        lines = self.containers[id].log_lines
        since = request.args.get("since", type=float)
        if since is not None:
            lines = [line for line in lines if _written_at(line) >= since]
        tail = request.args.get("tail", "all")
        if tail != "all":
            lines = lines[-int(tail) :] if int(tail) else []
        body = b"".join(_frame(2 if "ERROR" in line else 1, line + "\n") for line in lines)
        return Response(body, content_type="application/vnd.docker.raw-stream")

    def _stats(self, request: Request, id: str) -> Response:
        return _json(
            {
                "cpu_stats": {
                    "cpu_usage": {"total_usage": 2_000_000_000},
                    "system_cpu_usage": 20_000_000_000,
                    "online_cpus": 2,
                },
                "precpu_stats": {
                    "cpu_usage": {"total_usage": 1_000_000_000},
                    "system_cpu_usage": 10_000_000_000,
                },
                "memory_stats": {"usage": 256 * 2**20, "limit": 1024 * 2**20},
                "networks": {"eth0": {"rx_bytes": 123456, "tx_bytes": 654321}},
            }
        )

    def _summary(self, c: FakeContainer) -> dict[str, Any]:
        return {"Id": c.id, "Names": [f"/{c.name}"], "State": c.state, "Labels": _labels(c)}


def _labels(c: FakeContainer) -> dict[str, str]:
    return {"com.docker.compose.project": c.project, "com.docker.compose.service": c.service}


def _label_strings(c: FakeContainer) -> list[str]:
    return [f"{k}={v}" for k, v in _labels(c).items()]


def _written_at(line: str) -> float:
    """Return the Unix time of a log line's leading timestamp (a line without one: now)."""
    try:
        return datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp()
    except ValueError:
        return datetime.now(UTC).timestamp()


def _frame(stream: int, text: str) -> bytes:
    data = text.encode()
    return struct.pack(">BxxxL", stream, len(data)) + data


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass
