"""Behaviour facts: how the account has paid, kept as bounded aggregates as it lives (not history).

- `episodes_12m`: delinquency episodes started in the last 365 local days (the current one included);
- `days_to_cure_last`: local days from the start to the end of the last episode that ended (absent: none yet);
- `broken_arrangements`: arrangements broken, ever (one a late payment kept or restored does not count);
- `paid_on_time`: the percent (0-100, rounded) of invoices paid off on or before their effective due date, of
  those paid off since the state began keeping it (absent: none yet);
- `score`: the number billing or a risk system last sent in `account.updated` (absent: none).
Facts a ruleset never reads are not worked out (Calendar.behaviour), so its notices do not show them.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable

from rules.engine.holds import days_past
from rules.engine.outcome import Outcome
from rules.state import AccountState, InvoiceState

FACTS = ("episodes_12m", "days_to_cure_last", "broken_arrangements", "paid_on_time", "score")
YEAR = timedelta(days=365)


def facts(state: AccountState, today: date) -> dict[str, Any]:
    found = {"episodes_12m": sum(1 for start in state.episode_starts if today - start < YEAR),
             "broken_arrangements": state.broken_arrangements}
    if state.last_cure_days is not None:
        found["days_to_cure_last"] = state.last_cure_days
    if state.invoices_paid:
        found["paid_on_time"] = round(100 * state.paid_on_time / state.invoices_paid)
    if state.score is not None:
        found["score"] = state.score
    return found


def paid(state: AccountState, today: date, due_of: Callable[[InvoiceState], date]) -> None:
    """Invoices paid off by the event just applied (not yet stamped closed): on time or late."""
    for invoice in state.invoices.values():
        if invoice.status == "paid" and invoice.closed_at is None:
            state.invoices_paid += 1
            if days_past(due_of(invoice), today, state.holds) <= 0:
                state.paid_on_time += 1


def observe(out: Outcome, today: date, start: int = 0) -> int:
    """Episodes started and ended, and arrangements broken or kept after all, as the step's audit lines from
    `start` say; returns where the next look starts (the engine looks before rules fire, and at the end)."""
    state = out.state
    for line in out.audit[start:]:
        what = line.what
        if what == "episode.started":
            state.episode_starts = [start for start in state.episode_starts if today - start < YEAR] + [today]
        elif what == "episode.ended" and state.episode_starts:
            state.last_cure_days = (today - state.episode_starts[-1]).days
        elif what == "decision.arrangement_broken":
            state.broken_arrangements += 1
        elif what in ("decision.arrangement_restored", "decision.arrangement_kept") and "reason" in line.detail:
            arrangement = state.arrangements.get(line.id)  # judged again by a late payment: not broken after all
            if arrangement is not None and arrangement.status != "offered" and state.broken_arrangements:
                state.broken_arrangements -= 1
    return len(out.audit)
