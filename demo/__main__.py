"""`python -m demo`: start the world, break something, and tell what happens as it happens.

python -m demo [--scenario signal-latency] [--exit-after] [--approve-after 5] [--no-approve]
make demo SCENARIO=risk-manager-down                            (make demo-stop, or Ctrl-C)

When the responder proposes runbook actions on the scenario's incident, the demo approves each
one a few seconds after the evidence note, by a PagerDuty note (`/approve <id>`) as an on-call
engineer would, and follows the action to its verification and the incident to its resolution.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import redis

from demo import messages
from demo.simulator import SCENARIOS
from demo.story import POLL_SECONDS, Line, Story, Watcher, printed
from demo.world import World, WorldError
from tasks.store import keyspace

DIRECTORY = Path("var/demo")
# After the story's end, how long to keep telling the messages that follow it (two SLA ticks).
LINGER_SECONDS = 6.0


def say(text: str) -> None:
    """Print one timestamped line of the story."""
    printed(Line(text))


def main() -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="signal-latency", choices=sorted(SCENARIOS))
    parser.add_argument("--exit-after", action="store_true", help="stop once the story is over")
    parser.add_argument(
        "--timeout", type=float, default=180, help="seconds the story may take (default 180)"
    )
    parser.add_argument(
        "--approve-after",
        type=float,
        default=5,
        help="seconds between saying the demo approves a proposal and its note (default 5)",
    )
    parser.add_argument(
        "--market",
        choices=("open", "clock"),
        default="open",
        help="open: the market trades around the clock (default); clock: EAFIX's market hours",
    )
    parser.add_argument(
        "--pagerduty",
        choices=("attach", "trigger"),
        default="attach",
        help="attach: Alertmanager pages PagerDuty (default); trigger: the responder opens them",
    )
    parser.add_argument(
        "--no-approve", action="store_true", help="approve nothing: leave the proposals to you"
    )
    args = parser.parse_args()
    redis_url = os.environ.get("RESPONDER_DEMO_REDIS_URL", "redis://127.0.0.1:6379/11")
    state = redis.Redis.from_url(redis_url)
    keyspace.forget_everything(state)

    say("starting the world: EAFIX simulator and its Docker engine, fake PagerDuty, responder, "
        "Prometheus, Alertmanager")  # fmt: skip
    try:
        world = World(
            DIRECTORY.resolve(), redis_url, market=args.market, pagerduty_mode=args.pagerduty
        ).start()
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
        say(f"  {'docker':<13} {world.docker.url} (fake engine; compose project eafix)")
        if args.market == "open":
            say(
                "  the market trades around the clock in this world (--market clock: EAFIX's hours)"
            )
        effect, alert = SCENARIOS[args.scenario]
        person = None if args.no_approve else world.note_approver()
        story = Story(world, alert, person, args.approve_after)
        extra = more_to_tell(world)
        story.watchers.extend(extra)
        if args.no_approve:
            say(f"  approvals are yours: set -a; . {DIRECTORY}/env; set +a; "
                ".venv/bin/responder action approve <id> --as <you>")  # fmt: skip
        say(f"injecting {args.scenario}: {effect}")
        world.inject(args.scenario)
        done = story.run(args.timeout)
        if done:
            linger(extra, LINGER_SECONDS)
        if done and (page := incident_page_link(world)):
            say(f"open the incident page: {page}")
        if not done:
            say(f"the story of {alert or args.scenario} did not end in {args.timeout:g} s; "
                f"logs in {DIRECTORY}")  # fmt: skip
        elif world.simulator.trading_stopped:
            say("trading stays stopped at the gateway: resuming it (resume-trading) is a person's "
                "call once the cause is contained")  # fmt: skip
        if args.exit_after:
            return 0 if done else 1
        say("the world keeps running; `make demo-stop` or Ctrl-C ends it")
        while True:  # the SLA clock's status updates, a person's own actions: still told
            linger(extra, 3600)
    except KeyboardInterrupt:
        return 0
    finally:
        say("stopping the world")
        world.stop()
        (DIRECTORY / "demo.pid").unlink(missing_ok=True)


def more_to_tell(world: World) -> list[Watcher]:
    """Return the watchers of the parts that have more to tell than the built-in ones: the
    Slack messages and the e-mails, from the world's outbox (see demo/messages.py)."""
    return list(messages.watchers(world.directory / "outbox"))


def linger(watchers: list[Watcher], seconds: float) -> None:
    """Tell what `watchers` have new for `seconds` more: the desk's summary e-mail and the
    thread's last replies follow the incident's end by an SLA tick or two."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for watcher in watchers:
            for line in watcher():
                printed(line)
        time.sleep(POLL_SECONDS)


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
