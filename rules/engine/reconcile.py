"""Reconciliation against billing: `account.statement` is billing's book of record for the account at `as_of`.

A current statement (as_of not before the latest balance event the account applied, `books_at`) is taken as it
is: an invoice the engine does not know is added (amount due, due date; issued at as_of), one of its open invoices
the statement lacks is closed as paid (a payment event that never arrived), an amount due or due date that
differs is corrected, an invoice the engine holds paid or cancelled that billing shows open is reopened, and the
credit per currency (when given) is set. Invoices the engine wrote off or settled are its own decisions: a
statement still showing them open is recorded (`decided`) and changes nothing.

A stale statement (as_of before `books_at`) cannot tell which differences the later events explain: it adds only
invoices the engine never heard of (no later event can have named them), ignores what changed after as_of
(invoices issued or closed since), and records every other difference as `stale` without applying it. A
statement not later than one already applied (a repeat, a replay) is ignored. Every difference is on the audit
topic as `decision.reconciled`, items per kind separated by "; ".
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from rules.engine.ledger import When, money
from rules.engine.outcome import Outcome, record
from rules.state import ZERO, AccountState, InvoiceState
from schemas.events import AccountStatement, InputEvent

DIFFERENCE_KINDS = ("added", "closed", "corrected", "reopened", "credit", "decided", "stale")
# Events that change balances: a statement is stale when one of them occurred after its as_of.
_BOOKS = ("invoice.", "payment.received", "arrangement.", "dispute.", "debt.")


def note_books(state: AccountState, event: InputEvent) -> None:
    if event.type.startswith(_BOOKS) and (state.books_at is None or event.occurred_at > state.books_at):
        state.books_at = event.occurred_at


def statement(state: AccountState, event: AccountStatement, when: When) -> dict[str, str]:
    """The applier: brings the state to billing's view; the differences go into the detail, per kind."""
    detail = {"as_of": event.as_of.isoformat(), "invoices": str(len(event.invoices))}
    if state.statement_at is not None and event.as_of <= state.statement_at:
        detail["ignored"] = f"a statement as of {state.statement_at.isoformat()} was applied already"
        return detail
    state.statement_at = event.as_of
    stale = state.books_at is not None and event.as_of < state.books_at
    found: dict[str, list[str]] = {}

    def differ(kind: str, text: str) -> None:
        found.setdefault("stale" if stale and kind not in ("added", "decided") else kind, []).append(text)

    billed = {}
    for line in event.invoices:
        billed[line.invoice_id] = line
        invoice = state.invoices.get(line.invoice_id)
        if invoice is None:
            state.invoices[line.invoice_id] = InvoiceState(line.invoice_id, line.currency, line.amount_due, ZERO,
                                                           line.due_date, event.as_of)
            differ("added", f"{line.invoice_id} {money(line.amount_due)} {line.currency} due {line.due_date}")
            continue
        if invoice.status in ("written_off", "settled"):
            differ("decided", f"{invoice.invoice_id} {invoice.status.replace('_', ' ')} here, open at billing")
            continue
        if stale and invoice.closed_at is not None and invoice.closed_at > event.as_of:
            continue  # closed after as_of: billing had not seen that yet
        if invoice.status != "open":
            differ("reopened", f"{invoice.invoice_id} {invoice.status} here, {money(line.amount_due)} due at billing")
            if not stale:
                if invoice.status == "cancelled":
                    invoice.paid = ZERO
                invoice.status, invoice.closed_at = "open", None
                _owe(invoice, line.amount_due)
            continue
        if invoice.balance != line.amount_due:
            differ("corrected", f"{invoice.invoice_id} amount due {money(invoice.balance)} -> "
                                f"{money(line.amount_due)}")
            if not stale:
                _owe(invoice, line.amount_due)
                if invoice.balance <= ZERO:
                    _close(state, invoice, when.now)
        if invoice.due_date != line.due_date:
            differ("corrected", f"{invoice.invoice_id} due date {invoice.due_date} -> {line.due_date}")
            if not stale:
                invoice.due_date = line.due_date
    for invoice in list(state.invoices.values()):
        if invoice.status != "open" or invoice.invoice_id in billed:
            continue
        if stale and invoice.issued_at > event.as_of:
            continue  # issued after as_of: billing's statement could not have it
        differ("closed", f"{invoice.invoice_id} {money(invoice.balance)} {invoice.currency} open here, settled at "
                         "billing")
        if not stale:
            _close(state, invoice, when.now)
    if event.credit is not None:
        for currency in sorted(set(event.credit) | set(state.credit)):
            ours, theirs = state.credit.get(currency, ZERO), event.credit.get(currency, ZERO)
            if ours != theirs:
                differ("credit", f"{currency} {money(ours)} -> {money(theirs)}")
                if not stale:
                    if theirs:
                        state.credit[currency] = theirs
                    else:
                        state.credit.pop(currency, None)
    if stale:
        detail["stale"] = f"balance events up to {state.books_at.isoformat()} applied since as_of"
    for kind in DIFFERENCE_KINDS:
        if kind in found:
            detail[f"difference.{kind}"] = "; ".join(found[kind])
    return detail


def announce(out: Outcome, now: datetime, event: AccountStatement, detail: dict[str, str]) -> None:
    """The decision line: what differed (moved there from the event's own line)."""
    differences = {key.removeprefix("difference."): detail.pop(key) for key in list(detail)
                   if key.startswith("difference.")}
    if differences:
        record(out, now, "decision.reconciled", event.event_id, {"as_of": detail["as_of"], **differences})


def _owe(invoice: InvoiceState, due: Decimal) -> None:
    """Billing says the invoice owes `due`: what was paid stays paid, the total follows."""
    if due > invoice.amount:
        invoice.amount = invoice.paid + due
    else:
        invoice.paid = invoice.amount - due


def _close(state: AccountState, invoice: InvoiceState, now: datetime) -> None:
    """Paid off at billing (stamped closed after the event, as a payment's invoice is: retention.settle_books)."""
    invoice.paid, invoice.status = invoice.amount, "paid"
    state.settled_invoices += 1
