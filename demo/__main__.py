"""`python -m demo`: start the world, break something, and tell what happens as it happens.

python -m demo [--scenario signal-latency] [--exit-after]      (make demo SCENARIO=...)
make demo-stop                                                  (or Ctrl-C)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from demo.simulator import SCENARIOS
from demo.world import World, WorldError
from tasks.store.deliveries import DeliveryStore

DIRECTORY = Path("var/demo")


def say(text: str) -> None:
    """Print one timestamped line of the story."""
    print(f"{datetime.now(UTC):%H:%M:%S}  {text}", flush=True)


def main() -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="signal-latency", choices=sorted(SCENARIOS))
    parser.add_argument("--exit-after", action="store_true", help="stop once the evidence is in")
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for evidence")
    args = parser.parse_args()
    redis_url = os.environ.get("RESPONDER_DEMO_REDIS_URL", "redis://127.0.0.1:6379/11")
    store = DeliveryStore(redis.Redis.from_url(redis_url))
    for key in store.redis.scan_iter("responder:*"):
        store.redis.delete(key)

    say("starting the world: EAFIX simulator, fake PagerDuty, responder, Prometheus, Alertmanager")
    try:
        world = World(DIRECTORY.resolve(), redis_url).start()
    except WorldError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    (DIRECTORY / "demo.pid").write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        for part, url in world.urls.items():
            say(f"  {part:<13} {url}")
        say(f"  {'pagerduty':<13} {world.pagerduty.base_url} (fake; GET /_fake/calls lists calls)")
        say(f"  {'simulator':<13} {world.simulator.url('gui-gateway')} .. (six services)")
        effect, alert = SCENARIOS[args.scenario]
        say(f"injecting {args.scenario}: {effect}")
        world.inject(args.scenario)
        done = tell_story(world, store, alert, args.timeout)
        if done and (page := incident_page_link(world)):
            say(f"open the incident page: {page}")
        if not done:
            waited = f"{args.timeout:g} s"
            say(f"no evidence note for {alert or args.scenario} in {waited}; logs in {DIRECTORY}")
        if args.exit_after:
            return 0 if done else 1
        say("the world keeps running; `make demo-stop` or Ctrl-C ends it")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        say("stopping the world")
        world.stop()
        (DIRECTORY / "demo.pid").unlink(missing_ok=True)


def tell_story(world: World, store: DeliveryStore, alert: str, timeout: float) -> bool:
    """Print each new event until the evidence note for `alert` arrives; return whether it did."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for firing in world.firing_alerts():
            name = firing["labels"].get("alertname", "?")
            if (key := f"alert:{name}") not in seen:
                seen.add(key)
                say(f"Prometheus fired {name} ({firing['annotations'].get('summary', '')})")
        for delivery_id in store.list_ids():
            if (key := f"delivery:{delivery_id}") not in seen:
                delivery = store.get(delivery_id) or {}
                seen.add(key)
                names = ", ".join(a["name"] for a in delivery.get("alerts", []))
                priority = (delivery.get("classification") or {}).get("priority", "-")
                rule = (delivery.get("classification") or {}).get("rule", "-")
                say(f"responder got {names}: {priority} by rule {rule} (delivery {delivery_id})")
        for incident_id, incident in list(world.pagerduty.incidents.items()):
            if (key := f"incident:{incident_id}") not in seen:
                seen.add(key)
                say(f"PagerDuty opened incident {incident_id}: {incident['title'][:70]}")
            for note in world.pagerduty.notes_for(incident_id):
                if (key := f"note:{note['id']}") not in seen:
                    seen.add(key)
                    say(f"note on {incident_id}:")
                    for line in note["content"].splitlines():
                        print(f"          | {line}", flush=True)
                    if " evidence: " in note["content"].splitlines()[0] and (
                        not alert or alert in incident["title"]
                    ):
                        return True
        time.sleep(0.3)
    return False


def incident_page_link(world: World) -> str | None:
    """Return the incident page link the latest evidence note carries (the page's own line)."""
    for incident_id in reversed(list(world.pagerduty.incidents)):
        for note in reversed(world.pagerduty.notes_for(incident_id)):
            for line in note["content"].splitlines():
                if line.startswith("Incident page: "):
                    return line.removeprefix("Incident page: ")
    return None


if __name__ == "__main__":
    sys.exit(main())
