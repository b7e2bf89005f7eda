"""What leaves an account's state once no decision can need it, so that the state is as small as the account's
open business, whatever its age. The account's history is on the audit stream, not here.

- event ids: after REDELIVERY_WINDOW of the account's logical time (the latest REDELIVERY_FLOOR stay whatever
  their age): a redelivery within the window changes nothing;
- closed invoices, payments and ended arrangements: RETENTION after they closed, occurred or ended, unless an
  arrangement still in the state covers them (a late adjustment, a refund by cancellation, a late payment that
  keeps a broken promise all work within RETENTION);
- the case file: when its episode ends.
"""
from __future__ import annotations

from datetime import datetime

from rules.state import REDELIVERY_FLOOR, REDELIVERY_WINDOW, RETENTION, AccountState


def remember(state: AccountState, event_id: str, now: datetime) -> bool:
    """Records an event id; False when it is a repeat within the redelivery window at `now` (the account's logical
    time): among the latest REDELIVERY_FLOOR ids, or applied less than REDELIVERY_WINDOW before. An older one is
    forgotten whether or not a newer event pruned it already, so a quiet account forgets as a busy one does."""
    seen = state.seen
    epoch = int(now.timestamp())
    horizon = epoch - REDELIVERY_WINDOW.total_seconds()
    applied = seen.get(event_id)
    if applied is not None:
        if applied >= horizon or event_id in list(seen)[-REDELIVERY_FLOOR:]:
            return False  # and changes nothing, not even what is remembered
        del seen[event_id]
    seen[event_id] = epoch
    while len(seen) > REDELIVERY_FLOOR:
        oldest = next(iter(seen))
        if seen[oldest] >= horizon:
            break
        del seen[oldest]
    return True


def retire(state: AccountState, now: datetime) -> None:
    """Drops what is past its retention. Called before an event is applied and at ticks: what it drops changes no
    decision, so whether an idle account was ticked in between changes nothing either."""
    cutoff = now - RETENTION
    arrangements = state.arrangements
    if arrangements:
        ended = [a for a in arrangements.values() if a.ended_at is not None and a.ended_at < cutoff]
        judged = [a for a in ended if a.status in ("kept", "broken")]
        if judged:
            state.past_arrangement = max(judged, key=lambda a: a.ended_at).status
        for arrangement in ended:
            del arrangements[arrangement.arrangement_id]
    aged = [invoice_id for invoice_id, invoice in state.invoices.items()
            if invoice.closed_at is not None and invoice.closed_at < cutoff]
    if aged:
        covered = {i for a in arrangements.values() for i in a.invoice_ids}
        for invoice_id in aged:
            if invoice_id not in covered:
                del state.invoices[invoice_id]
    if state.payments:
        keep_from = min((a.agreed_at for a in arrangements.values() if a.agreed_at < cutoff), default=cutoff)
        old = [p for p, payment in state.payments.items() if payment.occurred_at < keep_from]
        for payment_id in old:
            del state.payments[payment_id]


def settle_books(state: AccountState, now: datetime) -> None:
    """After an event is applied: when invoices closed or reopened; outside an episode, no case file is kept
    (the event that opens an episode is its first line)."""
    for invoice in state.invoices.values():
        if invoice.status == "open":
            invoice.closed_at = None  # reopened by an adjustment
        elif invoice.closed_at is None:
            invoice.closed_at = now
    if state.episode is None:
        state.case_events.clear()
