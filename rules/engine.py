"""The dunning engine: a deterministic step (account state, event) -> notices, with no I/O and no wall clock.

Time enters only through clock ticks. Time rules are judged at ticks; events change balances and fire event
rules. The offline simulator and the live worker both call `Engine.step`, so the simulator is the oracle.
`step` updates the state it is given in place (callers own their state) and returns the notices it released.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from rules.model import ARRANGEMENT_BROKEN, Rule, Ruleset
from rules.state import (
    JOURNAL_LIMIT,
    SEEN_EVENTS_LIMIT,
    ZERO,
    AccountState,
    ArrangementState,
    Episode,
    InstallmentState,
    InvoiceState,
    JournalEntry,
    Outage,
    Pending,
    PaymentRecord,
    PlatformState,
)
from schemas.events import (
    AccountUpdated,
    ArrangementCancelled,
    ClockTick,
    DisputeOpened,
    DisputeResolved,
    ExtensionAgreed,
    InputEvent,
    InstallmentsAgreed,
    InvoiceAdjusted,
    InvoiceCancelled,
    InvoiceIssued,
    PaymentFailed,
    PaymentReceived,
    PlatformOutage,
    PromiseToPayAgreed,
)
from schemas.notices import CaseFile, InvoiceConcerned, Notice, Trigger

CASE_FILE_LIMIT = 50
_AT_ONCE = datetime.min.replace(tzinfo=ZoneInfo("UTC"))  # a wakeup any tick satisfies
WEEK_DAYS = 7
# Urgent notices go before reminders when limits leave too little room.
_KIND_PRIORITY = {"urgent_notice": 0, "reminder": 1}


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


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


Overdue = list[tuple[InvoiceState, date, int]]  # (invoice, effective due date, days past due)


class _Moment:
    """One account at one instant, as every decision of one evaluation sees it, worked out once.

    Built after the balances have changed (event applied, arrangements judged); nothing after that point
    changes which invoices are overdue, so the decisions, the notices and their facts all share it."""

    __slots__ = ("platform", "now", "zone", "local", "today", "overdue", "base")

    def __init__(self, platform: PlatformState, now: datetime, zone: ZoneInfo, local: datetime, overdue: Overdue):
        self.platform, self.now, self.zone, self.local, self.today = platform, now, zone, local, local.date()
        self.overdue = overdue
        self.base: dict[str, Any] | None = None  # the facts in the ruleset's currency, once asked for


class _Compiled:
    """A rule with what the engine reads on every evaluation held in plain slots."""

    __slots__ = ("index", "rule", "id", "conditions", "every_days", "kind", "currency")

    def __init__(self, index: int, rule: Rule):
        self.index, self.rule, self.id = index, rule, rule.id
        self.conditions = rule.conditions
        self.every_days = rule.every_days
        self.kind = rule.emit.kind
        self.currency = rule.currency

    def matches(self, facts: dict[str, Any]) -> bool:
        for condition in self.conditions:
            if not condition.test(facts.get(condition.fact)):
                return False
        return True


def _invoice_lookahead(ruleset: Ruleset) -> int | None:
    """How many days before a due date invoice rules can fire; None when a rule has no upper bound."""
    longest = 0
    for _, rule in ruleset.invoice_rules:
        reach = None
        for condition in rule.conditions:
            if condition.fact == "days_until_due":
                reach = _upper_bound(condition.source)
        if reach is None:
            return None
        longest = max(longest, reach)
    return longest


def _upper_bound(written: Any) -> int | None:
    if isinstance(written, int):
        return written
    if isinstance(written, dict):
        bounds = [written.get("lte"), written.get("eq")]
        if written.get("lt") is not None:
            bounds.append(written["lt"] - 1)
        if isinstance(written.get("between"), list):
            bounds.append(written["between"][1])
        if isinstance(written.get("in"), list):
            bounds.append(max(written["in"]))
        known = [b for b in bounds if isinstance(b, int)]
        return min(known) if known else None
    return None


def notice_id(account_id: str, key: str) -> str:
    """Stable across replays, restarts and workers: derived from what the notice is about, not when it went."""
    return "n-" + hashlib.sha256(f"{account_id}\x1f{key}".encode()).hexdigest()[:32]


class _OutageDays:
    """The platform's outages as local days in one time zone."""

    __slots__ = ("spans", "earliest", "latest")

    def __init__(self, spans: list[tuple[date, date, date]]):
        self.spans = spans  # (first day, last day, where due dates inside move)
        self.earliest = min(first for first, _, _ in spans)
        self.latest = max(last for _, last, _ in spans)

    def shift(self, due: date) -> date:
        """A due date inside an outage moves to the outage's last local day plus its grace days."""
        if due < self.earliest or due > self.latest:
            return due
        for first, last, moved in self.spans:
            if first <= due <= last and moved > due:
                due = moved
        return due


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _money(value: Decimal) -> str:
    return format(value, "f")


class Engine:
    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self.version = ruleset.version
        self.default_zone = ruleset.defaults.timezone
        self.currency = ruleset.defaults.currency
        # Plain tuples of what the hot path reads, instead of pydantic properties on every evaluation.
        self._episode_rules = tuple(_Compiled(i, r) for i, r in ruleset.episode_rules)
        self._invoice_rules = tuple(_Compiled(i, r) for i, r in ruleset.invoice_rules)
        self._event_rules = {name: tuple(_Compiled(i, r) for i, r in ruleset.event_rules(name))
                             for name in {r.on for r in ruleset.rules if r.on}}
        self._compiled_by_id = {c.rule.id: c for c in (*self._episode_rules, *self._invoice_rules,
                                                        *(c for group in self._event_rules.values() for c in group))}
        self._lookahead = _invoice_lookahead(ruleset)
        # Each input event type's effect on the balances; returns the journal detail ("ignored" when moot).
        self._appliers = {
            InvoiceIssued: self._invoice_issued, InvoiceAdjusted: self._invoice_adjusted,
            InvoiceCancelled: self._invoice_cancelled, PaymentReceived: self._payment_received,
            PaymentFailed: self._payment_failed, ExtensionAgreed: self._arrangement_agreed,
            PromiseToPayAgreed: self._arrangement_agreed, InstallmentsAgreed: self._arrangement_agreed,
            ArrangementCancelled: self._arrangement_cancelled, DisputeOpened: self._dispute,
            DisputeResolved: self._dispute, AccountUpdated: self._account_updated,
        }
        self._outage_cache: dict[tuple[str, int], tuple[dict, int, _OutageDays]] = {}

    # ----------------------------------------------------------------- entry points

    def new_account(self, account_id: str) -> AccountState:
        return AccountState(account_id=account_id)

    def apply_platform(self, platform: PlatformState, event: InputEvent) -> bool:
        """Platform-wide events: the clock and outages. True when the event changed the platform state."""
        if isinstance(event, ClockTick):
            if platform.clock is None or event.at > platform.clock:
                platform.clock = event.at
                return True
            return False
        if isinstance(event, PlatformOutage):
            if event.outage_id in platform.outages:
                return False
            platform.outages[event.outage_id] = Outage(event.start, event.end, event.grace_days)
            platform.revision += 1
            return True
        return False

    def step(
        self, state: AccountState, event: InputEvent, platform: PlatformState
    ) -> tuple[AccountState, list[Notice]]:
        """Applies one event (or tick) to one account; returns the state and the notices released."""
        notices: list[Notice] = []
        apply = self._appliers.get(type(event))
        if apply is None:  # the clock, or a platform-wide event (see apply_platform)
            if isinstance(event, ClockTick) and (state.evaluated_until is None or event.at > state.evaluated_until):
                self._evaluate(state, platform, event.at, event.event_id, notices)
            return state, notices
        event_id, seen = event.event_id, state.seen
        if event_id in seen:
            return state, notices
        seen[event_id] = None
        if len(seen) > SEEN_EVENTS_LIMIT:
            del seen[next(iter(seen))]
        occurred, clock = event.occurred_at, platform.clock
        now = occurred if clock is None or occurred > clock else clock
        state.dirty = True
        line = self._journal(state, occurred, event.type, event_id, {})  # before the decisions the event causes
        line.detail = detail = apply(state, platform, event, now)
        moment = self._moment(state, platform, now)
        if event.type in self._event_rules and "ignored" not in detail:
            self._fire_event_rules(state, moment, event.type, event_id, self._event_facts(event),
                                   notices, invoice_id=event.__dict__.get("invoice_id"))
        self._update_episode(state, moment, event_id, notices)
        if state.pending:
            self._release(state, moment, event_id, notices)
        return state, notices

    def wakeup(self, state: AccountState, platform: PlatformState) -> datetime | None:
        """The earliest instant a tick could change this account; ticks before it may be skipped.

        None means no tick will change anything until an event arrives. A skipped tick and an applied one
        leave the same notices: day facts change only at local midnight, the contact window only at its
        edges, and anything an event changed makes the next tick look (dirty).
        """
        since = state.evaluated_until
        if since is None or state.dirty or state.platform_revision != platform.revision:
            return _AT_ONCE
        zone = self.zone_of(state)
        local = since.astimezone(zone)
        tomorrow = local.date() + timedelta(days=1)
        next_day = self._next_interesting_day(state, platform, zone, tomorrow)
        candidates = [] if next_day is None else [_local_midnight(next_day, zone)]
        window = self.ruleset.contact_window
        if state.pending and window is not None:
            opening = datetime.combine(local.date(), window.start, tzinfo=zone)
            if opening <= since:
                opening = datetime.combine(local.date() + timedelta(days=1), window.start, tzinfo=zone)
            candidates.append(opening)
        return min(candidates) if candidates else None

    def portfolio(self, state: AccountState, platform: PlatformState, at: datetime) -> dict[str, Position]:
        """The account's standing per currency at `at`, for portfolio metrics and aging reports.

        Aging puts each open invoice in the bucket of its days past due; invoices not being dunned (disputed,
        on a plan in good standing) count as current."""
        zone = self.zone_of(state)
        today = at.astimezone(zone).date()
        positions: dict[str, Position] = {}
        for invoice in state.invoices.values():
            if invoice.status != "open" or invoice.balance <= ZERO:
                continue
            position = positions.get(invoice.currency)
            if position is None:
                position = positions[invoice.currency] = Position()
            days = (today - self.effective_due(invoice, platform, zone)).days if self._dunnable(invoice) else 0
            position.open_amount += invoice.balance
            position.aging[aging_bucket(days)] += invoice.balance
            if days >= 1:
                position.overdue_amount += invoice.balance
                position.days_past_due = max(position.days_past_due, days)
        return positions

    def _next_interesting_day(self, state: AccountState, platform: PlatformState, zone: ZoneInfo,
                              tomorrow: date) -> date | None:
        """The first local day from tomorrow on whose start could change something for this account.

        In an episode, with notices waiting or an arrangement running, that is every day. Otherwise only two
        days per open invoice matter: when invoice rules can first see it, and the day after it falls due."""
        running = any(arrangement.status == "active" for arrangement in state.arrangements.values())
        if state.episode is not None or state.pending or running:
            return tomorrow
        if not any(invoice.status == "open" for invoice in state.invoices.values()):
            return None
        if self._lookahead is None:
            return tomorrow
        earliest = None
        for invoice in state.invoices.values():
            if not self._dunnable(invoice):
                continue
            due = self.effective_due(invoice, platform, zone)
            for day in (due - timedelta(days=self._lookahead), due + timedelta(days=1)):
                if day <= tomorrow:
                    return tomorrow
                if earliest is None or day < earliest:
                    earliest = day
        return earliest

    # ----------------------------------------------------------------- time and facts

    def zone_of(self, state: AccountState) -> ZoneInfo:
        """The account's own time zone, or the ruleset's default."""
        return _zone(state.timezone or self.default_zone)

    def _outage_days(self, platform: PlatformState, zone: ZoneInfo) -> _OutageDays:
        """The outages in the zone's local days (cached: hot path). Only while platform.outages is not empty."""
        key = (zone.key, id(platform.outages))
        cached = self._outage_cache.get(key)
        # The cached entry holds the outages dict itself, so its id cannot be reused while it is cached.
        if cached is not None and cached[0] is platform.outages and cached[1] == platform.revision:
            return cached[2]
        spans = []
        for outage in platform.outages.values():
            last = outage.end.astimezone(zone).date()
            spans.append((outage.start.astimezone(zone).date(), last, last + timedelta(days=outage.grace_days)))
        days = _OutageDays(spans)
        if len(self._outage_cache) > 4096:
            self._outage_cache.clear()
        self._outage_cache[key] = (platform.outages, platform.revision, days)
        return days

    def _shift_for_outages(self, due: date, platform: PlatformState, zone: ZoneInfo) -> date:
        return self._outage_days(platform, zone).shift(due) if platform.outages else due

    def effective_due(self, invoice: InvoiceState, platform: PlatformState, zone: ZoneInfo) -> date:
        return self._shift_for_outages(invoice.fell_due or invoice.extended_to or invoice.due_date, platform, zone)

    @staticmethod
    def _dunnable(invoice: InvoiceState) -> bool:
        """Open, undisputed, owing money, and not carried by an installment plan in good standing."""
        return (invoice.status == "open" and not invoice.disputed and invoice.plan_id is None
                and invoice.amount > invoice.paid)

    def _overdue(self, state: AccountState, platform: PlatformState, today: date, zone: ZoneInfo) -> Overdue:
        outages = self._outage_days(platform, zone) if platform.outages else None  # looked up once, not per invoice
        overdue = []
        for invoice in state.invoices.values():
            if not self._dunnable(invoice):
                continue
            due = invoice.fell_due or invoice.extended_to or invoice.due_date
            if outages is not None:
                due = outages.shift(due)
            days = (today - due).days
            if days >= 1:
                overdue.append((invoice, due, days))
        return overdue

    def _moment(self, state: AccountState, platform: PlatformState, now: datetime) -> _Moment:
        zone = self.zone_of(state)
        local = now.astimezone(zone)
        return _Moment(platform, now, zone, local, self._overdue(state, platform, local.date(), zone))

    def _base_facts(self, state: AccountState, moment: _Moment) -> dict[str, Any]:
        if moment.base is None:
            moment.base = self._facts(state, moment.overdue, self.currency)
        return moment.base

    def _facts(self, state: AccountState, overdue: Overdue, currency: str) -> dict[str, Any]:
        open_balance = sum(
            (inv.balance for inv in state.invoices.values()
             if inv.status == "open" and not inv.disputed and inv.currency == currency),
            ZERO,
        )
        return {
            "days_past_due": max((days for _, _, days in overdue), default=0),
            "overdue_amount": sum((inv.balance for inv, _, _ in overdue if inv.currency == currency), ZERO),
            "open_balance": open_balance,
            "overdue_invoices": len(overdue),
            "risk_tier": state.risk_tier,
            "arrangement": self._arrangement_status(state),
            "first_time": state.settled_invoices == 0,
        }

    def _arrangement_status(self, state: AccountState) -> str:
        latest = None
        for arrangement in state.arrangements.values():
            if arrangement.status == "active":
                return "active"
            if arrangement.status in ("broken", "kept") and (latest is None or arrangement.ended_at >= latest.ended_at):
                latest = arrangement
        return "broken" if latest is not None and latest.status == "broken" else "none"

    def _paused(self, state: AccountState) -> bool:
        """A promise to pay pauses time rules while it stands."""
        return any(a.kind == "promise_to_pay" and a.status == "active" for a in state.arrangements.values())

    def _rule_facts(self, rule: _Compiled, state: AccountState, moment: _Moment) -> dict[str, Any]:
        if rule.currency is None or rule.currency == self.currency:
            return self._base_facts(state, moment)
        return self._facts(state, moment.overdue, rule.currency)

    # ----------------------------------------------------------------- events

    def _invoice_issued(self, state: AccountState, platform: PlatformState, event: InvoiceIssued,
                        now: datetime) -> dict[str, str]:
        detail = {"invoice_id": event.invoice_id, "amount": _money(event.amount), "currency": event.currency,
                  "due_date": event.due_date.isoformat()}
        if event.invoice_id in state.invoices:
            detail["ignored"] = "invoice already known"
            return detail
        invoice = InvoiceState(event.invoice_id, event.currency, event.amount, ZERO, event.due_date, event.occurred_at)
        state.invoices[event.invoice_id] = invoice
        credit = state.credit.pop(event.currency, ZERO)
        if credit:
            self._allocate(state, event.currency, credit, event.invoice_id)
        self._close_if_settled(invoice)
        return detail

    def _invoice_adjusted(self, state: AccountState, platform: PlatformState, event: InvoiceAdjusted,
                          now: datetime) -> dict[str, str]:
        detail = {"invoice_id": event.invoice_id, "amount": _money(event.amount)}
        invoice = state.invoices.get(event.invoice_id)
        if invoice is None or invoice.status == "cancelled":
            detail["ignored"] = "unknown or cancelled invoice"
            return detail
        invoice.amount = event.amount
        if invoice.paid > invoice.amount:
            excess = invoice.paid - invoice.amount
            invoice.paid = invoice.amount
            self._allocate(state, invoice.currency, excess, None)
        if invoice.balance > ZERO:
            invoice.status = "open"
        self._close_if_settled(invoice)
        return detail

    def _invoice_cancelled(self, state: AccountState, platform: PlatformState, event: InvoiceCancelled,
                           now: datetime) -> dict[str, str]:
        detail = {"invoice_id": event.invoice_id}
        invoice = state.invoices.get(event.invoice_id)
        if invoice is None or invoice.status == "cancelled":
            detail["ignored"] = "unknown or already cancelled invoice"
            return detail
        invoice.status = "cancelled"
        refund, invoice.paid = invoice.paid, ZERO
        if refund:
            self._allocate(state, invoice.currency, refund, None)
        return detail

    def _payment_received(self, state: AccountState, platform: PlatformState, event: PaymentReceived,
                          now: datetime) -> dict[str, str]:
        detail = {"payment_id": event.payment_id, "amount": _money(event.amount), "currency": event.currency}
        if event.invoice_id:
            detail["invoice_id"] = event.invoice_id
        if event.payment_id in state.payments:
            detail["ignored"] = "payment already recorded"
            return detail
        state.payments[event.payment_id] = PaymentRecord(event.currency, event.amount, event.occurred_at)
        self._allocate(state, event.currency, event.amount, event.invoice_id)
        if state.arrangements:
            self._rejudge_arrangements(state, platform, event, now)
        return detail

    def _payment_failed(self, state: AccountState, platform: PlatformState, event: PaymentFailed,
                        now: datetime) -> dict[str, str]:
        return {"payment_id": event.payment_id, "amount": _money(event.amount), "currency": event.currency,
                "reason": event.reason}

    def _arrangement_agreed(self, state: AccountState, platform: PlatformState,
                            event: ExtensionAgreed | PromiseToPayAgreed | InstallmentsAgreed,
                            now: datetime) -> dict[str, str]:
        detail = {"arrangement_id": event.arrangement_id, "kind": event.kind}
        if event.arrangement_id in state.arrangements:
            detail["ignored"] = "arrangement already known"
        else:
            self._agree(state, event)
        return detail

    def _arrangement_cancelled(self, state: AccountState, platform: PlatformState, event: ArrangementCancelled,
                               now: datetime) -> dict[str, str]:
        detail = {"arrangement_id": event.arrangement_id}
        arrangement = state.arrangements.get(event.arrangement_id)
        if arrangement is None or arrangement.status != "active":
            detail["ignored"] = "no such active arrangement"
        else:
            self._end_arrangement(state, arrangement, "cancelled", event.occurred_at)
        return detail

    def _dispute(self, state: AccountState, platform: PlatformState, event: DisputeOpened | DisputeResolved,
                 now: datetime) -> dict[str, str]:
        detail = {"invoice_id": event.invoice_id}
        invoice = state.invoices.get(event.invoice_id)
        if invoice is None:
            detail["ignored"] = "unknown invoice"
        else:
            invoice.disputed = isinstance(event, DisputeOpened)
        return detail

    def _account_updated(self, state: AccountState, platform: PlatformState, event: AccountUpdated,
                         now: datetime) -> dict[str, str]:
        detail: dict[str, str] = {}
        if event.risk_tier is not None:
            state.risk_tier = detail["risk_tier"] = event.risk_tier
        if event.timezone is not None:
            state.timezone = detail["timezone"] = event.timezone
        if event.channels is not None:
            state.channels = list(event.channels)
            detail["channels"] = ",".join(event.channels)
        if event.opted_out_channels is not None:
            state.opted_out = list(event.opted_out_channels)
            detail["opted_out_channels"] = ",".join(event.opted_out_channels)
        return detail

    def _event_facts(self, event: InputEvent) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        if isinstance(event, PaymentFailed):
            facts["failure_reason"] = event.reason
        if isinstance(event, (ExtensionAgreed, PromiseToPayAgreed, InstallmentsAgreed)):
            facts["arrangement_kind"] = event.kind
        for name in ("amount", "currency"):
            value = event.__dict__.get(name)  # fields only (extras live elsewhere); a miss on getattr is slow
            if value is not None:
                facts[name] = value
        return facts

    def _close_if_settled(self, invoice: InvoiceState) -> bool:
        if invoice.status == "open" and invoice.balance <= ZERO:
            invoice.status = "paid"
            return True
        return False

    def _allocate(self, state: AccountState, currency: str, amount: Decimal, invoice_id: str | None) -> None:
        """Pays the named invoice first, then the oldest due; what is left becomes credit for later invoices."""
        named = state.invoices.get(invoice_id) if invoice_id else None
        if named is not None and named.status == "open" and named.currency == currency:
            amount = self._pay(state, named, amount)
        if amount > ZERO:  # most payments settle the invoice they name: the others are looked at only if not
            oldest_first = [inv for inv in state.invoices.values() if inv is not named and inv.status == "open"
                            and not inv.disputed and inv.currency == currency]
            oldest_first.sort(key=lambda inv: (inv.extended_to or inv.due_date, inv.issued_at, inv.invoice_id))
            for invoice in oldest_first:
                if amount <= ZERO:
                    break
                amount = self._pay(state, invoice, amount)
        if amount > ZERO:
            state.credit[currency] = state.credit.get(currency, ZERO) + amount

    def _pay(self, state: AccountState, invoice: InvoiceState, amount: Decimal) -> Decimal:
        """Puts as much of amount on the invoice as it owes; returns the rest."""
        share = min(amount, invoice.balance)
        invoice.paid += share
        if self._close_if_settled(invoice):
            state.settled_invoices += 1
        return amount - share

    # ----------------------------------------------------------------- arrangements

    def _covered(self, state: AccountState, invoice_ids: list[str] | None) -> list[InvoiceState]:
        if invoice_ids is None:
            return [inv for inv in state.invoices.values() if inv.status == "open"]
        return [state.invoices[i] for i in invoice_ids if i in state.invoices and state.invoices[i].status == "open"]

    def _agree(self, state: AccountState, event: ExtensionAgreed | PromiseToPayAgreed | InstallmentsAgreed) -> None:
        arrangement = ArrangementState(
            event.arrangement_id, event.kind, event.occurred_at, event.currency or self.currency
        )
        if isinstance(event, ExtensionAgreed):
            arrangement.new_due_date = event.new_due_date
            for invoice in self._covered(state, event.invoice_ids):
                invoice.extended_to = event.new_due_date
                invoice.extension_id = event.arrangement_id
                arrangement.invoice_ids.append(invoice.invoice_id)
        elif isinstance(event, PromiseToPayAgreed):
            arrangement.promised_date = event.promised_date
            arrangement.amount = event.amount
        else:
            arrangement.schedule = [InstallmentState(item.due_date, item.amount) for item in event.schedule]
            for invoice in self._covered(state, event.invoice_ids):
                invoice.plan_id = event.arrangement_id
                arrangement.invoice_ids.append(invoice.invoice_id)
        state.arrangements[event.arrangement_id] = arrangement

    def _end_arrangement(self, state: AccountState, arrangement: ArrangementState, status: str, at: datetime) -> None:
        arrangement.status = status  # type: ignore[assignment]
        arrangement.ended_at = at
        if status == "cancelled":
            for invoice in state.invoices.values():
                if invoice.extension_id == arrangement.arrangement_id:
                    invoice.extended_to = invoice.extension_id = None
        for invoice in state.invoices.values():
            if invoice.plan_id == arrangement.arrangement_id:
                invoice.plan_id = None

    def _paid_since(self, state: AccountState, arrangement: ArrangementState, last_day: date, zone: ZoneInfo) -> Decimal:
        """Payments in the arrangement's currency from its agreement to the end of last_day (local)."""
        total = ZERO
        for payment in state.payments.values():
            if (payment.currency == arrangement.currency and payment.occurred_at >= arrangement.agreed_at
                    and payment.occurred_at.astimezone(zone).date() <= last_day):
                total += payment.amount
        return total

    def _check_arrangements(
        self, state: AccountState, platform: PlatformState, now: datetime, today: date, zone: ZoneInfo,
        cause: str, notices: list[Notice],
    ) -> None:
        for arrangement in list(state.arrangements.values()):
            if arrangement.status != "active":
                continue
            verdict = None
            if arrangement.kind == "promise_to_pay":
                deadline = self._shift_for_outages(arrangement.promised_date, platform, zone)
                if today > deadline:
                    owes = any(inv.status == "open" and inv.balance > ZERO for inv in state.invoices.values())
                    paid = self._paid_since(state, arrangement, deadline, zone)
                    verdict = "kept" if paid >= arrangement.amount or not owes else "broken"
            elif arrangement.kind == "extension":
                deadline = self._shift_for_outages(arrangement.new_due_date, platform, zone)
                if today > deadline:
                    unpaid = [i for i in arrangement.invoice_ids
                              if state.invoices[i].status == "open" and state.invoices[i].balance > ZERO]
                    verdict = "broken" if unpaid else "kept"
            else:
                verdict = self._judge_plan(state, platform, arrangement, today, zone)
            if verdict is not None:
                self._end_arrangement(state, arrangement, verdict, now)
                self._journal(state, now, f"decision.arrangement_{verdict}", arrangement.arrangement_id,
                              {"kind": arrangement.kind})
                if verdict == "broken":
                    self._fire_event_rules(state, self._moment(state, platform, now), ARRANGEMENT_BROKEN,
                                           f"{arrangement.arrangement_id}:broken",
                                           {"arrangement_kind": arrangement.kind}, notices,
                                           arrangement_id=arrangement.arrangement_id)

    def _rejudge_arrangements(
        self, state: AccountState, platform: PlatformState, payment: PaymentReceived, now: datetime
    ) -> None:
        """A payment made before an arrangement was judged broken that arrives after the judgement (it crossed
        the midnight tick) is judged again with it: a promise it fulfils is kept after all, and an installment
        plan it keeps up to date stands again, unless something else was agreed since."""
        for arrangement in state.arrangements.values():
            if not (arrangement.status == "broken"
                    and arrangement.ended_at >= payment.occurred_at >= arrangement.agreed_at):
                continue
            zone = self.zone_of(state)
            reason = {"kind": arrangement.kind, "reason": f"late-arriving payment {payment.payment_id}"}
            if arrangement.kind == "promise_to_pay":
                deadline = self._shift_for_outages(arrangement.promised_date, platform, zone)
                if self._paid_since(state, arrangement, deadline, zone) >= arrangement.amount:
                    arrangement.status = "kept"
                    self._journal(state, now, "decision.arrangement_kept", arrangement.arrangement_id, reason)
            elif arrangement.kind == "installments" and not self._agreed_since(state, arrangement):
                judged_on = arrangement.ended_at.astimezone(zone).date()
                if self._missed_installment(state, platform, arrangement, judged_on, zone)[0] is None:
                    arrangement.status, arrangement.ended_at = "active", None
                    for invoice in (state.invoices[i] for i in arrangement.invoice_ids):
                        if invoice.status == "open":
                            invoice.plan_id, invoice.fell_due = arrangement.arrangement_id, None
                    self._journal(state, now, "decision.arrangement_restored", arrangement.arrangement_id, reason)

    @staticmethod
    def _agreed_since(state: AccountState, ended: ArrangementState) -> bool:
        return any(other.agreed_at > ended.ended_at for other in state.arrangements.values())

    def _missed_installment(
        self, state: AccountState, platform: PlatformState, plan: ArrangementState, today: date, zone: ZoneInfo
    ) -> tuple[date | None, Decimal, Decimal]:
        """The due date of the first installment still short by `today` (None: none), what was paid by then,
        and what the whole schedule comes to."""
        paid = self._paid_since(state, plan, today, zone)
        owed_so_far = ZERO
        missed = None
        for installment in plan.schedule:
            owed_so_far += installment.amount
            due = self._shift_for_outages(installment.due_date, platform, zone)
            if missed is None and today > due and paid < owed_so_far:
                missed = due
        return missed, paid, owed_so_far

    def _judge_plan(
        self, state: AccountState, platform: PlatformState, plan: ArrangementState, today: date, zone: ZoneInfo
    ) -> str | None:
        covered = [state.invoices[i] for i in plan.invoice_ids]
        if all(inv.status != "open" for inv in covered):
            return "kept"
        missed, paid, owed = self._missed_installment(state, platform, plan, today, zone)
        if missed is not None:
            # The whole remainder falls due at once: from the missed installment's due date.
            for invoice in covered:
                if invoice.status == "open":
                    invoice.fell_due = missed
            return "broken"
        return "kept" if paid >= owed else None

    # ----------------------------------------------------------------- episodes

    def _update_episode(self, state: AccountState, moment: _Moment, cause: str, notices: list[Notice]) -> None:
        """Starts or ends the delinquency episode."""
        now, overdue = moment.now, moment.overdue
        episode = state.episode
        if episode is None and overdue:
            state.episode_seq += 1
            state.episode = Episode(f"{state.account_id}/{state.episode_seq}", now)
            self._journal(state, now, "episode.started", state.episode.episode_id,
                          {"days_past_due": str(max(days for _, _, days in overdue))})
        elif episode is not None and not overdue:
            for target, rule_id in episode.open_handoffs.items():
                notices.append(self._build(
                    state, moment, cause, kind="handoff", rule_id=rule_id, key=f"recall|{target}|{episode.episode_id}",
                    episode_id=episode.episode_id, trigger=Trigger(event_id=cause, at=now), facts={},
                    to=target, action="recall", invoices=[],
                ))
            state.episode = None
            self._journal(state, now, "episode.ended", episode.episode_id, {})

    # ----------------------------------------------------------------- evaluation at a tick

    def _evaluate(
        self, state: AccountState, platform: PlatformState, now: datetime, cause: str, notices: list[Notice]
    ) -> None:
        state.evaluated_until = now
        state.dirty = False
        state.platform_revision = platform.revision
        if state.arrangements:
            zone = self.zone_of(state)
            self._check_arrangements(state, platform, now, now.astimezone(zone).date(), zone, cause, notices)
        moment = self._moment(state, platform, now)
        self._update_episode(state, moment, cause, notices)
        if not self._paused(state):
            if state.episode is not None:
                self._fire_episode_rules(state, moment, cause, notices)
            if self._invoice_rules:
                self._fire_invoice_rules(state, moment, cause, notices)
        self._release(state, moment, cause, notices)

    def _fire_episode_rules(self, state: AccountState, moment: _Moment, cause: str, notices: list[Notice]) -> None:
        episode, today = state.episode, moment.today
        waiting = {p.rule_id for p in state.pending}
        due: list[tuple[_Compiled, dict[str, Any]]] = []
        for rule in self._episode_rules:
            if rule.every_days is None:
                if rule.id in episode.done:
                    continue
            else:
                last = episode.last_fired.get(rule.id)
                if rule.id in waiting or (last is not None and (today - last).days < rule.every_days):
                    continue
            facts = self._rule_facts(rule, state, moment)
            if rule.matches(facts):
                due.append((rule, facts))
        fire = self._collapse(state, moment.now, due, lambda rule: episode.done.__setitem__(rule.id, "skipped"))
        for rule, facts in fire:
            if rule.every_days is None:
                episode.done[rule.id] = "fired"
                key = f"{rule.id}|{episode.episode_id}"
            else:
                # A repeating rule counts its days from when it was last sent (see _send), not decided.
                key = f"{rule.id}|{episode.episode_id}|{today.isoformat()}"
            self._decide(state, moment, cause, rule, facts, notices, scope="episode", key=key,
                         episode_id=episode.episode_id)

    def _fire_invoice_rules(self, state: AccountState, moment: _Moment, cause: str, notices: list[Notice]) -> None:
        for invoice in list(state.invoices.values()):
            if not self._dunnable(invoice):
                continue
            until_due = (self.effective_due(invoice, moment.platform, moment.zone) - moment.today).days
            if until_due < 0 or (self._lookahead is not None and until_due > self._lookahead):
                continue
            due = []
            for rule in self._invoice_rules:
                if rule.id in invoice.rules_done:
                    continue
                facts = dict(self._rule_facts(rule, state, moment))
                facts["days_until_due"] = until_due
                if rule.matches(facts):
                    due.append((rule, facts))
            for rule, facts in self._collapse(state, moment.now, due,
                                              lambda rule: invoice.rules_done.append(rule.id)):
                invoice.rules_done.append(rule.id)
                self._decide(state, moment, cause, rule, facts, notices, scope="invoice",
                             key=f"{rule.id}|invoice:{invoice.invoice_id}", invoice_id=invoice.invoice_id,
                             episode_id=state.episode.episode_id if state.episode else None)

    def _collapse(self, state: AccountState, now: datetime, due: list, mark_skipped) -> list:
        """Of once-only rules of one kind due together, only the last in file order fires; the rest are skipped."""
        last_of_kind: dict[str, int] = {}
        for position, (rule, _) in enumerate(due):
            if rule.every_days is None:
                last_of_kind[rule.kind] = position
        fire = []
        for position, (rule, facts) in enumerate(due):
            if rule.every_days is None and last_of_kind[rule.kind] != position:
                mark_skipped(rule)
                superseded_by = due[last_of_kind[rule.kind]][0].id
                self._journal(state, now, "decision.skipped", rule.id, {"superseded_by": superseded_by})
            else:
                fire.append((rule, facts))
        return fire

    def _fire_event_rules(
        self, state: AccountState, moment: _Moment, event_type: str, event_id: str,
        event_facts: dict[str, Any], notices: list[Notice], invoice_id: str | None = None,
        arrangement_id: str | None = None,
    ) -> None:
        rules = self._event_rules.get(event_type)
        if not rules:
            return
        if event_facts.get("failure_reason") == "system_error":
            # Our own platform's fault never counts against the customer.
            for rule in rules:
                self._journal(state, moment.now, "decision.suppressed", rule.id,
                              {"reason": "payment failed by system_error"})
            return
        for rule in rules:
            facts = {**self._rule_facts(rule, state, moment), **event_facts}
            if rule.matches(facts):
                self._decide(state, moment, event_id, rule, facts, notices, scope="event",
                             key=f"{rule.id}|event:{event_id}", invoice_id=invoice_id, arrangement_id=arrangement_id,
                             episode_id=state.episode.episode_id if state.episode else None)

    def _decide(
        self, state: AccountState, moment: _Moment, cause: str, compiled: _Compiled,
        facts: dict[str, Any], notices: list[Notice], *, scope: str, key: str, episode_id: str | None = None,
        invoice_id: str | None = None, arrangement_id: str | None = None,
    ) -> None:
        index, rule = compiled.index, compiled.rule
        shown = {name: (_money(value) if isinstance(value, Decimal) else value) for name, value in facts.items()}
        now = moment.now
        if rule.emit.kind == "handoff":
            trigger = Trigger(event_id=cause, at=now)
            invoices = self._concerned(state, moment, invoice_id)
            notices.append(self._build(
                state, moment, cause, kind="handoff", rule_id=rule.id, key=key, episode_id=episode_id,
                trigger=trigger, facts=shown, to=rule.emit.to, action="open", invoices=invoices,
            ))
            if state.episode is not None and episode_id == state.episode.episode_id:
                state.episode.open_handoffs[rule.emit.to] = rule.id
            return
        state.pending.append(Pending(
            key=key, rule_id=rule.id, rule_index=index, kind=rule.emit.kind, scope=scope, trigger_event=cause,
            trigger_at=now, facts=shown, episode_id=episode_id, invoice_id=invoice_id, arrangement_id=arrangement_id,
        ))

    # ----------------------------------------------------------------- release of waiting notices

    def _still_due(self, state: AccountState, pending: Pending, moment: _Moment) -> bool:
        """A waiting time-rule notice goes only if its reason still holds when the window opens."""
        if pending.scope == "event":
            arrangement = state.arrangements.get(pending.arrangement_id) if pending.arrangement_id else None
            return arrangement is None or arrangement.status == "broken"
        if self._paused(state):
            return False
        rule = self._compiled_by_id[pending.rule_id]
        facts = self._rule_facts(rule, state, moment)
        if pending.scope == "episode":
            return state.episode is not None and state.episode.episode_id == pending.episode_id and rule.matches(facts)
        invoice = state.invoices.get(pending.invoice_id)
        if invoice is None or not self._dunnable(invoice):
            return False
        until_due = (self.effective_due(invoice, moment.platform, moment.zone) - moment.today).days
        return rule.matches({**facts, "days_until_due": until_due})

    def _withdraw(self, state: AccountState, pending: Pending, now: datetime) -> None:
        if pending.scope == "episode" and state.episode is not None and state.episode.episode_id == pending.episode_id:
            state.episode.done.pop(pending.rule_id, None)
        elif pending.scope == "invoice" and pending.invoice_id in state.invoices:
            done = state.invoices[pending.invoice_id].rules_done
            if pending.rule_id in done:
                done.remove(pending.rule_id)
        self._journal(state, now, "decision.withdrawn", pending.rule_id, {"notice_id": notice_id(state.account_id, pending.key)})

    def _release(self, state: AccountState, moment: _Moment, cause: str, notices: list[Notice]) -> None:
        if not state.pending:
            return
        now, today = moment.now, moment.today
        still = []
        for pending in state.pending:
            if self._still_due(state, pending, moment):
                still.append(pending)
            else:
                self._withdraw(state, pending, now)
        state.pending = still
        window = self.ruleset.contact_window
        if window is not None and not window.contains(moment.local.time()):
            for pending in still:
                if "contact_window" not in pending.deferred_by:
                    pending.deferred_by.append("contact_window")
            return
        # A notice no channel can carry is recorded and dropped first, so it takes no place under the limits.
        channels = {id(pending): self._channel(state, pending) for pending in still}
        for pending in still:
            if channels[id(pending)] is None:
                self._journal(state, now, "decision.suppressed", pending.rule_id,
                              {"reason": "the customer opted out of every channel the rule allows",
                               "notice_id": notice_id(state.account_id, pending.key)})
        still = [pending for pending in still if channels[id(pending)] is not None]
        week_start = today - timedelta(days=WEEK_DAYS - 1)
        state.sent_days = [day for day in state.sent_days if day >= week_start]
        room = len(still)
        limits = self.ruleset.limits
        if limits.per_day is not None:
            room = min(room, limits.per_day - sum(1 for day in state.sent_days if day == today))
        if limits.per_week is not None:
            room = min(room, limits.per_week - len(state.sent_days))
        still.sort(key=lambda p: (_KIND_PRIORITY[p.kind], p.rule_index, p.trigger_at, p.key))
        release, state.pending = still[:max(room, 0)], still[max(room, 0):]
        for pending in state.pending:
            if "limits" not in pending.deferred_by:
                pending.deferred_by.append("limits")
        for pending in release:
            self._send(state, moment, cause, pending, channels[id(pending)], notices)

    def _channel(self, state: AccountState, pending: Pending) -> str | None:
        """The first channel the rule allows that the customer has not opted out of ('preferred': theirs)."""
        rule = self._compiled_by_id[pending.rule_id].rule
        candidates: list[str] = []
        for channel in rule.emit.channels:
            candidates.extend(state.channels if channel == "preferred" else [channel])
        return next((c for c in candidates if c not in state.opted_out), None)

    def _send(
        self, state: AccountState, moment: _Moment, cause: str, pending: Pending, channel: str, notices: list[Notice]
    ) -> None:
        compiled = self._compiled_by_id[pending.rule_id]
        rule = compiled.rule
        sent_on = moment.today
        state.sent_days.append(sent_on)
        episode = state.episode
        if compiled.every_days is not None and episode is not None and episode.episode_id == pending.episode_id:
            episode.last_fired[rule.id] = sent_on
        notices.append(self._build(
            state, moment, cause, kind=pending.kind, rule_id=rule.id, key=pending.key,
            episode_id=pending.episode_id,
            trigger=Trigger(event_id=pending.trigger_event, at=pending.trigger_at, deferred_by=pending.deferred_by),
            facts=pending.facts, channel=channel, template=rule.emit.template,
            invoices=self._concerned(state, moment, pending.invoice_id),
        ))

    # ----------------------------------------------------------------- notice construction

    def _concerned(self, state: AccountState, moment: _Moment, invoice_id: str | None) -> list[InvoiceConcerned]:
        invoice = state.invoices.get(invoice_id) if invoice_id else None
        if invoice is not None:
            chosen = [(invoice, self.effective_due(invoice, moment.platform, moment.zone))]
        else:
            chosen = [(inv, due) for inv, due, _ in moment.overdue]
        return [
            InvoiceConcerned(invoice_id=inv.invoice_id, currency=inv.currency, amount_due=inv.balance, due_date=due)
            for inv, due in sorted(chosen, key=lambda pair: (pair[1], pair[0].invoice_id))
        ]

    def _build(
        self, state: AccountState, moment: _Moment, cause: str, *, kind: str, rule_id: str,
        key: str, episode_id: str | None, trigger: Trigger, facts: dict[str, Any], invoices: list[InvoiceConcerned],
        channel: str | None = None, template: str | None = None, to: str | None = None, action: str | None = None,
    ) -> Notice:
        now, overdue_list = moment.now, moment.overdue
        overdue: dict[str, Decimal] = {}
        for invoice, _, _ in overdue_list:
            overdue[invoice.currency] = overdue.get(invoice.currency, ZERO) + invoice.balance
        the_id = notice_id(state.account_id, key)
        notice = Notice(
            notice_id=the_id, kind=kind, account_id=state.account_id, rule_id=rule_id, ruleset_version=self.version,
            channel=channel, template=template, to=to, action=action,
            days_past_due=max((days for _, _, days in overdue_list), default=0), overdue=overdue,
            invoices=invoices, episode_id=episode_id, issued_at=now, caused_by=cause, trigger=trigger,
            facts=facts, case_file=self._case_file(state) if kind == "handoff" else None,
        )
        # The audit trail keeps why: the rule, what it saw, and what it waited for.
        detail = {"rule_id": rule_id}
        if channel:
            detail.update(channel=channel, template=template or "")
        if to:
            detail.update(to=to, action=action or "open")
        if facts:
            detail["facts"] = ", ".join(f"{name}={value}" for name, value in facts.items())
        if trigger.event_id != cause:
            detail["decided"] = f"{trigger.at.isoformat()} by {trigger.event_id}"
        if trigger.deferred_by:
            detail["waited_for"] = ", ".join(trigger.deferred_by)
        self._journal(state, now, f"notice.{kind}", the_id, detail)
        return notice

    def _case_file(self, state: AccountState) -> CaseFile:
        """The delinquency story: events since the oldest open invoice was issued, and the episode's notices."""
        open_since = min((inv.issued_at for inv in state.invoices.values() if inv.status == "open"), default=None)
        episode_start = state.episode.started_at if state.episode else None
        events, notices = [], []
        for entry in state.journal:
            if entry.what.startswith("notice."):
                if episode_start is None or entry.at >= episode_start:
                    notices.append(entry)
            elif not entry.what.startswith(("decision.", "episode.")):
                if open_since is None or entry.at >= open_since:
                    events.append(entry)
        return CaseFile(events=events[-CASE_FILE_LIMIT:], notices=notices[-CASE_FILE_LIMIT:])

    def _journal(
        self, state: AccountState, at: datetime, what: str, entry_id: str, detail: dict[str, str]
    ) -> JournalEntry:
        journal = state.journal
        line = JournalEntry(at, what, entry_id, detail)
        journal.append(line)
        if len(journal) > JOURNAL_LIMIT:
            del journal[: len(journal) - JOURNAL_LIMIT]
        return line

