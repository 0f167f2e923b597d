"""The catalog's topology: which service depends on which, as a graph to measure and walk.

`X depends_on Y` makes Y upstream of X: data flows from Y to X, and a failure of Y shows as
symptoms in X. Pure: built from names, it knows nothing of YAML, Redis or the clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Topology:
    """The services and, for each, the services it depends on (its direct upstreams)."""

    depends_on: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, edges: Mapping[str, Iterable[str]]) -> Topology:
        """Return the topology of `edges`: service name -> the names it depends on."""
        return cls({name: tuple(upstreams) for name, upstreams in edges.items()})

    def __contains__(self, name: object) -> bool:
        return name in self.depends_on

    def neighbours(self, name: str) -> set[str]:
        """Return the services one hop from `name`, upstream or downstream."""
        found = set(self.depends_on.get(name, ()))
        found.update(other for other, ups in self.depends_on.items() if name in ups)
        return found

    def distance(self, a: str, b: str) -> int | None:
        """Return the hops between two services, either direction; None when unconnected."""
        if a not in self or b not in self:
            return None
        seen = {a: 0}
        queue = deque([a])
        while queue:
            here = queue.popleft()
            if here == b:
                return seen[here]
            for step in sorted(self.neighbours(here)):
                if step not in seen:
                    seen[step] = seen[here] + 1
                    queue.append(step)
        return None

    def upstream(self, name: str) -> set[str]:
        """Return every service `name` depends on, directly or through others."""
        found: set[str] = set()
        stack = list(self.depends_on.get(name, ()))
        while stack:
            here = stack.pop()
            if here not in found:
                found.add(here)
                stack.extend(self.depends_on.get(here, ()))
        return found

    def probable_origin(self, services: Iterable[str]) -> str | None:
        """Return the most upstream of `services` (the probable origin); None if none is known.

        A candidate has no other alerting service upstream of it. Of several (two branches
        failing at once), the one with most alerting services downstream wins, then the name,
        so the answer never depends on the order the alerts came in.
        """
        alerting = {name for name in services if name in self}
        if not alerting:
            return None
        ups = {name: self.upstream(name) & alerting for name in alerting}
        candidates = [name for name in alerting if not ups[name] - {name}]
        if not candidates:  # only in a cycle, which the policy check refuses
            candidates = sorted(alerting)
        downstream = {c: sum(c in ups[other] for other in alerting) for c in candidates}
        return min(candidates, key=lambda c: (-downstream[c], c))


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Return a dependency cycle as a path that ends where it starts, or None when acyclic.

    Names not in `edges` are ignored here (the policy check reports them as unknown).
    """
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            name, index = stack.pop()
            if index == 0:
                path.append(name)
                on_path.add(name)
            upstreams = [u for u in edges.get(name, ()) if u in edges]
            if index < len(upstreams):
                stack.append((name, index + 1))
                nxt = upstreams[index]
                if nxt in on_path:
                    return [*path[path.index(nxt) :], nxt]
                if nxt not in done:
                    stack.append((nxt, 0))
                continue
            path.pop()
            on_path.discard(name)
            done.add(name)
    return None
