"""Arrangements: extensions, promises to pay, installment plans and settlements (rules/engine/settlement.py);
agreed, cancelled, judged at ticks, and judged again when a payment made before a break arrives after it."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Iterator
from zoneinfo import ZoneInfo

from rules.engine.ledger import When
from rules.engine.moment import Calendar, OutageDays, shifted
from rules.engine.outcome import Outcome, record
from rules.state import ZERO, AccountState, ArrangementState, InstallmentState, InvoiceState, PlatformState
from schemas.events import (
    ArrangementCancelled,
    ExtensionAgreed,
    InstallmentsAgreed,
    PaymentReceived,
    PromiseToPayAgreed,
    SettlementAgreed,
)

# Of these kinds one stands at a time: a new one supersedes the one standing.
_ONE_AT_A_TIME = ("promise_to_pay", "settlement")


class Arrangements:
    def __init__(self, calendar: Calendar, currency: str):
        self.calendar = calendar
        self.currency = currency  # an arrangement's unless it names its own

    def agreed(self, state: AccountState,
               event: ExtensionAgreed | PromiseToPayAgreed | InstallmentsAgreed | SettlementAgreed,
               when: When) -> dict[str, str]:
        detail = {"arrangement_id": event.arrangement_id, "kind": event.kind}
        if event.arrangement_id in state.arrangements:
            detail["ignored"] = "arrangement already known"
            return detail
        arrangement = ArrangementState(
            event.arrangement_id, event.kind, event.occurred_at, event.currency or self.currency
        )
        if isinstance(event, ExtensionAgreed):
            arrangement.new_due_date = event.new_due_date
            for invoice in _covered(state, event.invoice_ids):
                invoice.extended_to = event.new_due_date
                invoice.extension_id = event.arrangement_id
                arrangement.invoice_ids.append(invoice.invoice_id)
        elif isinstance(event, PromiseToPayAgreed):
            arrangement.promised_date = event.promised_date
            arrangement.amount = event.amount
        elif isinstance(event, SettlementAgreed):
            covered = [inv for inv in _covered(state, event.invoice_ids) if inv.currency == arrangement.currency]
            if not covered:
                detail["ignored"] = f"no open invoice in {arrangement.currency} to settle"
                return detail
            arrangement.promised_date, arrangement.amount = event.by_date, event.amount
            arrangement.settle = {arrangement.currency: event.amount}
            arrangement.balance = {arrangement.currency: sum((inv.balance for inv in covered), ZERO)}
            arrangement.invoice_ids = [inv.invoice_id for inv in covered]
            offer = state.arrangements.get(event.offer_id) if event.offer_id else None
            if offer is not None and offer.kind == "settlement":
                arrangement.rule_id = offer.rule_id  # the offer was taken up: it counts for the rule that made it
                detail["offer_id"] = offer.arrangement_id
        else:
            arrangement.schedule = [InstallmentState(item.due_date, item.amount) for item in event.schedule]
            for invoice in _covered(state, event.invoice_ids):
                invoice.plan_id = event.arrangement_id
                arrangement.invoice_ids.append(invoice.invoice_id)
        state.arrangements[event.arrangement_id] = arrangement
        return detail

    def supersede(self, out: Outcome, now: datetime, kind: str) -> None:
        """Of the promises to pay (or settlements, offered or agreed) standing at once, the latest stands: the
        others end superseded, without notice and without counting as broken (a collector renegotiated, or an
        offer was accepted on other terms; the old one cannot be kept any more)."""
        state = out.state
        promises = [a for a in state.arrangements.values()
                    if a.kind == kind and a.status in ("active", "offered")]
        if len(promises) < 2:
            return
        newest = max(reversed(promises), key=lambda a: a.agreed_at)  # reversed: of equal times, the later applied
        for promise in promises:
            if promise is not newest:
                end_arrangement(state, promise, "superseded", newest.agreed_at)
                record(out, now, "decision.arrangement_superseded", promise.arrangement_id,
                       {"kind": promise.kind, "superseded_by": newest.arrangement_id})

    def judge(self, out: Outcome, platform: PlatformState, now: datetime) -> Iterator[ArrangementState]:
        """Ends the active arrangements whose day has come; yields each broken one as it breaks, so that what
        the break raises is decided before the next arrangement is judged."""
        state = out.state
        zone = self.calendar.zone_of(state)
        outages = self.calendar.outages(platform, zone)
        today = now.astimezone(zone).date()
        for arrangement in list(state.arrangements.values()):
            if arrangement.status not in ("active", "offered"):
                continue
            verdict = None
            if arrangement.kind == "settlement":
                # Paid in full it was settled when the payment came (Settlements.paid_in_full); not by its day:
                # an offer lapses, an agreement breaks.
                if today > shifted(arrangement.promised_date, outages):
                    verdict = "lapsed" if arrangement.status == "offered" else "broken"
            elif arrangement.kind == "promise_to_pay":
                deadline = shifted(arrangement.promised_date, outages)
                if today > deadline:
                    owes = any(inv.status == "open" and inv.balance > ZERO for inv in state.invoices.values())
                    paid = paid_since(state, arrangement, deadline, zone)
                    verdict = "kept" if paid >= arrangement.amount or not owes else "broken"
            elif arrangement.kind == "extension":
                deadline = shifted(arrangement.new_due_date, outages)
                if today > deadline:
                    unpaid = [i for i in arrangement.invoice_ids
                              if state.invoices[i].status == "open" and state.invoices[i].balance > ZERO]
                    verdict = "broken" if unpaid else "kept"
            else:
                verdict = _judge_plan(state, arrangement, today, zone, outages)
            if verdict is not None:
                end_arrangement(state, arrangement, verdict, now)
                record(out, now, f"decision.arrangement_{verdict}", arrangement.arrangement_id,
                       {"kind": arrangement.kind})
                if verdict == "broken":
                    yield arrangement

    def rejudge(self, out: Outcome, platform: PlatformState, payment: PaymentReceived, now: datetime) -> None:
        """A payment made before an arrangement was judged broken that arrives after the judgement (it crossed
        the midnight tick) is judged again with it: a promise it fulfils is kept after all, a settlement it pays
        is settled unless a newer settlement of the same invoices was agreed since, and an installment plan it
        keeps up to date stands again unless anything else was agreed since."""
        state = out.state
        for arrangement in state.arrangements.values():
            if not (arrangement.status in ("broken", "lapsed")
                    and arrangement.ended_at >= payment.occurred_at >= arrangement.agreed_at):
                continue
            zone = self.calendar.zone_of(state)
            outages = self.calendar.outages(platform, zone)
            reason = {"kind": arrangement.kind, "reason": f"late-arriving payment {payment.payment_id}"}
            if arrangement.kind == "settlement":
                # Paid in full by its day after all (or its invoices paid off by a payment made by then): it stands
                # again, and Settlements.paid_in_full settles it (or close_settlements keeps it). Only a newer
                # settlement of the same invoices took its place.
                deadline = shifted(arrangement.promised_date, outages)
                made_by = payment.occurred_at.astimezone(zone).date() <= deadline
                paid = paid_in_full(state, arrangement, deadline, zone) or (
                    made_by and _paid_off(_invoices_of(state, arrangement)))
                if paid and not _settled_anew(state, arrangement):
                    was = "offered" if arrangement.status == "lapsed" else "active"
                    arrangement.status, arrangement.ended_at = was, None
                    record(out, now, "decision.arrangement_restored", arrangement.arrangement_id, reason)
            elif arrangement.kind == "promise_to_pay":
                deadline = shifted(arrangement.promised_date, outages)
                if paid_since(state, arrangement, deadline, zone) >= arrangement.amount:
                    arrangement.status = "kept"
                    record(out, now, "decision.arrangement_kept", arrangement.arrangement_id, reason)
            elif arrangement.kind == "installments" and not _agreed_since(state, arrangement):
                judged_on = arrangement.ended_at.astimezone(zone).date()
                if _missed_installment(state, arrangement, judged_on, zone, outages)[0] is None:
                    arrangement.status, arrangement.ended_at = "active", None
                    for invoice in (state.invoices[i] for i in arrangement.invoice_ids):
                        if invoice.status == "open":
                            invoice.plan_id, invoice.fell_due = arrangement.arrangement_id, None
                    record(out, now, "decision.arrangement_restored", arrangement.arrangement_id, reason)


def close_settlements(out: Outcome, now: datetime) -> None:
    """A standing settlement none of whose invoices is open any more ends at the event that closed the last: kept
    when the customer paid them off (nothing was left to forgive), cancelled when they were cancelled, credited
    away or written off. Never judged at its day: the customer owes nothing under it."""
    state = out.state
    for settlement in state.arrangements.values():
        if settlement.kind != "settlement" or settlement.status not in ("active", "offered"):
            continue
        covered = _invoices_of(state, settlement)
        if any(inv.status == "open" for inv in covered):
            continue
        if _paid_off(covered):
            end_arrangement(state, settlement, "kept", now)
            record(out, now, "decision.arrangement_kept", settlement.arrangement_id,
                   {"kind": settlement.kind, "reason": "its invoices were paid off"})
        else:
            written = any(inv.status == "written_off" for inv in covered)
            end_arrangement(state, settlement, "cancelled", now)
            record(out, now, "decision.arrangement_cancelled", settlement.arrangement_id, {
                "kind": settlement.kind,
                "reason": "its debt was written off" if written else "its invoices were cancelled"})


def _invoices_of(state: AccountState, arrangement: ArrangementState) -> list[InvoiceState]:
    return [state.invoices[i] for i in arrangement.invoice_ids if i in state.invoices]


def _paid_off(covered: list[InvoiceState]) -> bool:
    """None is open and the customer paid off at least one (an invoice credited down to nothing is not paid off)."""
    return (all(inv.status != "open" for inv in covered)
            and any(inv.status == "paid" and inv.paid > ZERO for inv in covered))


def cancelled(state: AccountState, event: ArrangementCancelled, when: When) -> dict[str, str]:
    detail = {"arrangement_id": event.arrangement_id}
    arrangement = state.arrangements.get(event.arrangement_id)
    if arrangement is None or arrangement.status != "active":
        detail["ignored"] = "no such active arrangement"
    else:
        end_arrangement(state, arrangement, "cancelled", event.occurred_at)
    return detail


def end_arrangement(state: AccountState, arrangement: ArrangementState, status: str, at: datetime) -> None:
    """Ends it with this status; invoices it extended (when cancelled) or carried on a plan are dunned as before."""
    arrangement.status = status  # type: ignore[assignment]
    arrangement.ended_at = at
    if status == "cancelled":
        for invoice in state.invoices.values():
            if invoice.extension_id == arrangement.arrangement_id:
                invoice.extended_to = invoice.extension_id = None
    for invoice in state.invoices.values():
        if invoice.plan_id == arrangement.arrangement_id:
            invoice.plan_id = None


def _covered(state: AccountState, invoice_ids: list[str] | None) -> list[InvoiceState]:
    if invoice_ids is None:
        return [inv for inv in state.invoices.values() if inv.status == "open"]
    return [state.invoices[i] for i in invoice_ids if i in state.invoices and state.invoices[i].status == "open"]


def paid_since(state: AccountState, arrangement: ArrangementState, last_day: date, zone: ZoneInfo,
               currency: str | None = None) -> Decimal:
    """Payments in the currency (default: the arrangement's) from its agreement to the end of last_day (local)."""
    currency = currency or arrangement.currency
    total = ZERO
    for payment in state.payments.values():
        if (payment.currency == currency and payment.occurred_at >= arrangement.agreed_at
                and payment.occurred_at.astimezone(zone).date() <= last_day):
            total += payment.amount
    return total


def paid_in_full(state: AccountState, settlement: ArrangementState, last_day: date, zone: ZoneInfo) -> bool:
    """Whether the payments by the end of last_day reach a settlement's amount in each of its currencies."""
    return all(paid_since(state, settlement, last_day, zone, currency) >= amount
               for currency, amount in settlement.settle.items())


def _agreed_since(state: AccountState, ended: ArrangementState) -> bool:
    return any(other.agreed_at > ended.ended_at for other in state.arrangements.values())


def _settled_anew(state: AccountState, ended: ArrangementState) -> bool:
    """A settlement offered or agreed since `ended` ended that covers any of its invoices."""
    return any(other.kind == "settlement" and other.agreed_at > ended.ended_at
               and not set(other.invoice_ids).isdisjoint(ended.invoice_ids) for other in state.arrangements.values())


def _missed_installment(state: AccountState, plan: ArrangementState, today: date, zone: ZoneInfo,
                        outages: OutageDays | None) -> tuple[date | None, Decimal, Decimal]:
    """The due date of the first installment still short by `today` (None: none), what was paid by then,
    and what the whole schedule comes to."""
    paid = paid_since(state, plan, today, zone)
    owed_so_far = ZERO
    missed = None
    for installment in plan.schedule:
        owed_so_far += installment.amount
        due = shifted(installment.due_date, outages)
        if missed is None and today > due and paid < owed_so_far:
            missed = due
    return missed, paid, owed_so_far


def _judge_plan(state: AccountState, plan: ArrangementState, today: date, zone: ZoneInfo,
                outages: OutageDays | None) -> str | None:
    covered = [state.invoices[i] for i in plan.invoice_ids]
    if all(inv.status != "open" for inv in covered):
        return "kept"
    missed, paid, owed = _missed_installment(state, plan, today, zone, outages)
    if missed is not None:
        # The whole remainder falls due at once: from the missed installment's due date.
        for invoice in covered:
            if invoice.status == "open":
                invoice.fell_due = missed
        return "broken"
    return "kept" if paid >= owed else None
