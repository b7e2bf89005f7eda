"""Balances: invoices, payments and credit, and the appliers of the account events that are not arrangements.

An applier changes the state and returns the detail for the event's audit line ("ignored" when the event is
moot: a repeat, or about something unknown)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, NamedTuple

from rules.engine.contact import customer_hours, describe_hours
from rules.engine.moment import OutageDays, effective_due
from rules.engine.retention import remember
from rules.state import ZERO, AccountState, InvoiceState, PaymentRecord
from schemas.events import (
    AccountUpdated,
    DisputeOpened,
    DisputeResolved,
    InvoiceAdjusted,
    InvoiceCancelled,
    InvoiceIssued,
    PaymentFailed,
    PaymentReceived,
)


class When(NamedTuple):
    """When an event is applied: the account's logical time (the later of the event's and the clock), and the
    platform's outages in its local days (money not meant for one invoice pays the oldest effective due first)."""

    now: datetime
    outages: OutageDays | None


Applier = Callable[[AccountState, Any, When], dict[str, str]]


def money(value: Decimal) -> str:
    return format(value, "f")


def per_currency(amounts: dict[str, Decimal]) -> str:
    """Amounts for an audit line: "12.50 CNY, 3.00 USD"."""
    return ", ".join(f"{money(amount)} {currency}" for currency, amount in sorted(amounts.items()))


# Closed for good by a settlement or a write-off: a later adjustment or cancellation changes nothing.
_DECIDED = ("written_off", "settled")


def invoice_issued(state: AccountState, event: InvoiceIssued, when: When) -> dict[str, str]:
    detail = {"invoice_id": event.invoice_id, "amount": money(event.amount), "currency": event.currency,
              "due_date": event.due_date.isoformat()}
    if event.invoice_id in state.invoices:
        detail["ignored"] = "invoice already known"
        return detail
    invoice = InvoiceState(event.invoice_id, event.currency, event.amount, ZERO, event.due_date, event.occurred_at)
    state.invoices[event.invoice_id] = invoice
    credit = state.credit.pop(event.currency, ZERO)
    if credit:
        _allocate(state, event.currency, credit, event.invoice_id, when.outages)
    _close_if_settled(invoice)
    return detail


def invoice_adjusted(state: AccountState, event: InvoiceAdjusted, when: When) -> dict[str, str]:
    detail = {"invoice_id": event.invoice_id, "amount": money(event.amount)}
    invoice = state.invoices.get(event.invoice_id)
    if invoice is None or invoice.status == "cancelled":
        detail["ignored"] = "unknown or cancelled invoice"
        return detail
    if invoice.status in _DECIDED:
        detail["ignored"] = f"invoice {invoice.status.replace('_', ' ')}"
        return detail
    invoice.amount = event.amount
    if invoice.paid > invoice.amount:
        excess = invoice.paid - invoice.amount
        invoice.paid = invoice.amount
        _allocate(state, invoice.currency, excess, None, when.outages)
    if invoice.balance > ZERO:
        invoice.status = "open"
    _close_if_settled(invoice)
    return detail


def invoice_cancelled(state: AccountState, event: InvoiceCancelled, when: When) -> dict[str, str]:
    detail = {"invoice_id": event.invoice_id}
    invoice = state.invoices.get(event.invoice_id)
    if invoice is None or invoice.status == "cancelled":
        detail["ignored"] = "unknown or already cancelled invoice"
        return detail
    if invoice.status in _DECIDED:
        detail["ignored"] = f"invoice {invoice.status.replace('_', ' ')}"
        return detail
    invoice.status = "cancelled"
    refund, invoice.paid = invoice.paid, ZERO
    if refund:
        _allocate(state, invoice.currency, refund, None, when.outages)
    return detail


def payment_received(state: AccountState, event: PaymentReceived, when: When) -> dict[str, str]:
    detail = {"payment_id": event.payment_id, "amount": money(event.amount), "currency": event.currency}
    if event.invoice_id:
        detail["invoice_id"] = event.invoice_id
    if event.payment_id in state.payments:
        detail["ignored"] = "payment already recorded"
        return detail
    state.payments[event.payment_id] = PaymentRecord(event.currency, event.amount, event.occurred_at)
    recovered = _allocate(state, event.currency, event.amount, event.invoice_id, when.outages, recover=True)
    if recovered:
        detail["recovered"] = money(recovered)
    return detail


def payment_failed(state: AccountState, event: PaymentFailed, when: When) -> dict[str, str]:
    detail = {"payment_id": event.payment_id, "attempt": str(event.attempt), "amount": money(event.amount),
              "currency": event.currency, "reason": event.reason}
    # A retry is a new attempt; the same attempt again (a re-sent failure) within the redelivery window is moot.
    if not remember(state, f"failed:{event.payment_id}:{event.attempt}", when.now):
        detail["ignored"] = "payment attempt already failed"
    return detail


def dispute(state: AccountState, event: DisputeOpened | DisputeResolved, when: When) -> dict[str, str]:
    detail = {"invoice_id": event.invoice_id}
    invoice = state.invoices.get(event.invoice_id)
    if invoice is None:
        detail["ignored"] = "unknown invoice"
    else:
        invoice.disputed = isinstance(event, DisputeOpened)
    return detail


def account_updated(state: AccountState, event: AccountUpdated, when: When) -> dict[str, str]:
    detail: dict[str, str] = {}
    if event.risk_tier is not None:
        state.risk_tier = detail["risk_tier"] = event.risk_tier
    if event.timezone is not None:
        state.timezone = detail["timezone"] = event.timezone
    if event.channels is not None:
        state.channels = list(event.channels)
        if state.unreachable:  # a channel given anew is reachable again
            state.unreachable = [channel for channel in state.unreachable if channel not in event.channels]
        detail["channels"] = ",".join(event.channels)
    if event.opted_out_channels is not None:
        state.opted_out = list(event.opted_out_channels)
        detail["opted_out_channels"] = ",".join(event.opted_out_channels)
    if event.score is not None:
        state.score = event.score
        detail["score"] = str(event.score)
    if event.contact_hours is not None:  # the customer's request replaces the one before; {} drops it
        state.contact_hours = customer_hours(event.contact_hours)
        detail["contact_hours"] = describe_hours(state.contact_hours) or "none"
    return detail


APPLIERS: dict[type, Applier] = {
    InvoiceIssued: invoice_issued, InvoiceAdjusted: invoice_adjusted, InvoiceCancelled: invoice_cancelled,
    PaymentReceived: payment_received, PaymentFailed: payment_failed, DisputeOpened: dispute,
    DisputeResolved: dispute, AccountUpdated: account_updated,
}


def _close_if_settled(invoice: InvoiceState) -> bool:
    if invoice.status == "open" and invoice.balance <= ZERO:
        invoice.status = "paid"
        return True
    return False


def _allocate(state: AccountState, currency: str, amount: Decimal, invoice_id: str | None,
              outages: OutageDays | None, recover: bool = False) -> Decimal:
    """Pays the named invoice first, then the oldest effective due date (a broken plan's, an extension's, moved by
    outages: the most overdue first); what is left becomes credit for later invoices. A payment (`recover`) first
    recovers written-off debt when it names a written-off invoice, and before becoming credit otherwise. Returns
    what it recovered."""
    named = state.invoices.get(invoice_id) if invoice_id else None
    recovered = ZERO
    if recover and named is not None and named.status == "written_off" and named.currency == currency:
        recovered = _recover(state, currency, amount)
        amount -= recovered
    if named is not None and named.status == "open" and named.currency == currency:
        amount = _pay(state, named, amount)
    if amount > ZERO:  # most payments settle the invoice they name: the others are looked at only if not
        oldest_first = [inv for inv in state.invoices.values() if inv is not named and inv.status == "open"
                        and not inv.disputed and inv.currency == currency]
        oldest_first.sort(key=lambda inv: (effective_due(inv, outages), inv.issued_at, inv.invoice_id))
        for invoice in oldest_first:
            if amount <= ZERO:
                break
            amount = _pay(state, invoice, amount)
    if recover and amount > ZERO and currency in state.written_off:
        more = _recover(state, currency, amount)
        recovered += more
        amount -= more
    if amount > ZERO:
        state.credit[currency] = state.credit.get(currency, ZERO) + amount
    return recovered


def _recover(state: AccountState, currency: str, amount: Decimal) -> Decimal:
    """Takes up to `amount` off the account's written-off debt in the currency; returns what it took."""
    outstanding = state.written_off.get(currency, ZERO)
    share = min(amount, outstanding)
    if share >= outstanding:
        state.written_off.pop(currency, None)
    else:
        state.written_off[currency] = outstanding - share
    return share


def _pay(state: AccountState, invoice: InvoiceState, amount: Decimal) -> Decimal:
    """Puts as much of amount on the invoice as it owes; returns the rest."""
    share = min(amount, invoice.balance)
    invoice.paid += share
    if _close_if_settled(invoice):
        state.settled_invoices += 1
    return amount - share
