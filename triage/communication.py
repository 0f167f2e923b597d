"""Who hears of an incident beside PagerDuty, and when: the runbook's External Communication.

Pure: the policy, the priority and the moments are arguments. The trading desk hears of P0/P1
incidents raised while the market trades (an e-mail at once, a summary after resolution) and is
called when the trading collector finds a critical trading impact; management hears of P0/P1
incidents on the SLA clock's `notify_management` deadline and of P2/P3 in one summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from triage.models import Priority
from triage.policy import Policy, SlackPolicy
from triage.sla import is_market_open

DESK_ALERT = "desk_alert"  # the trading desk's e-mail at once
DESK_SUMMARY = "desk_summary"  # its summary after resolution
DESK_CALL = "desk_call"  # the phone call: a PagerDuty responder request
MANAGEMENT = "management"  # management's e-mail on the notify_management deadline
MANAGEMENT_SUMMARY = "management_summary"  # the P2/P3 next-business-day summary


def desk_told(priority: Priority | str, triggered_at: datetime, policy: Policy) -> bool:
    """Return True when the trading desk hears of an incident: "Immediate notification for
    P0/P1 incidents during market hours", and an address to tell it at."""
    desk = policy.communication.trading_desk
    return (
        bool(desk.email)
        and Priority(priority) in desk.notify
        and is_market_open(triggered_at, policy.market_hours)
    )


def recipients(kind: str, priority: Priority | str, policy: Policy) -> tuple[str, ...]:
    """Return the addresses an e-mail of `kind` about an incident of `priority` goes to."""
    communication = policy.communication
    if kind in (DESK_ALERT, DESK_SUMMARY):
        desk = communication.trading_desk
        return desk.email if Priority(priority) in desk.notify else ()
    if kind == MANAGEMENT:
        cto = communication.cto
        # The runbook's "CTO: [Phone - P0 Only]": management's notice of a P0 reaches the CTO too.
        if cto is not None and Priority(priority) in cto.priorities:
            return communication.management.email + cto.email
        return communication.management.email
    if kind == MANAGEMENT_SUMMARY:
        management = communication.management
        return management.email if management.summary else ()
    raise ValueError(f"no e-mail of kind {kind!r}")


@dataclass(frozen=True)
class TradingImpact:
    """What the trading collector found about trading: open positions and failing orders."""

    open_positions: int = 0
    failed_orders: int = 0
    reconciliation_failed: bool = False
    checked: bool = False  # the trading collector ran and read at least one endpoint
    # The positions endpoint answered: without it, positions are unknown, never "none".
    positions_read: bool = False
    ran: bool = False  # the trading collector ran (even when no endpoint answered)

    def reasons(self) -> list[str]:
        """Return the impacts found, by the names the policy's `call.when` uses."""
        found = []
        if self.open_positions:
            found.append("positions_at_risk")
        elif not self.positions_read:
            found.append("positions_unknown")
        if self.failed_orders:
            found.append("orders_failing")
        return found

    def describe(self) -> str:
        """Say the impact in a phrase: `3 open positions at risk, 2 orders failing`."""
        parts = []
        if self.open_positions:
            parts.append(f"{self.open_positions} open positions at risk")
        if self.failed_orders:
            parts.append(f"{self.failed_orders} orders failing")
        if self.reconciliation_failed:
            parts.append("position reconciliation failing")
        if not self.checked and not self.ran:
            return "not checked: open positions unknown"
        if not self.positions_read:
            parts.append("open positions unknown (unreadable)")
        return ", ".join(parts) or "no trading impact found"


def trading_impact(entries: Iterable[Mapping[str, Any]]) -> TradingImpact:
    """Read the trading collector's manifest entry (its `endpoints` table) for the impact."""
    for entry in entries:
        if entry.get("name") != "trading":
            continue
        rows = (entry.get("tables") or {}).get("endpoints") or []
        read = [r for r in rows if isinstance(r, Mapping) and r.get("http_status") == 200]
        return TradingImpact(
            open_positions=sum(int(r.get("open_positions") or 0) for r in read),
            failed_orders=sum(int(r.get("failed_orders") or 0) for r in read),
            reconciliation_failed=any(
                r.get("endpoint") == "reconcile" and r.get("problem") for r in rows
            ),
            checked=bool(read),
            positions_read=any(r.get("endpoint") == "positions" for r in read),
            ran=True,
        )
    return TradingImpact()


def desk_call_reasons(
    impact: TradingImpact, priority: Priority | str, now: datetime, policy: Policy
) -> list[str]:
    """Return why the trading desk is called for this impact (nothing: no call).

    "Phone call for critical trading impacts": for the priorities the desk is told of, when the
    impact is one the policy's `call.when` names, and while the market trades unless the policy
    says to call outside market hours too.
    """
    desk = policy.communication.trading_desk
    call = desk.call
    if call is None or Priority(priority) not in desk.notify:
        return []
    if call.market_hours_only and not is_market_open(now, policy.market_hours):
        return []
    return [reason for reason in impact.reasons() if reason in call.when]


def channels_for(policy: SlackPolicy, priority: str, market_open: bool) -> dict[str, str]:
    """Return which channels hear of an incident: {"incidents"|"trading"|"dev": channel}."""
    chosen = {}
    for kind, channel in (
        ("incidents", policy.incidents),
        ("trading", policy.trading),
        ("dev", policy.dev),
    ):
        if channel is not None and channel.wants(priority, market_open):
            chosen[kind] = channel.channel
    return chosen
