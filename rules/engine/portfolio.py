"""An account's standing per currency, for portfolio metrics and aging reports."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from rules.engine.holds import days_past
from rules.engine.moment import OutageDays, dunnable, effective_due
from rules.state import ZERO, AccountState

AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "91+")


def aging_bucket(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due > 90:
        return "91+"
    return AGING_BUCKETS[(days_past_due - 1) // 30 + 1]


@dataclass(slots=True)
class Position:
    """One account's standing in one currency."""

    open_amount: Decimal = ZERO
    overdue_amount: Decimal = ZERO
    days_past_due: int = 0
    aging: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(AGING_BUCKETS, ZERO))


def positions(state: AccountState, today: date, outages: OutageDays | None) -> dict[str, Position]:
    """Aging puts each open invoice in the bucket of its days past due on `today` (local); invoices not being
    dunned (disputed, on a plan in good standing) count as current."""
    result: dict[str, Position] = {}
    for invoice in state.invoices.values():
        if invoice.status != "open" or invoice.balance <= ZERO:
            continue
        position = result.get(invoice.currency)
        if position is None:
            position = result[invoice.currency] = Position()
        days = days_past(effective_due(invoice, outages), today, state.holds) if dunnable(invoice) else 0
        position.open_amount += invoice.balance
        position.aging[aging_bucket(days)] += invoice.balance
        if days >= 1:
            position.overdue_amount += invoice.balance
            position.days_past_due = max(position.days_past_due, days)
    return result
