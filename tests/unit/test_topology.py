"""The trading flow's topology: hops between services and the probable origin of an outage."""

from __future__ import annotations

import pytest

from triage.policy import builtin
from triage.topology import Topology, find_cycle

FLOW = builtin().topology


def test_the_builtin_catalog_encodes_the_trading_flow_with_the_gateway_in_front() -> None:
    assert dict(FLOW.depends_on) == {
        "gui-gateway": ("risk-manager", "execution-engine"),
        "data-ingestor": (),
        "indicator-engine": ("data-ingestor",),
        "signal-generator": ("indicator-engine",),
        "risk-manager": ("signal-generator",),
        "execution-engine": ("risk-manager",),
    }


@pytest.mark.parametrize(
    ("a", "b", "hops"),
    [
        ("risk-manager", "risk-manager", 0),  # the same service
        ("risk-manager", "execution-engine", 1),  # downstream, one edge
        ("execution-engine", "risk-manager", 1),  # hops count either way
        ("data-ingestor", "signal-generator", 2),
        ("gui-gateway", "risk-manager", 1),  # the gateway sits on the risk manager directly
        ("data-ingestor", "execution-engine", 4),  # the whole flow
        ("data-ingestor", "gui-gateway", 4),
        ("signal-generator", "disk-on-db-host-7", None),  # outside the catalog: unrelated
    ],
)
def test_distance_counts_undirected_hops_on_the_flow(a: str, b: str, hops: int | None) -> None:
    assert FLOW.distance(a, b) == hops


@pytest.mark.parametrize(
    ("alerting", "origin"),
    [
        # The example: the risk manager fails, what depends on it follows.
        (["execution-engine", "gui-gateway", "risk-manager"], "risk-manager"),
        # A complete outage: the feed at the head of the flow.
        (list(FLOW.depends_on), "data-ingestor"),
        # The order the alerts came in does not matter.
        (["risk-manager", "gui-gateway", "execution-engine"], "risk-manager"),
        (["gui-gateway"], "gui-gateway"),
        # Services outside the catalog are no origin; none known, no origin.
        (["host-7", "signal-generator"], "signal-generator"),
        (["host-7"], None),
        ([], None),
    ],
)
def test_the_most_upstream_alerting_service_is_the_probable_origin(
    alerting: list[str], origin: str | None
) -> None:
    assert FLOW.probable_origin(alerting) == origin


def test_of_two_branches_the_one_with_more_alerting_downstream_is_the_origin() -> None:
    # a -> b -> c and x -> y, both failing: a explains two alerts, x one.
    forked = Topology.of({"a": [], "b": ["a"], "c": ["b"], "x": [], "y": ["x"]})
    assert forked.probable_origin(["y", "c", "x", "b", "a"]) == "a"
    assert forked.probable_origin(["x", "a"]) == "a"  # a tie: by name, never by arrival


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": [], "b": ["a"], "c": ["b", "a"]}, None),
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "c", "b", "a"]),
        ({"a": ["ghost"]}, None),  # an unknown name is the check's other message, not a cycle
    ],
)
def test_find_cycle_returns_the_loop_or_none(edges, cycle) -> None:
    assert find_cycle(edges) == cycle
