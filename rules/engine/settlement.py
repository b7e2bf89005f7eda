"""Settlements: part of the debt accepted in full payment, offered by a rule or agreed by a collector or billing.

A rule's offer (`emit: {kind: offer, settle: ...}`) is sent like a reminder; when it goes, it becomes a settlement
in the state with status `offered` and the offer's notice_id as its id, covering the overdue invoices. An
arrangement.agreed of kind settlement is one too (status `active`); naming the offer as offer_id, it takes the
offer's place. Either is paid when the payments in each of its currencies, from when it was made to the end of its
pay_by day (the customer's time zone), reach its amounts: the covered invoices close (status `settled`), what they
still owed is written off as the discount, and a settlement notice goes to billing. The arrangements machinery
(rules/engine/arrangements.py) judges the rest: by its day unpaid, an offer lapses and an agreement breaks.
While one stands, time rules wait, as for a promise to pay.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from rules.engine.arrangements import end_arrangement, paid_in_full, paid_since
from rules.engine.ledger import per_currency
from rules.engine.moment import Calendar, Moment, effective_due, shifted
from rules.engine.notices import NoticeIssuer
from rules.engine.outcome import Outcome, record
from rules.model import Rule
from rules.state import ZERO, AccountState, ArrangementState, InvoiceState, PlatformState
from schemas.notices import InvoiceConcerned, SettlementTerms, Trigger

# ISO 4217 minor units that are not 2: an offer's percent is rounded up to the currency's smallest unit.
_MINOR_DIGITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
                     "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-_MINOR_DIGITS.get(currency, 2))


def settlement_standing(state: AccountState) -> bool:
    """One settlement, offered or agreed, stands at a time."""
    return any(a.kind == "settlement" and a.status in ("active", "offered") for a in state.arrangements.values())


def offer(state: AccountState, moment: Moment, rule: Rule, offer_id: str, currency: str) -> ArrangementState | None:
    """The settlement a rule offers now: a percent of each currency's overdue balance (rounded up to its minor
    unit), or a fixed amount for the overdue invoices in the rule's currency. None when there is nothing to offer:
    nothing overdue, or a fixed amount not below what is owed. (While a settlement stands none is made: delivery
    withdraws the offer until time rules resume.)"""
    settle = rule.emit.settle
    covered = [inv for inv, _, _ in moment.overdue if settle.percent is not None or inv.currency == currency]
    balance: dict[str, Decimal] = {}
    for invoice in covered:
        balance[invoice.currency] = balance.get(invoice.currency, ZERO) + invoice.balance
    if settle.percent is not None:
        amounts = {c: (owed * settle.percent / 100).quantize(minor_unit(c), ROUND_CEILING)
                   for c, owed in balance.items()}
    elif currency in balance and settle.amount < balance[currency]:
        amounts = {currency: settle.amount}
    else:
        return None
    if not amounts:
        return None
    first = next(iter(amounts))
    return ArrangementState(
        offer_id, "settlement", moment.now, first, status="offered", invoice_ids=[inv.invoice_id for inv in covered],
        promised_date=moment.today + timedelta(days=settle.valid_days), settle=amounts, balance=balance,
        rule_id=rule.id,
    )


def covered(state: AccountState, settlement: ArrangementState, moment: Moment) -> list[InvoiceConcerned]:
    """The invoices a settlement covers, with what each owes now."""
    invoices = (state.invoices[i] for i in settlement.invoice_ids if i in state.invoices)
    return [InvoiceConcerned(invoice_id=inv.invoice_id, currency=inv.currency, amount_due=inv.balance,
                             due_date=effective_due(inv, moment.outages)) for inv in invoices]


def terms(settlement: ArrangementState, time_zone: str) -> SettlementTerms:
    return SettlementTerms(settlement_id=settlement.arrangement_id, amount=settlement.settle,
                           balance=settlement.balance, pay_by=settlement.promised_date, time_zone=time_zone)


@dataclass(slots=True)
class Settled:
    """A settlement paid in full: what was paid under it, and the invoices it closed with what each still owed."""

    settlement: ArrangementState
    paid: dict[str, Decimal]
    closed: list[tuple[InvoiceState, Decimal]]


class Settlements:
    def __init__(self, calendar: Calendar, issuer: NoticeIssuer):
        self.calendar = calendar
        self.issuer = issuer

    def paid_in_full(self, state: AccountState, platform: PlatformState, now: datetime) -> list[Settled]:
        """Settles the standing settlements whose payments have reached their amounts (after a payment)."""
        zone = self.calendar.zone_of(state)
        outages = self.calendar.outages(platform, zone)
        done = []
        for settlement in state.arrangements.values():
            if settlement.kind != "settlement" or settlement.status not in ("active", "offered"):
                continue
            last_day = shifted(settlement.promised_date, outages)
            if not paid_in_full(state, settlement, last_day, zone):
                continue
            closed = []
            for invoice in (state.invoices.get(i) for i in settlement.invoice_ids):
                if invoice is not None and invoice.status == "open":
                    closed.append((invoice, invoice.balance))
                    invoice.status, invoice.closed_at = "settled", now
            end_arrangement(state, settlement, "kept", now)
            paid = {c: paid_since(state, settlement, last_day, zone, c) for c in settlement.settle}
            done.append(Settled(settlement, paid, closed))
        return done

    def announce(self, out: Outcome, moment: Moment, cause: str, settled: Settled) -> None:
        """The decision line and the settlement notice to billing: what was paid, what was written off. Paid
        without a discount (the covered invoices were paid off), it was simply kept."""
        state, settlement = out.state, settled.settlement
        if not settled.closed:
            record(out, moment.now, "decision.arrangement_kept", settlement.arrangement_id,
                   {"kind": settlement.kind})
            return
        discount: dict[str, Decimal] = {}
        for invoice, owed in settled.closed:
            discount[invoice.currency] = discount.get(invoice.currency, ZERO) + owed
        record(out, moment.now, "decision.settled", settlement.arrangement_id, {
            "paid": per_currency(settled.paid), "written_off": per_currency(discount),
            "invoice_ids": ",".join(invoice.invoice_id for invoice, _ in settled.closed),
            **({"rule_id": settlement.rule_id} if settlement.rule_id else {}),
        })
        self.issuer.issue(
            out, moment, cause, kind="settlement", rule_id=settlement.rule_id,
            key=f"settled|{settlement.arrangement_id}", episode_id=state.episode.episode_id if state.episode else None,
            trigger=Trigger(event_id=cause, at=moment.now), facts={},
            invoices=[InvoiceConcerned(invoice_id=inv.invoice_id, currency=inv.currency, amount_due=owed,
                                       due_date=effective_due(inv, moment.outages)) for inv, owed in settled.closed],
            extra={"settlement": terms(settlement, moment.local.tzinfo.key), "paid": settled.paid,
                   "written_off": discount, "reason": "settlement"},
        )
