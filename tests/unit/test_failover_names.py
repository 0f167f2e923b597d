"""The failover bench's per-run names: apart for two runs at once, within Linux's limits."""

from __future__ import annotations

import ipaddress

import pytest

from bench.failover import IFNAMSIZ, Network, run_names

PID_MAX = 4_194_304  # Linux's largest pid_max


@pytest.mark.parametrize("pid", [1, 255, 256, 32_767, 32_768, 123_456, PID_MAX])
def test_every_interface_name_of_a_run_fits_linux_limit(pid: int) -> None:
    prefix, net = run_names(pid)
    network = Network(prefix, net)
    names = [network.bridge, *network.names, *(f"{ns}-v" for ns in network.names)]
    assert max(len(name) for name in names) <= IFNAMSIZ, names


@pytest.mark.parametrize("pid", [1, 300, 65_535, PID_MAX])
def test_a_run_lives_in_one_private_24_and_not_in_the_fixed_ones(pid: int) -> None:
    _, net = run_names(pid)
    subnet = ipaddress.ip_network(f"{net}.0/24")
    assert subnet.is_private
    # the bench's default, the old test's and the bundle-store test's /24s stay apart
    assert net not in {"10.77.0", "10.78.0", "10.79.27", "10.81.27"}


def test_two_runs_at_once_get_different_prefixes_and_nets() -> None:
    pids = range(1000, 1000 + 32_768)
    prefixes = {run_names(pid)[0] for pid in pids}
    nets = {run_names(pid)[1] for pid in pids}
    assert len(prefixes) == len(pids)
    assert len(nets) == len(pids)
