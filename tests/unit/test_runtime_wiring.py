"""A Runtime is built with what it needs: its task sender is given at construction, never set
afterwards, and the worker's runtime sends through its own Celery app."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.celery_app import make_celery, runtime_of, sender_of
from tasks.runtime import Runtime
from tasks.settings import Settings


def test_a_runtime_sends_tasks_through_the_sender_it_was_built_with() -> None:
    sent: list[tuple[str, list[Any], str]] = []
    rt = Runtime(Settings(), send_task=lambda name, args, queue: sent.append((name, args, queue)))
    assert rt.send_task is not None
    rt.send_task("tasks.x", [1], "q")
    assert sent == [("tasks.x", [1], "q")]


def test_a_runtime_built_without_a_sender_queues_nothing() -> None:
    assert Runtime(Settings()).send_task is None


def test_a_runtimes_sender_cannot_be_replaced_after_it_is_built() -> None:
    rt = Runtime(Settings())
    with pytest.raises(AttributeError):
        rt.send_task = lambda name, args, queue: None  # type: ignore[misc]
    assert rt.send_task is None


def test_the_workers_runtime_is_built_once_per_app_with_a_sender_through_that_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_celery(Settings())
    sent: list[tuple[str, Any, Any]] = []
    monkeypatch.setattr(
        app, "send_task", lambda name, args=None, queue=None: sent.append((name, args, queue))
    )
    rt = runtime_of(app)
    assert runtime_of(app) is rt
    assert rt.send_task is not None
    rt.send_task("tasks.y", ["a"], "responder-notify")
    sender_of(app)("tasks.z", [], "responder")
    assert sent == [("tasks.y", ["a"], "responder-notify"), ("tasks.z", [], "responder")]
