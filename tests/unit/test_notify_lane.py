"""The urgent lane does not wait on chat or mail: Slack and e-mail sends have queues of their
own, which the urgent worker never reads (issue 24, finding 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.actions.approval import offer_links
from tasks.celery_app import make_celery
from tasks.lanes import Lane, deadline_queue, lane_of_queue, notify_queue, urgent_worker_queues
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.slack_queue import tell_slack

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("priority", ["P0", "P1", "P2", "P3"])
def test_a_slack_message_is_queued_on_a_notify_queue_never_on_the_urgent_lane(
    priority: str,
) -> None:
    sent: list[tuple[str, str]] = []
    rt = Runtime(Settings(), send_task=lambda name, args, queue: sent.append((name, queue)))
    assert tell_slack(rt, {"what": "first", "incident_id": "P1"}, priority)
    assert [queue for _, queue in sent] == [notify_queue("responder", priority)]
    assert sent[0][1] not in urgent_worker_queues("responder").split(",")


@pytest.mark.parametrize("kind", ["desk_alert", "desk_summary", "notify_management"])
def test_a_deadline_that_e_mails_first_is_acted_on_from_a_notify_queue(kind: str) -> None:
    assert deadline_queue("responder", kind, "P0") == "responder-notify-urgent"
    assert deadline_queue("responder", kind, "P3") == "responder-notify"


@pytest.mark.parametrize("kind", ["acknowledge", "respond", "next_update", "desk_call"])
def test_other_deadlines_of_p0_and_p1_stay_on_the_urgent_lane(kind: str) -> None:
    assert deadline_queue("responder", kind, "P1") == "responder-urgent"


def test_the_urgent_worker_reads_actions_and_the_urgent_lane_only() -> None:
    assert urgent_worker_queues("responder") == "responder-actions,responder-urgent"
    compose = yaml.safe_load((PROJECT / "compose.yaml").read_text())
    command = compose["services"]["worker-urgent"]["command"]
    assert command[command.index("--queues") + 1] == urgent_worker_queues("responder")


def test_a_worker_on_every_queue_reads_p0_p1_sends_before_routine_work() -> None:
    queues = [q.name for q in make_celery(Settings()).conf.task_queues]
    assert queues == [
        "responder-actions",
        "responder-urgent",
        "responder-notify-urgent",
        "responder-notify",
        "responder",
    ]


def test_p0_p1_sends_draw_on_the_urgent_share_of_the_budget() -> None:
    assert lane_of_queue("responder", "responder-notify-urgent") is Lane.URGENT
    assert lane_of_queue("responder", "responder-notify") is Lane.ROUTINE


def test_personal_approval_links_are_e_mailed_from_a_notify_queue_never_the_urgent_workers() -> (
    None
):
    sent: list[tuple[str, str]] = []
    rt = Runtime(
        Settings(link_secret=Secret("k")),
        send_task=lambda name, args, queue: sent.append((name, queue)),
    )
    assert offer_links(rt, "PINC1", ["act-1"])
    assert [queue for _, queue in sent] == ["responder-notify-urgent"]
    assert sent[0][1] not in urgent_worker_queues("responder").split(",")
