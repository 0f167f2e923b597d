"""Judged again when time changes the answer: an open incident whose priority depends on whether
the market trades is classified again when the market opens or closes.

Pure: the subjects, the policy and the moment are arguments. The market's state is the only
input of the rules that changes with time (`during_market_hours`); business hours decide when a
priority is acted on (tasks held for business hours), never which priority it is, so a business
opening changes no classification and is not a moment to judge again at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from triage.classify import classify, most_severe
from triage.models import Alert, Classification, Incident, Priority
from triage.policy import Policy
from triage.sla import is_market_open, next_market_change

Subject = Alert | Incident


class Change(StrEnum):
    """What judging an incident again does to it."""

    SAME = "same"  # the priority holds
    RISE = "rise"  # acted on at once
    FALL = "fall"  # applied: no person has acknowledged it
    FALL_HELD = "fall-held"  # not applied: a person acknowledged it and decides


@dataclass(frozen=True)
class Judgement:
    """The priority an incident had, the one it has now, and what is done about it."""

    was: Priority
    now: Classification
    change: Change
    market_open: bool  # the market's state at the moment of judging


def judge(subjects: Sequence[Subject], policy: Policy, at: datetime) -> Classification | None:
    """Return the most severe classification of the subjects still firing at `at`; None if none."""
    return most_severe(classify(subject, policy, at) for subject in subjects)


def next_judgement(subjects: Sequence[Subject], policy: Policy, now: datetime) -> datetime | None:
    """Return the next market open or close after `now` when the subjects' priority changes then.

    None when their priority is the same whether the market trades or not: nothing to judge
    again. The market has two states; `now` shows one and the next change the other.
    """
    if not subjects:
        return None
    _, change = next_market_change(now, policy.market_hours)
    before, after = judge(subjects, policy, now), judge(subjects, policy, change)
    if before is None or after is None or before.priority is after.priority:
        return None
    return change


def decide(was: Priority, now: Classification, acknowledged: bool, market_open: bool) -> Judgement:
    """Return what judging again does: a rise at once, a fall only while nobody acknowledged.

    A person who acknowledged an incident has judged it: the responder never lowers it under
    them, it says what the priority would now be.
    """
    if now.priority.rank < was.rank:
        change = Change.RISE
    elif now.priority.rank > was.rank:
        change = Change.FALL_HELD if acknowledged else Change.FALL
    else:
        change = Change.SAME
    return Judgement(was, now, change, market_open)


def market_open_at(at: datetime, policy: Policy) -> bool:
    """Return True when the market trades at `at` (the cause the note names)."""
    return is_market_open(at, policy.market_hours)
