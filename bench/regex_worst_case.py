"""Worst-case time of every pattern the responder applies to alert, log and note text.

For each pattern, adversarial inputs of 1, 16, 64 and 256 KB (the shapes that made the old
patterns quadratic, issue 24 finding 7) are timed once each; the time per input is printed.
Point --code at another checkout (`git archive main | tar -x -C /tmp/before`) to time its
patterns the same way. A pattern that took longer than --give-up seconds at one size is not
run at the next (a quadratic one would take 16 times as long), and says so.

    .venv/bin/python bench/regex_worst_case.py [--code /tmp/before] [--give-up 5]

Pure CPU; no services. Numbers depend on the machine: compare runs on the same one.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

SIZES_KB = (1, 16, 64, 256)


def shapes(size: int) -> dict[str, str]:
    """Return the adversarial inputs of about `size` characters, by what they attack."""
    return {
        "redact: key=value, one long word": "password" * (size // 8),
        "redact: key=value, spaces then no =": "password=" + " " * size + "x",
        "redact: scheme://, dotted run": "a." * (size // 2),
        "redact: scheme://, no @": "x://u:" + "p" * size,
        "redact: private key, BEGIN without END": "-----BEGIN RSA PRIVATE KEY-----" * (size // 31),
        "redact: Bearer, spaces": "Bearer " + " " * size,
        "note command: spaces inside a line": "/run a" + " " * size + "b c",
        "note command: /eta digits": "/eta " + "1" * size + "x",
        "marker: [ref a/ repeated": "[ref a/" * (size // 7),
        "slack marker: [ref slack: repeated": "[ref slack:" * (size // 11),
        "slack plain: <a| repeated": "<a|" * (size // 3),
        "promql unit: { without }": "{" * size,
        "promql unit: long name then (": "a" * size + "(",
        "promql unit: increase( repeated": "increase(" * (size // 9),
    }


def runners(code: Path) -> dict[str, Callable[[str], object]]:
    """Return the function each shape is run through, imported from the checkout at `code`."""
    sys.path.insert(0, str(code))
    for name in [m for m in sys.modules if m.split(".")[0] in {"collectors", "tasks", "triage"}]:
        del sys.modules[name]
    redact = importlib.import_module("collectors.redact").make_redactor([])
    parse = importlib.import_module("triage.note_commands").parse
    is_ours = importlib.import_module("tasks.notes.markers").is_ours
    slack = importlib.import_module("tasks.gateways.slack_blocks")
    unit_of = importlib.import_module("collectors.promql").unit_of
    by_prefix = {
        "redact": redact,
        "note command": parse,
        "marker": is_ours,
        "slack marker": slack.marker_of,
        "slack plain": slack.plain,
        "promql unit": unit_of,
    }
    return {shape: by_prefix[shape.split(":")[0]] for shape in shapes(1024)}


def timed(run: Callable[[str], object], text: str) -> float | str:
    """Return the seconds `run` took on `text`, or what it raised."""
    start = time.perf_counter()
    try:
        run(text)
    except Exception as exc:  # the old parser's /eta raised on a long number: say so
        return f"raised {type(exc).__name__}"
    return time.perf_counter() - start


def main() -> None:
    """Time each adversarial shape at each size and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--give-up", type=float, default=5.0)
    args = parser.parse_args()
    run_for = runners(args.code.resolve())
    print(f"code: {args.code}")
    print(f"{'shape':44}" + "".join(f"{kb:>5} KB   " for kb in SIZES_KB))
    for shape, run in run_for.items():
        cells, slow = [], False
        for kb in SIZES_KB:
            if slow:
                cells.append(f"{'(skipped)':>11}")
                continue
            took = timed(run, shapes(kb * 1024)[shape])
            if isinstance(took, str):
                cells.append(f"{took[:11]:>11}")
                continue
            slow = took > args.give_up
            cells.append(f"{took * 1000:>8.1f} ms" if took < 10 else f"{took:>9.1f} s")
        print(f"{shape:44}" + " ".join(cells))


if __name__ == "__main__":
    main()
