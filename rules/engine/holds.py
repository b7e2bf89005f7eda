"""Days past due with holds: local days on which a breathing space or hardship flag stopped the clock.

A hold starts counting the local day after the flag arrived (that day itself still counts) and runs through the
day it ended: the day of the unflag, or the flag's `until`. After it the clock resumes where it stopped: an
invoice's days past due are its calendar days past due minus the held days after its due date. A ruleset with
`holds: {after: reage}` re-ages instead: what was overdue when the hold ended falls due on its last day, so the
account is current that day and starts a new episode from day 1 the next (Fineract's re-ageing).
"""
from __future__ import annotations

from datetime import date, timedelta

from rules.state import Hold


def days_past(due: date, today: date, holds: list[Hold]) -> int:
    """Days past due on `today` of an invoice effectively due on `due`, after the holds."""
    held = 0
    for hold in holds:
        if hold.reage and hold.last is not None and due < hold.last <= today:
            due, held = hold.last, 0  # re-aged: earlier holds no longer matter
            continue
        first = max(hold.first, due + timedelta(days=1))
        last = today if hold.last is None or hold.last > today else hold.last
        if last >= first:
            held += (last - first).days + 1
    return (today - due).days - held
