"""E-mail under load: an alert storm of P2 incidents and a hung SMTP server.

1. Storm: N P2 incidents (and one P0) raised on a Monday, responded to as the worker does,
   then the SLA clock ticks at Tuesday's business opening: how many e-mails management gets
   (one summary, whatever N), how long that tick took, and the P0's e-mails.
2. Hung server: a server that accepts connections and never greets; M e-mails are tried one
   after another, as worker slots would: how many connections, how long it took in all.

Real Redis (BENCH_REDIS_URL, its responder keys are cleared), a real SMTP server (aiosmtpd)
and the schema-validating fake PagerDuty, on loopback; the moments are simulated.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python -m bench.email_storm \\
        [--incidents 100] [--hung 20] [--timeout 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import redis

from tasks.gateways.email import EmailUnavailable
from tasks.gateways.email_compose import Mail
from tasks.notify.email_send import send_once
from tasks.runtime import Runtime
from tasks.settings import settings_from_env
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.smtp import SmtpServer
from tests.support.clock import NEW_YORK, record_trigger, respond, tick

MONDAY_10AM = datetime(2026, 11, 30, 10, 0, tzinfo=NEW_YORK)
TUESDAY_9AM = datetime(2026, 12, 1, 9, 0, tzinfo=NEW_YORK)


def storm(rt: Runtime, pagerduty: FakePagerDuty, mailbox: SmtpServer, count: int) -> None:
    """Raise `count` P2 incidents and one P0; tick at the opening; print what was e-mailed."""
    started = time.perf_counter()
    for n in range(count):
        at = MONDAY_10AM + timedelta(seconds=20 * n)
        incident = pagerduty.add_incident(f"k-bench-{n}", f"BenchP2-{n}")
        respond(rt, record_trigger(rt, incident, f"BenchP2-{n}", "P2", at), at)
    p0 = pagerduty.add_incident("k-bench-p0", "PositionChecksumMismatch")
    respond(rt, record_trigger(rt, p0, "PositionChecksumMismatch", "P0", MONDAY_10AM), MONDAY_10AM)
    tick(rt, MONDAY_10AM + timedelta(seconds=5))  # the P0's "at once": the next tick
    raised = time.perf_counter() - started
    kinds = Counter(r.message["X-EAFIX-Kind"] for r in mailbox.received)
    print(f"storm: {count} P2 + 1 P0 raised in {raised:.1f} s; e-mails by then: {dict(kinds)}")
    mailbox.reset()
    started = time.perf_counter()
    results: list[str] = []
    while claimed := tick(rt, TUESDAY_9AM):  # beat takes up to 100 a tick, every few seconds
        results += claimed
    took = time.perf_counter() - started
    kinds = Counter(r.message["X-EAFIX-Kind"] for r in mailbox.received)
    summaries = [r for r in mailbox.received if r.message["X-EAFIX-Kind"] == "management_summary"]
    print(
        f"storm: Tuesday 09:00 tick acted on {len(results)} deadlines in {took:.1f} s; "
        f"e-mails: {dict(kinds)}"
    )
    for summary in summaries:
        lines = summary.part("plain").count("\n- ")
        print(f"storm: the summary {summary.message['Subject']!r} lists {lines} incidents")


def hung(rt: Runtime, attempts: int, timeout: float) -> None:
    """Try `attempts` e-mails against a server that never greets; print connections and time."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    rt.settings = replace(
        rt.settings, smtp_port=listener.getsockname()[1], smtp_timeout_seconds=timeout
    )
    rt.__dict__.pop("email", None)  # the gateway is built from the settings on first use
    waits = []
    started = time.perf_counter()
    for n in range(attempts):
        mail = Mail("desk_alert", f"hung-{n}", ("desk@eafix.example",), "s", "t", "<p>h</p>")
        began = time.perf_counter()
        try:
            send_once(rt, mail)
        except EmailUnavailable as exc:
            if n == 0:
                print(f"hung: the first attempt: {exc}")
        waits.append(time.perf_counter() - began)
    total = time.perf_counter() - started
    listener.close()
    for connection in held:
        connection.close()
    print(
        f"hung: {attempts} e-mails against a silent server (timeout {timeout:g} s): "
        f"{len(held)} connection(s), {total:.1f} s in all; the first waited {waits[0]:.1f} s, "
        f"the others at most {max(waits[1:], default=0) * 1000:.0f} ms each "
        f"(without the breaker: about {attempts * timeout:.0f} s of worker slots)"
    )


def main() -> None:
    """Run both parts and print their numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--hung", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    url = os.environ["BENCH_REDIS_URL"]
    client = redis.Redis.from_url(url)
    for key in client.scan_iter("responder:*"):
        client.delete(key)
    pagerduty = FakePagerDuty(token="bench-token").start()
    mailbox = SmtpServer().start()
    var = Path(tempfile.mkdtemp(prefix="bench-email-"))
    settings = settings_from_env(
        {
            "RESPONDER_REDIS_URL": url,
            "RESPONDER_PAGERDUTY_TOKEN": "bench-token",
            "RESPONDER_PAGERDUTY_API_URL": pagerduty.base_url,
            "RESPONDER_PAGERDUTY_CA_FILE": pagerduty.ca_file,
            "RESPONDER_BUNDLE_DIR": str(var / "bundles"),
            "RESPONDER_OUTBOX_DIR": str(var / "outbox"),
            "RESPONDER_SMTP_HOST": "127.0.0.1",
            "RESPONDER_SMTP_PORT": str(mailbox.port),
            "RESPONDER_SMTP_STARTTLS": "0",
        }
    )
    rt = Runtime(settings)
    try:
        storm(rt, pagerduty, mailbox, args.incidents)
        hung(rt, args.hung, args.timeout)
    finally:
        mailbox.stop()
        pagerduty.stop()
        for key in client.scan_iter("responder:*"):
            client.delete(key)


if __name__ == "__main__":
    main()
