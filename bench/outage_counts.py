"""What an on-call engineer gets from one outage: pages, notes, proposals, Slack, e-mails.

Starts the demo world (real Prometheus, Alertmanager, receiver, worker and beat; the fake
PagerDuty; Slack and e-mail to the world's outbox), injects a scenario (default
complete-outage, approvals off) and counts, over the first `--seconds` after the injection:

- PagerDuty incidents opened, and those still open at the end;
- notes and status updates posted (all incidents);
- action proposals made (the responder's proposal store);
- Slack messages and e-mails written to the outbox;
- the seconds from the first Alertmanager delivery to the first P0 first note.

    .venv/bin/python -m bench.outage_counts [--pagerduty attach|trigger] [--seconds 300]
      [--correlation off|shadow|on] [--no-inhibit] [--notes]

`--notes` also prints the first line of every note the fake PagerDuty received, in order, and
the proposals made (action, target, why): what the on-call engineer reads.

Prints one table; `--json` prints the same as JSON. Uses RESPONDER_DEMO_REDIS_URL (default
redis://127.0.0.1:6379/9); its `responder:*` keys are wiped first.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import requests

from demo.world import World
from tasks.store.proposals import INDEX_KEY, ProposalStore


def _calls(world: World) -> dict[str, Any]:
    url = f"{world.pagerduty.base_url}/_fake/calls"
    return requests.get(url, timeout=10, verify=world.pagerduty.ca_file).json()


def count(world: World, since: float) -> dict[str, Any]:
    """Return what the world's responder produced since `since` (monotonic seconds)."""
    state = _calls(world)
    calls = [c for c in state["calls"] if c["at"] >= since]
    incidents = list(state["incidents"].values())
    posts = [c for c in calls if c["method"] == "POST" and c["status"] < 300]
    notes = [c for c in posts if c["path"].endswith("/notes")]
    updates = [c for c in posts if c["path"].endswith("/status_updates")]
    merges = [c for c in calls if c["method"] == "PUT" and c["path"].endswith("/merge")]
    outbox = world.directory / "outbox"
    slack = list((outbox / "slack").glob("*.json")) if (outbox / "slack").is_dir() else []
    emails = list((outbox / "email").rglob("*.eml")) if (outbox / "email").is_dir() else []
    store = redis.Redis.from_url(world.redis_url)
    proposals = store.zcard(INDEX_KEY)
    # The first note's delay after the first delivery, on one clock (the wall's).
    offset = time.time() - time.monotonic()
    received = [
        datetime.fromisoformat(json.loads(raw)["received_at"]).timestamp()
        for key in store.scan_iter("responder:delivery:*")
        if store.type(key) == b"hash" and (raw := store.hget(key, "meta"))
    ]
    firsts = [
        c["at"] + offset
        for c in notes
        if "/first_note]" in str((c.get("body") or {}).get("note", {}).get("content", ""))
    ]
    return {
        "pagerduty_incidents": len(incidents),
        "open_incidents": sum(1 for i in incidents if i["status"] != "resolved"),
        "high_urgency_pages": sum(1 for i in incidents if i.get("urgency") == "high"),
        "merges": len(merges),
        "notes": len(notes),
        "status_updates": len(updates),
        "proposals": proposals,
        "slack_messages": len(slack),
        "emails": len(emails),
        "rejected_by_spec": sum(1 for c in calls if c["error"]),
        "first_note_seconds": round(min(firsts) - min(received), 2)
        if firsts and received
        else None,
    }


def first_lines(world: World, since: float) -> list[str]:
    """Return the first line of every note posted since `since`, in the order received."""
    lines = []
    for call in _calls(world)["calls"]:
        if call["at"] < since or call["method"] != "POST" or not call["path"].endswith("/notes"):
            continue
        content = str((call.get("body") or {}).get("note", {}).get("content", ""))
        lines.append(f"{call['at'] - since:6.1f}s  {content.splitlines()[0] if content else ''}")
    return lines


def proposals_made(world: World) -> list[str]:
    """Return each proposal in the responder's store: action, target and why."""
    store = ProposalStore(redis.Redis.from_url(world.redis_url))
    return [f"{p.action} on {p.target}: {p.why}" for p in reversed(store.recent())]


def main() -> int:
    """Run the world once and print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="complete-outage")
    parser.add_argument("--pagerduty", choices=("attach", "trigger"), default="attach")
    parser.add_argument("--correlation", choices=("off", "shadow", "on"), default=None)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument(
        "--no-inhibit", action="store_true", help="Alertmanager without the inhibit_rules"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--notes", action="store_true", help="print each note's first line")
    args = parser.parse_args()
    redis_url = os.environ.get("RESPONDER_DEMO_REDIS_URL", "redis://127.0.0.1:6379/9")
    directory = Path(tempfile.mkdtemp(prefix="outage-counts-"))
    world = World(
        directory,
        redis_url,
        market="open",
        pagerduty_mode=args.pagerduty,
        inhibit=not args.no_inhibit,
    )
    if args.correlation:
        world.policy_overrides = {"correlation": {"mode": args.correlation}}
    world.start()
    try:
        started = time.monotonic()
        world.inject(args.scenario)
        time.sleep(args.seconds)
        counts = count(world, started)
        notes = first_lines(world, started) if args.notes else []
        proposals = proposals_made(world) if args.notes else []
    finally:
        world.stop()
    counts = {
        "scenario": args.scenario,
        "pagerduty": args.pagerduty,
        "correlation": args.correlation or "policy default",
        "inhibition": not args.no_inhibit,
        "seconds": args.seconds,
        **counts,
    }
    if args.json:
        print(json.dumps(counts, indent=2))
    else:
        for name, value in counts.items():
            print(f"{name:<22} {value}")
    for line in notes:
        print(line)
    for line in proposals:
        print(f"proposal: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
