"""What the strict JSON reader costs over json.loads on Alertmanager bodies (prints numbers).

Run: .venv/bin/python -m bench.strict_json
"""

from __future__ import annotations

import json
import timeit

from tests.support import sample_payload
from triage import strict_json


def main() -> None:
    """Time json.loads and strict_json.loads on a one-alert and a 20-alert body."""
    payload = sample_payload()
    bodies = {
        "one alert": json.dumps(payload).encode(),
        "20 alerts": json.dumps({**payload, "alerts": payload["alerts"] * 20}).encode(),
    }
    for name, body in bodies.items():
        runs = 20_000
        plain = timeit.timeit(lambda b=body: json.loads(b), number=runs) / runs * 1e6
        strict = timeit.timeit(lambda b=body: strict_json.loads(b), number=runs) / runs * 1e6
        print(
            f"{name} ({len(body)} B): json.loads {plain:.1f} us, strict_json.loads {strict:.1f} us"
        )


if __name__ == "__main__":
    main()
