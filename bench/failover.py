"""Failover across hosts: three network namespaces, Redis + Sentinel on each, two responders;
a storm through both receivers, and the host holding the Redis primary and the beat lease cut
off the network mid-storm.

    sudo .venv/bin/python -m bench.failover [--deliveries 2000] [--seconds 60] [--groups 200]
        [--cut-at 20] [--drain-timeout 240] [--json FILE] [--cleanup]

What it builds (root only; see docs/failover.md): a bridge PREFIX-br in the root namespace at
NET.1/24; namespaces PREFIX-h1..h3 at NET.11..13, each joined by a veth pair, each with its
own hostname (unshare --uts) so Celery's %h and the beat lease name the host. Each host runs a
redis-server (h1 the primary, h2 and h3 replicas) and a Sentinel (quorum 2); h1 and h2 run
`responder run` with RESPONDER_REDIS_URL=sentinel://... and RESPONDER_REDIS_WAIT_REPLICAS=1.
The fake PagerDuty (HTTPS) and the catalog's health targets listen in the root namespace on
NET.1. Traffic goes only to addresses created here.

The storm sends alternately to the two receivers; a delivery that is not answered 2xx is sent
again through the other receiver after a second (as Alertmanager retries, behind a load
balancer), for --retry-for seconds (30). Like nginx's passive health check (max_fails 1,
fail_timeout 10 s), a receiver that did not answer is left out for 10 s (--blind: never).
At --cut-at seconds, or later once its host finished a bundle, the host holding the
Redis primary and the beat lease loses its link (ip link set down) and every process in its
namespace is SIGKILLed; the P0 goes at half time, after the cut.
Both responders keep their bundles in one S3 store (moto's server on NET.1); after the drain
every bundle the cut host finished is opened through the survivor's receiver by a signed link.

`--cleanup` only removes what an earlier run left (namespaces, their processes, the bridge).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import requests
from werkzeug.serving import make_server

from bench.shared_bundles import S3Server, bundles_written_in, open_bundle
from bench.storm import (
    COSMETIC_ALERT,
    P0_GROUP,
    PD_TOKEN,
    TOKEN,
    Quiet,
    alert,
    delivery_fates,
    drained,
    first_note,
    group_payload,
    incident_key,
    storm_alert,
    storm_policy,
)
from tasks.store.beat_lease import lease_holder
from tasks.store.dead_letters import DeadLetters
from tasks.store.redis_client import connect
from tests.fakes.pagerduty import FakePagerDuty

MASTER = "responder"
REDIS_PORT = 6379
SENTINEL_PORT = 26379
RECEIVER_PORT = 8080
LINK_SECRET = "bench-failover-link-secret"  # signs the links the bench opens bundles by
BALANCER_FAIL_TIMEOUT = 10.0  # seconds a receiver that did not answer is left out (nginx's)
SLA_TICK_DONE = (b"Task tasks.pipeline.sla_tick[", b"] succeeded in")  # a worker ran one
CELERY_STAMP = re.compile(rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ")


def sh(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command (ip, mostly) and return its result; raise on failure when `check`."""
    return subprocess.run(command, check=check, capture_output=True, text=True)


class Network:
    """The bridge and the three namespaces: created, cut, and removed."""

    def __init__(self, prefix: str, net: str, hosts: int = 3) -> None:
        self.prefix = prefix
        self.net = net
        self.bridge = f"{prefix}-br"
        self.gateway = f"{net}.1"
        self.names = [f"{prefix}-h{n}" for n in range(1, hosts + 1)]

    def address(self, host: int) -> str:
        """Return the address of host number `host` (0-based)."""
        return f"{self.net}.{11 + host}"

    def build(self) -> None:
        """Create the bridge, the namespaces, their veth pairs and addresses."""
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for number, ns in enumerate(self.names):
            outside = f"{ns}-v"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", outside, "master", self.bridge)
            sh("ip", "link", "set", outside, "up")
            inside = ["ip", "netns", "exec", ns, "ip"]
            sh(*inside, "addr", "add", f"{self.address(number)}/24", "dev", "eth0")
            sh(*inside, "link", "set", "eth0", "up")
            sh(*inside, "link", "set", "lo", "up")
            sh(*inside, "route", "add", "default", "via", self.gateway)

    def cut(self, number: int) -> None:
        """Take host `number` off the network and SIGKILL every process in its namespace."""
        ns = self.names[number]
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "down")
        kill_namespace(ns)

    def remove(self) -> None:
        """Kill what runs in the namespaces; delete them and the bridge (quietly: may be gone)."""
        for ns in self.names:
            kill_namespace(ns)
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "link", "del", f"{ns}-v", check=False)  # its pair may outlive the namespace
        sh("ip", "link", "del", self.bridge, check=False)

    def exec(self, number: int) -> list[str]:
        """Return the command prefix that runs in host `number`, under its own hostname."""
        ns = self.names[number]
        return ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c",
                f'hostname {ns} && exec "$@"', "sh"]  # fmt: skip


IFNAMSIZ = 15  # Linux's longest interface name; the longest of ours is "<prefix>-h3-v"


def run_names(pid: int) -> tuple[str, str]:
    """Return a namespace prefix and a /24 derived from `pid`, so that two runs at once (two
    test sessions, two helpers) build apart: prefix `f<pid>`, net 10.<100..227>.<0..255>."""
    prefix = f"f{pid}"
    assert len(f"{prefix}-h3-v") <= IFNAMSIZ, prefix  # pid_max is at most 4194304: 7 digits
    return prefix, f"10.{100 + (pid >> 8) % 128}.{pid % 256}"


def unused_run_names(pid: int) -> tuple[str, str]:
    """Return run_names for `pid`, or for the next numbers while a namespace or route of that
    name or net already exists on this machine (another run's, or one left behind)."""
    namespaces = sh("ip", "netns", "list", check=False).stdout
    routes = sh("ip", "route", "show", check=False).stdout
    for candidate in range(pid, pid + 1000):
        prefix, net = run_names(candidate)
        if f"{prefix}-h" not in namespaces and f"{net}.0/24" not in routes:
            return prefix, net
    raise SystemExit("no unused namespace prefix and net near this pid")


def kill_namespace(ns: str) -> None:
    """SIGKILL every process in namespace `ns` (its pids, as `ip netns pids` lists them)."""
    listed = sh("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in listed:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            continue


class Targets:
    """Every catalog service answers its health check at once, on the bridge's address."""

    def __init__(self, host: str) -> None:
        def app(environ: Any, start_response: Any) -> list[bytes]:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status": "ok"}']

        self.server = make_server(host, 0, app, threaded=True, request_handler=Quiet)
        self.base = f"http://{host}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


class Hosts:
    """The processes each host runs, started through Network.exec, logged per host."""

    def __init__(self, network: Network, directory: Path) -> None:
        self.network = network
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def folder(self, number: int) -> Path:
        path = self.directory / self.network.names[number]
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(
        self, number: int, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        folder = self.folder(number)
        with (folder / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [*self.network.exec(number), *command],
                cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def start_redis(self, number: int) -> None:
        address = self.network.address(number)
        command = [
            shutil.which("redis-server") or "redis-server", "--bind", address, "--port",
            str(REDIS_PORT), "--protected-mode", "no", "--save", "", "--appendonly", "no",
            "--dir", str(self.folder(number)),
        ]  # fmt: skip
        if number > 0:
            command += ["--replicaof", self.network.address(0), str(REDIS_PORT)]
        self.start(number, "redis", command)

    def start_sentinel(self, number: int, down_after_ms: int) -> None:
        folder = self.folder(number)
        conf = folder / "sentinel.conf"
        conf.write_text(
            f"port {SENTINEL_PORT}\nbind {self.network.address(number)}\ndir {folder}\n"
            "protected-mode no\n"
            f"sentinel monitor {MASTER} {self.network.address(0)} {REDIS_PORT} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        binary = shutil.which("redis-server") or "redis-server"
        self.start(number, "sentinel", [binary, str(conf), "--sentinel"])

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def wait_until(check: Any, timeout: float, what: str) -> Any:
    """Poll `check` until truthy; SystemExit naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except (redis.RedisError, requests.RequestException, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


def sentinel_url(network: Network, first: int = 0) -> str:
    """Return the Sentinel URL with host `first`'s own Sentinel first, then the others.

    A client asks the Sentinels in order, and a Sentinel on a host cut off costs a timeout
    on every new connection; the local one lives and dies with the responder that asks it.
    """
    order = [first, *(n for n in range(3) if n != first)]
    return ";".join(f"sentinel://{network.address(n)}:{SENTINEL_PORT}" for n in order) + "/0"


def master_named(network: Network, hosts: list[int]) -> str | None:
    """Return the primary's address if every Sentinel on `hosts` names the same one."""
    named = set()
    for number in hosts:
        sentinel = redis.Redis(
            host=network.address(number), port=SENTINEL_PORT, socket_timeout=1,
            socket_connect_timeout=1,
        )  # fmt: skip
        try:
            address = sentinel.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", MASTER)
        except redis.RedisError:
            return None
        named.add(address[0].decode() if address else None)
    return named.pop() if len(named) == 1 else None


def healthy(address: str) -> bool:
    return requests.get(f"http://{address}:{RECEIVER_PORT}/healthz", timeout=1).status_code == 200


def responder_env(directory: Path, network: Network, pagerduty: FakePagerDuty,
                  policy_file: Path, number: int, store: S3Server) -> dict[str, str]:  # fmt: skip
    """Return the environment of host `number`'s responder: bundles in the shared `store`."""
    folder = directory / network.names[number]
    return {
        **os.environ,
        **store.settings("failover"),
        "RESPONDER_LINK_SECRET": LINK_SECRET,
        "RESPONDER_REDIS_URL": sentinel_url(network, first=number),
        "RESPONDER_REDIS_SENTINEL_MASTER": MASTER,
        "RESPONDER_REDIS_WAIT_REPLICAS": "1",
        "RESPONDER_POLICY": str(policy_file),
        "RESPONDER_ALERTMANAGER_TOKEN": TOKEN,
        "RESPONDER_PAGERDUTY_TOKEN": pagerduty.token,
        "RESPONDER_PAGERDUTY_FROM": "responder@eafix.example",
        "RESPONDER_PAGERDUTY_API_URL": pagerduty.base_url,
        "RESPONDER_PAGERDUTY_CA_FILE": pagerduty.ca_file,
        "RESPONDER_BUNDLE_DIR": str(folder / "bundles"),
        "RESPONDER_OUTBOX_DIR": str(folder / "outbox"),
        "RESPONDER_PUBLIC_URL": f"http://{network.address(number)}:{RECEIVER_PORT}",
        "RESPONDER_COLLECTOR_TIMEOUT": "5",
        # Celery's lines for beat's ticks, which `responder run` keeps out of its log by
        # default: the first sla_tick a worker finished after the cut is the SLA clock's return.
        "RESPONDER_LOG_TICKS": "1",
    }


def celery_times(log: Path, *needles: bytes) -> list[float]:
    """Return the wall-clock times of the Celery log lines of `log` that contain every needle."""
    times = []
    for line in log.read_bytes().splitlines():
        if all(n in line for n in needles) and (found := CELERY_STAMP.match(line)):
            stamp = datetime.strptime(found.group(1).decode(), "%Y-%m-%d %H:%M:%S,%f")
            times.append(stamp.timestamp())  # Celery logs local time, as fromtimestamp reads
    return times


def run(args: argparse.Namespace, network: Network, directory: Path) -> dict[str, Any]:
    """Build the hosts, run the storm with the cut, and return the figures."""
    hosts = Hosts(network, directory)
    pagerduty = FakePagerDuty(token=PD_TOKEN).start(host=network.gateway)
    targets = Targets(network.gateway)
    # In the root namespace, on the bridge's address, which every host reaches: the store
    # outlives the host that is cut, as a real object store outlives any one responder host.
    store = S3Server(network.gateway, log=directory / "s3.log")
    groups = [f'{{}}:{{alertname="{COSMETIC_ALERT}", storm="{g}"}}' for g in range(args.groups)]
    incidents = {k: pagerduty.add_incident(incident_key(k), "storm") for k in [*groups, P0_GROUP]}
    policy_file = directory / "policy.yaml"
    policy_file.write_text(json.dumps(storm_policy(targets)))  # JSON is YAML
    try:
        for number in range(3):
            hosts.start_redis(number)
        for number in range(3):
            hosts.start_sentinel(number, args.down_after_ms)
        wait_until(lambda: master_named(network, [0, 1, 2]) == network.address(0), 30,
                   "the Sentinels to agree on h1")  # fmt: skip
        client = connect(sentinel_url(network), master=MASTER, socket_timeout=3,
                         socket_connect_timeout=1)  # fmt: skip
        wait_until(lambda: client.info("replication")["connected_slaves"] == 2, 30, "2 replicas")
        run_parts = [str(Path(sys.executable).parent / "responder"), "run", "--concurrency", "2"]
        responders = {}
        for number in (0, 1):  # h1 first, so that its beat takes the lease
            env = responder_env(directory, network, pagerduty, policy_file, number, store)
            command = [*run_parts, "--host", network.address(number)]
            responders[number] = hosts.start(number, "responder", command, env)
            wait_until(lambda n=number: healthy(network.address(n)), 90, f"receiver {number + 1}")
            if number == 0:
                wait_until(lambda: lease_holder(client) or None, 60, "the beat lease")

        def primary_host_finished_a_bundle() -> bool:
            primary = master_named(network, [0, 1, 2])
            addresses = [network.address(n) for n in range(3)]
            number = addresses.index(primary) if primary in addresses else 0
            return bool(bundles_written_in(directory / network.names[number] / "bundles"))

        storm = send_storm(args, network, client, incidents, groups, primary_host_finished_a_bundle)
        survivor = directory / network.names[1] / "responder.log"

        def ticked() -> bool:
            cut_wall = storm["cut"].get("wall", 0.0)
            return any(t > cut_wall for t in celery_times(survivor, *SLA_TICK_DONE))

        figures = drain(args, client, pagerduty, incidents, storm, ticked)
        figures.update(after_cut(survivor, storm, responders[1]))
        figures.update(dead_host_bundles(network, directory, storm["cut"].get("host", 0)))
        figures["status"] = subprocess.run(
            [str(Path(sys.executable).parent / "responder"), "status"],
            env=responder_env(directory, network, pagerduty, policy_file, 1, store),
            capture_output=True, text=True, timeout=60,
        ).stdout.splitlines()  # fmt: skip
        return figures
    finally:
        hosts.stop()
        targets.stop()
        store.stop()
        stop_within(pagerduty.stop, 10.0)


def stop_within(stop: Callable[[], None], seconds: float) -> None:
    """Call `stop` in a thread and go on after `seconds` at the latest.

    The fake PagerDuty's serving thread does each TLS handshake inside accept(), without a
    timeout: a worker on the cut host that had just connected leaves it waiting for ever,
    and its shutdown() with it. It is a daemon thread: it ends with the bench.
    """
    stopping = threading.Thread(target=stop, daemon=True)
    stopping.start()
    stopping.join(seconds)


def send_storm(args: argparse.Namespace, network: Network, client: redis.Redis,
               incidents: dict[str, str], groups: list[str],
               ready_to_cut: Callable[[], bool]) -> dict[str, Any]:  # fmt: skip
    """Send the storm alternately through both receivers; cut the primary's host at --cut-at,
    or later, once `ready_to_cut` (the primary's host finished a bundle: it must be opened
    through the survivor afterwards, however slow the machine is today); the P0 goes at half
    time, after the cut."""
    receivers = [f"http://{network.address(n)}:{RECEIVER_PORT}/webhooks/alertmanager"
                 for n in (0, 1)]  # fmt: skip
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    lock = threading.Lock()
    first_try: Counter[int] = Counter()
    final: Counter[int] = Counter()
    accepted: list[str] = []
    retried = [0]
    p0: dict[str, float] = {}
    p0_tries: list[dict[str, Any]] = []
    local = threading.local()
    down_until = [0.0, 0.0]  # the balancer's view: a receiver that did not answer is left out

    def pick(preferred: int) -> int:
        """Return the receiver to try: the preferred one unless the balancer left it out."""
        if args.blind or time.monotonic() >= down_until[preferred]:
            return preferred
        other = 1 - preferred
        return other if time.monotonic() >= down_until[other] else preferred

    def send(payload: bytes, start: int, is_p0: bool = False) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        if is_p0:
            p0["sent"] = time.monotonic()
        # Like Alertmanager, which retries a failed notification until the group's next flush
        # (minutes): a second apart, for --retry-for seconds, not a fixed number of times that a
        # failover on a slow machine can outlast.
        give_up = time.monotonic() + args.retry_for
        attempt = 0
        while True:
            receiver = pick((start + attempt) % 2)
            began = time.monotonic()
            try:
                answer = session.post(receivers[receiver], data=payload, headers=headers,
                                      timeout=(1, 10))  # fmt: skip
                status = answer.status_code
            except requests.RequestException:
                session = local.session = requests.Session()
                status = 0
                # nginx's passive health check (max_fails 1, fail_timeout 10 s): no answer
                # leaves the receiver out for 10 s; a 503 is an answer and does not.
                down_until[receiver] = time.monotonic() + BALANCER_FAIL_TIMEOUT
            if is_p0:  # when each try began and ended, from the cut is worked out in drain()
                p0_tries.append({"receiver": receiver + 1, "status": status,
                                 "began": began, "ended": time.monotonic()})  # fmt: skip
            with lock:
                if attempt == 0:
                    first_try[status] += 1
                if 200 <= status < 300:
                    final[status] += 1
                    accepted.append(answer.json()["delivery_id"])
                    if is_p0:
                        p0["accepted"] = time.monotonic()
                    return
                retried[0] += 1
            if time.monotonic() + 1.0 > give_up:
                break
            time.sleep(1.0)
            attempt += 1
        with lock:
            final[status] += 1

    alerts_of: dict[str, list[dict[str, Any]]] = {g: [] for g in groups}
    interval = args.seconds / args.deliveries
    cut: dict[str, Any] = {}
    ready = False

    def cut_now() -> None:
        cut.update(cut_primary(network, client))
        threading.Thread(target=watch_failover, args=(network, cut), daemon=True).start()
        threading.Thread(target=watch_ticks, args=(client, cut), daemon=True).start()

    def p0_payload() -> bytes:
        labels = {"category": "data-corruption", "service": "risk-manager",
                  "severity": "critical"}  # fmt: skip
        sent = alert("PositionChecksumMismatch", labels, "p0-storm-00000001",
                     "position checksum mismatch")  # fmt: skip
        return json.dumps(group_payload(P0_GROUP, [sent])).encode()

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=48) as pool:
        p0_done = False
        for n in range(args.deliveries):
            due = t0 + n * interval
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            elapsed = time.monotonic() - t0
            if not cut and elapsed >= args.cut_at and (ready or (ready := ready_to_cut())):
                cut_now()
            if not p0_done and cut and elapsed >= args.seconds / 2:
                pool.submit(send, p0_payload(), n, True)
                p0_done = True
            group = groups[n % len(groups)]
            alerts_of[group].append(storm_alert(n, flow=False))
            pool.submit(send, json.dumps(group_payload(group, alerts_of[group][-20:])).encode(), n)
        if not cut:  # a slow machine: the storm was sent before both hosts finished a bundle
            wait_until(ready_to_cut, 90, "a bundle finished on the primary's host")
            cut_now()
        if not p0_done:
            pool.submit(send, p0_payload(), args.deliveries, True)
    sent_for = time.monotonic() - t0
    return {"t0": t0, "first_try": first_try, "final": final, "accepted": accepted,
            "retried": retried[0], "p0": p0, "p0_tries": p0_tries, "cut": cut,
            "sent_for": sent_for}  # fmt: skip


def cut_primary(network: Network, client: redis.Redis) -> dict[str, Any]:
    """Cut the host that holds the Redis primary; say whether it holds the beat lease too."""
    primary = master_named(network, [0, 1, 2]) or network.address(0)
    number = [network.address(n) for n in range(3)].index(primary)
    holder = lease_holder(client)
    at, wall = time.monotonic(), time.time()
    network.cut(number)
    print(f"  cut {network.names[number]} ({primary}): Redis primary; beat lease held by "
          f"{holder.host if holder else 'nobody'}", flush=True)  # fmt: skip
    return {"host": number, "address": primary, "at": at, "wall": wall,
            "beat_holder": holder.host if holder else None}  # fmt: skip


def watch_failover(network: Network, cut: dict[str, Any]) -> None:
    """Note when the surviving Sentinels name a new primary that answers as one."""
    survivors = [n for n in range(3) if n != cut["host"]]

    def promoted() -> bool:
        named = master_named(network, survivors)
        if named is None or named == cut["address"]:
            return False
        role = redis.Redis(host=named, port=REDIS_PORT, socket_timeout=1).execute_command("ROLE")
        return bool(role[0] == b"master")

    try:
        wait_until(promoted, 120, "a new primary")
    except SystemExit:
        return
    cut["failover_end"] = time.monotonic()


def watch_ticks(client: redis.Redis, cut: dict[str, Any]) -> None:
    """Note when a beat-scheduled urgent-lane task next ran after the cut: `heartbeat`, which
    beat sends on the urgent lane like sla_tick and which leaves a stamp we can read."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            stamp = client.get("responder:heartbeat")
        except redis.RedisError:
            stamp = None
        if stamp and datetime.fromisoformat(stamp.decode()).timestamp() > cut["wall"]:
            cut["tick"] = time.monotonic()
            return
        time.sleep(0.2)


def drain(args: argparse.Namespace, client: redis.Redis, pagerduty: FakePagerDuty,
          incidents: dict[str, str], storm: dict[str, Any],
          ticked: Callable[[], bool]) -> dict[str, Any]:  # fmt: skip
    """Wait until every incident is noted (or merged), the queues are empty and the survivor's
    SLA clock has ticked (`ticked`); return the figures."""
    deadline = time.monotonic() + args.drain_timeout
    drained_at = None
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if drained(client, pagerduty, incidents) and ticked():
            drained_at = time.monotonic() - storm["t0"]
            break
    t0, cut, p0 = storm["t0"], storm["cut"], storm["p0"]
    p0_first = first_note(pagerduty, incidents[P0_GROUP])
    refs = Counter(note["content"].rsplit("[ref ", 1)[-1]
                   for i in incidents.values() for note in pagerduty.notes_for(i))  # fmt: skip
    merged = {s for _, sources in pagerduty.merges for s in sources}
    noted = [k for k, i in incidents.items() if first_note(pagerduty, i) is not None]
    fates = delivery_fates(client, storm["accepted"])
    letters = DeadLetters(client).list()
    end = cut.get("failover_end")
    return {
        "first_try": dict(storm["first_try"]), "final": dict(storm["final"]),
        "retried": storm["retried"], "accepted": len(storm["accepted"]),
        "sent_for": storm["sent_for"], "fates": dict(fates),
        "dead_letters": [{"task": d.task, "reason": d.reason} for d in letters],
        "incidents": len(incidents), "first_notes": len(noted),
        "merged": len(merged), "without_first_note": len(incidents) - len(noted) - len(merged),
        "duplicate_notes": sum(n - 1 for n in refs.values() if n > 1),
        "drained_at": drained_at,
        "cut_at": cut.get("at", t0) - t0, "cut_host": cut.get("host"),
        "cut_beat_holder": cut.get("beat_holder"),
        "failover_seconds": (end - cut["at"]) if end and cut else None,
        "p0_sent_at": p0["sent"] - t0 if "sent" in p0 else None,
        "p0_first_note_after_delivery": (p0_first - p0["sent"]) if p0_first and p0 else None,
        "p0_first_note_after_2xx": (p0_first - p0["accepted"])
        if p0_first and "accepted" in p0 else None,
        "p0_first_note_after_failover_end": (p0_first - max(end, p0["sent"]))
        if p0_first and end and "sent" in p0 else None,
        "p0_sent_during_failover": bool(end and cut and cut["at"] <= p0.get("sent", 0) <= end),
        # Each try of the P0 (receiver 1 or 2, status, 0: no answer), in seconds from the cut.
        "p0_tries": [
            {**t, "began": t["began"] - cut["at"], "ended": t["ended"] - cut["at"]}
            for t in storm["p0_tries"]
        ] if cut else [],
        "beat_holder_after": getattr(lease_holder(client), "host", None),
        "cut_wall": cut.get("wall"),
        "beat_task_after_cut": (cut["tick"] - cut["at"]) if "tick" in cut else None,
    }  # fmt: skip


def dead_host_bundles(network: Network, directory: Path, cut: int) -> dict[str, Any]:
    """Open every bundle the cut host finished through the surviving responder's receiver, by
    a signed link, as a reader of the note would; return how many were written and opened."""
    survivor = 1 if cut == 0 else 0  # hosts 0 and 1 run a responder
    written = bundles_written_in(directory / network.names[cut] / "bundles")
    receiver = f"http://{network.address(survivor)}:{RECEIVER_PORT}"
    opened = []
    for bundle_id in written:
        try:
            opened.append(open_bundle(receiver, bundle_id, LINK_SECRET))
        except (requests.RequestException, ValueError) as error:  # no answer, or not JSON
            opened.append({"bundle_id": bundle_id, "served": False, "error": repr(error)})
    return {
        "dead_host_bundles": len(written),
        "dead_host_bundles_served": sum(1 for o in opened if o["served"]),
        "dead_host_bundles_not_served": [o for o in opened if not o["served"]],
    }


def after_cut(log: Path, storm: dict[str, Any], process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Return when the survivor's beat took the lease, when its SLA clock ticked again, and
    whether any of its parts exited."""
    cut_wall = storm["cut"].get("wall", 0.0)
    taken = [t for t in celery_times(log, b"beat: holding the beat lease") if t > cut_wall]
    ticked = [t for t in celery_times(log, *SLA_TICK_DONE) if t > cut_wall]
    text = log.read_bytes()
    return {
        "lease_taken_after_cut": (min(taken) - cut_wall) if taken else None,
        "sla_tick_after_cut": (min(ticked) - cut_wall) if ticked else None,
        "survivor_parts_exited": text.count(b" exited ("),
        "survivor_unrecoverable_errors": text.count(b"Unrecoverable error"),
        "survivor_responder_running": process.poll() is None,
    }


def report(figures: dict[str, Any]) -> None:
    """Print the figures a person reads."""
    f = figures

    def sec(value: float | None) -> str:
        return f"{value:.2f} s" if value is not None else "never"

    print(f"intake: first tries {f['first_try']}; after retries through the other receiver "
          f"{f['final']} ({f['retried']} retries); sent in {f['sent_for']:.1f} s")  # fmt: skip
    print(f"cut: h{f['cut_host'] + 1} at {f['cut_at']:.1f} s (it held the beat lease: "
          f"{f['cut_beat_holder']}); the surviving Sentinels named a new primary "
          f"{sec(f['failover_seconds'])} after the cut")  # fmt: skip
    reasons = Counter(d["reason"] for d in f["dead_letters"])
    print(f"2xx deliveries by fate: {f['fates']} (of {f['accepted']}); dead letters: "
          f"{len(f['dead_letters'])} {dict(reasons)}")  # fmt: skip
    print(f"first notes: {f['first_notes']} of {f['incidents']} incidents; merged "
          f"{f['merged']}; neither: {f['without_first_note']}; duplicate notes: "
          f"{f['duplicate_notes']}")  # fmt: skip
    during = "during the failover" if f["p0_sent_during_failover"] else "outside the failover"
    print(f"P0 (sent at {f['p0_sent_at']:.1f} s, {during}): first note "
          f"{sec(f['p0_first_note_after_delivery'])} after its delivery, "
          f"{sec(f['p0_first_note_after_2xx'])} after its 2xx, "
          f"{sec(f['p0_first_note_after_failover_end'])} after the later of its delivery and "
          "the failover's end")  # fmt: skip
    tries = ", ".join(f"h{t['receiver']} {t['status'] or 'no answer'} "
                      f"({t['began']:.1f}-{t['ended']:.1f} s)" for t in f["p0_tries"])  # fmt: skip
    print(f"P0's tries (seconds from the cut; failover ended at "
          f"{sec(f['failover_seconds'])}): {tries}")  # fmt: skip
    print(f"SLA clock: the first sla_tick a survivor's worker finished ran "
          f"{sec(f['sla_tick_after_cut'])} after the cut; the first heartbeat (also beat's, on "
          f"the urgent lane) {sec(f['beat_task_after_cut'])} after it; the survivor's beat "
          f"took the lease {sec(f['lease_taken_after_cut'])} after it; now held by "
          f"{f['beat_holder_after']}")  # fmt: skip
    print(f"survivor: parts exited {f['survivor_parts_exited']}, 'Unrecoverable error' "
          f"{f['survivor_unrecoverable_errors']}, responder run still running: "
          f"{f['survivor_responder_running']}")  # fmt: skip
    print(f"bundles written by the dead host: {f['dead_host_bundles']}, opened through the "
          f"survivor: {f['dead_host_bundles_served']}")  # fmt: skip
    for failed in f["dead_host_bundles_not_served"][:5]:
        print(f"  not opened: {failed}")
    drained = f"{f['drained_at']:.1f} s" if f["drained_at"] is not None else "not in time"
    print(f"drained at {drained}")
    print("responder status on the survivor after the storm:")
    for line in f["status"]:
        print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--cut-at", type=float, default=20.0)
    parser.add_argument("--down-after-ms", type=int, default=3000,
                        help="Sentinel's down-after-milliseconds")  # fmt: skip
    parser.add_argument("--drain-timeout", type=float, default=240.0)
    parser.add_argument(
        "--retry-for",
        type=float,
        default=30.0,
        help="how long the sender retries a delivery, a second apart",
    )
    parser.add_argument("--prefix", default="fo", help="names of the namespaces and bridge")
    parser.add_argument("--net", default="10.77.0", help="the /24 the hosts live in")
    parser.add_argument("--blind", action="store_true",
                        help="alternate blindly, the dead receiver too (no balancer)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--cleanup", action="store_true", help="only remove a run's leftovers")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench.failover builds network namespaces: run it as root")
    network = Network(args.prefix, args.net)
    network.remove()  # a run killed before its finally left these
    if args.cleanup:
        print(f"removed {', '.join(network.names)} and {network.bridge} (if they were there)")
        return
    directory = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    try:
        network.build()
        figures = run(args, network, directory)
    finally:
        network.remove()
        print(f"logs: {directory}")
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
