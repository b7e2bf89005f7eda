"""Write-offs: debt given up for collection, by billing (debt.written_off) or by a rule (`emit: {kind: write_off}`);
and recoveries, money that comes in for it later.

Written-off invoices close (status `written_off`): nothing more is sent about them, and the episode ends (its open
handoffs recalled) when nothing else is overdue. What was written off is kept per currency, not per invoice, so
the state stays small: a payment naming a written-off invoice, or money left over after the open invoices, recovers
it first (rules/engine/ledger.py). A recovery reopens nothing.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from rules.engine.arrangements import close_settlements, end_arrangement
from rules.engine.ledger import When, per_currency
from rules.engine.moment import Moment, effective_due
from rules.engine.notices import NoticeIssuer, notice_id
from rules.engine.outcome import Outcome, record
from rules.state import ZERO, AccountState, InvoiceState
from schemas.events import DebtWrittenOff, PaymentReceived
from schemas.notices import InvoiceConcerned, Trigger


def write_off(state: AccountState, invoices: list[InvoiceState], now: datetime) -> None:
    for invoice in invoices:
        invoice.status, invoice.closed_at = "written_off", now
        state.written_off[invoice.currency] = state.written_off.get(invoice.currency, ZERO) + invoice.balance


def targets(state: AccountState, event: DebtWrittenOff) -> list[InvoiceState]:
    """The open invoices a debt.written_off names (absent: every open one)."""
    if event.invoice_ids is None:
        return [inv for inv in state.invoices.values() if inv.status == "open"]
    return [state.invoices[i] for i in dict.fromkeys(event.invoice_ids)
            if i in state.invoices and state.invoices[i].status == "open"]


def debt_written_off(state: AccountState, event: DebtWrittenOff, when: When) -> dict[str, str]:
    """The applier: writes off the named open invoices (absent: every open one). Again, it changes nothing."""
    detail = {"reason": event.reason}
    if event.invoice_ids is not None:
        detail["invoice_ids"] = ",".join(event.invoice_ids)
    written = targets(state, event)
    if not written:
        detail["ignored"] = "nothing open to write off"
        return detail
    write_off(state, written, when.now)
    detail["invoice_ids"] = ",".join(inv.invoice_id for inv in written)
    return detail


class WriteOffs:
    def __init__(self, issuer: NoticeIssuer):
        self.issuer = issuer

    def by_rule(self, out: Outcome, moment: Moment, cause: str, rule_id: str, reason: str, key: str,
                facts: dict[str, object]) -> None:
        """A rule's write-off: the overdue invoices the rule saw (an event rule may see none)."""
        overdue = [invoice for invoice, _, _ in moment.overdue]
        if not overdue:
            record(out, moment.now, "decision.suppressed", rule_id, {"reason": "nothing overdue to write off"})
            return
        write_off(out.state, overdue, moment.now)
        self.announce(out, moment.again(), cause, overdue, reason, rule_id=rule_id, key=key, facts=facts)

    def by_event(self, out: Outcome, moment: Moment, event: DebtWrittenOff, written: list[InvoiceState]) -> None:
        """Billing's write-off of `written` (what `targets` found open before the event was applied)."""
        self.announce(out, moment, event.event_id, written, event.reason, rule_id=None,
                      key=f"write_off|{event.event_id}", facts={})

    def announce(self, out: Outcome, moment: Moment, cause: str, invoices: list[InvoiceState], reason: str, *,
                 rule_id: str | None, key: str, facts: dict[str, object]) -> None:
        """The decision line and the write-off notice to billing; arrangements left with nothing to judge end."""
        state, now = out.state, moment.now
        amounts: dict[str, Decimal] = {}
        for invoice in invoices:
            amounts[invoice.currency] = amounts.get(invoice.currency, ZERO) + invoice.balance
        close_settlements(out, now)
        open_left = any(inv.status == "open" for inv in state.invoices.values())
        for arrangement in state.arrangements.values():
            if arrangement.status not in ("active", "offered"):
                continue
            # Nothing left to judge: none of its invoices is open (a promise names none: none of the account's).
            covered = [state.invoices[i] for i in arrangement.invoice_ids if i in state.invoices]
            if not (any(inv.status == "open" for inv in covered) if arrangement.invoice_ids else open_left):
                end_arrangement(state, arrangement, "cancelled", now)
                record(out, now, "decision.arrangement_cancelled", arrangement.arrangement_id,
                       {"kind": arrangement.kind, "reason": "its debt was written off"})
        detail = {"reason": reason, "written_off": per_currency(amounts),
                  "invoice_ids": ",".join(inv.invoice_id for inv in invoices)}
        if rule_id:
            detail["rule_id"] = rule_id
        record(out, now, "decision.written_off", notice_id(state.account_id, key), detail)
        self.issuer.issue(
            out, moment, cause, kind="write_off", rule_id=rule_id, key=key,
            episode_id=state.episode.episode_id if state.episode else None,
            trigger=Trigger(event_id=cause, at=now), facts=facts,
            invoices=[InvoiceConcerned(invoice_id=inv.invoice_id, currency=inv.currency, amount_due=inv.balance,
                                       due_date=effective_due(inv, moment.outages)) for inv in invoices],
            extra={"written_off": amounts, "reason": reason},
        )

    def recovered(self, out: Outcome, moment: Moment, payment: PaymentReceived, amount: Decimal) -> None:
        """A payment that recovered written-off debt: recorded, and told to finance; it reopens nothing."""
        amounts = {payment.currency: amount}
        key = f"recovery|{payment.payment_id}"
        record(out, moment.now, "decision.recovered", payment.payment_id, {"recovered": per_currency(amounts)})
        self.issuer.issue(
            out, moment, payment.event_id, kind="recovery", rule_id=None, key=key,
            episode_id=out.state.episode.episode_id if out.state.episode else None,
            trigger=Trigger(event_id=payment.event_id, at=moment.now), facts={},
            invoices=[], extra={"paid": amounts},
        )
