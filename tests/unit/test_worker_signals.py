"""The worker's start-up: the plot warm-up runs unless the settings turn it off."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from tasks import worker_signals
from tasks.settings import Settings, settings_from_env


@pytest.mark.parametrize(("warm", "drawn"), [(True, 1), (False, 0)])
def test_a_worker_warms_the_plots_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch, warm: bool, drawn: int
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(worker_signals.plots, "warm", lambda: calls.append(None))
    settings = replace(Settings(), warm_plots=warm)
    sender = SimpleNamespace(app=SimpleNamespace(conf=SimpleNamespace(responder_settings=settings)))
    worker_signals._warm_plots(sender=sender)
    assert len(calls) == drawn


def test_warm_plots_is_read_from_the_environment() -> None:
    assert settings_from_env({"RESPONDER_WARM_PLOTS": "0"}).warm_plots is False
    assert settings_from_env({}).warm_plots is True
