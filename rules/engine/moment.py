"""Time as an account sees it: its time zone, platform outages as local days, effective due dates, and the
moment (local day, overdue invoices, facts) that every decision of one evaluation shares."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from rules.engine.behaviour import facts as behaviour_facts
from rules.engine.contact import contact_facts
from rules.engine.holds import days_past
from rules.state import ZERO, AccountState, InvoiceState, PlatformState

Overdue = list[tuple[InvoiceState, date, int]]  # (invoice, effective due date, days past due)


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class OutageDays:
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


def shifted(day: date, outages: OutageDays | None) -> date:
    return day if outages is None else outages.shift(day)


def effective_due(invoice: InvoiceState, outages: OutageDays | None) -> date:
    """The due date as a broken plan, an extension and outages have moved it."""
    return shifted(invoice.fell_due or invoice.extended_to or invoice.due_date, outages)


def dunnable(invoice: InvoiceState) -> bool:
    """Open, undisputed, owing money, and not carried by an installment plan in good standing."""
    return (invoice.status == "open" and not invoice.disputed and invoice.plan_id is None
            and invoice.amount > invoice.paid)


def paused(state: AccountState) -> bool:
    """A promise to pay or a settlement (offered or agreed) pauses time rules while it stands, and so does a hold
    (a breathing space or hardship flag, rules/engine/treatment.py)."""
    return any(a.status == "offered" or (a.status == "active" and a.kind in ("promise_to_pay", "settlement"))
               for a in state.arrangements.values()) or bool(state.holds and state.holds[-1].last is None)


class Calendar:
    """Local days per account: its time zone (or the ruleset's), outages in that zone, and moments."""

    def __init__(self, default_zone: str, currency: str, behaviour: bool = False, contact_facts: bool = False):
        self.default_zone = default_zone
        self.currency = currency  # the ruleset's: what base facts are counted in
        self.behaviour = behaviour  # whether rules read behaviour facts (rules/engine/behaviour.py)
        self.contact_facts = contact_facts  # a rule looks at CONTACT_FACTS: every rule is shown them
        self._outage_cache: dict[tuple[str, int], tuple[dict, int, OutageDays]] = {}

    def zone_of(self, state: AccountState) -> ZoneInfo:
        """The account's own time zone, or the ruleset's default."""
        return zone(state.timezone or self.default_zone)

    def outages(self, platform: PlatformState, zone: ZoneInfo) -> OutageDays | None:
        """The outages in the zone's local days, None when there are none (cached: hot path)."""
        if not platform.outages:
            return None
        key = (zone.key, id(platform.outages))
        cached = self._outage_cache.get(key)
        # The cached entry holds the outages dict itself, so its id cannot be reused while it is cached.
        if cached is not None and cached[0] is platform.outages and cached[1] == platform.revision:
            return cached[2]
        spans = []
        for outage in platform.outages.values():
            last = outage.end.astimezone(zone).date()
            spans.append((outage.start.astimezone(zone).date(), last, last + timedelta(days=outage.grace_days)))
        days = OutageDays(spans)
        if len(self._outage_cache) > 4096:
            self._outage_cache.clear()
        self._outage_cache[key] = (platform.outages, platform.revision, days)
        return days

    def moment(self, state: AccountState, platform: PlatformState, now: datetime) -> Moment:
        zone = self.zone_of(state)
        return Moment(state, now, now.astimezone(zone), self.outages(platform, zone), self.currency, self.behaviour,
                      self.contact_facts)


class Moment:
    """One account at one instant, as every decision of one evaluation sees it, worked out once.

    Built after the balances have changed (event applied, arrangements judged); nothing after that point
    changes which invoices are overdue, so the decisions, the notices and their facts all share it."""

    __slots__ = ("state", "now", "local", "today", "outages", "overdue", "currency", "base", "behaviour", "contact")

    def __init__(self, state: AccountState, now: datetime, local: datetime, outages: OutageDays | None,
                 currency: str, behaviour: bool = False, contact: bool = False):
        self.state, self.now, self.local, self.today, self.outages = state, now, local, local.date(), outages
        self.overdue = _overdue(state, self.today, outages)
        self.currency = currency
        self.base: dict[str, Any] | None = None  # the facts in the ruleset's currency, once asked for
        self.behaviour = behaviour
        self.contact = contact

    def again(self) -> Moment:
        """The same instant after a decision changed the balances (a write-off)."""
        return Moment(self.state, self.now, self.local, self.outages, self.currency, self.behaviour, self.contact)

    def facts(self, currency: str | None) -> dict[str, Any]:
        """What a rule sees, in its own currency (None: the ruleset's)."""
        if currency is None or currency == self.currency:
            if self.base is None:
                self.base = self._facts(self.currency)
            return self.base
        return self._facts(currency)

    def _facts(self, currency: str) -> dict[str, Any]:
        found = _facts(self.state, self.overdue, currency, self.local if self.contact else None)
        if self.behaviour:
            found.update(behaviour_facts(self.state, self.today))
        return found


def _overdue(state: AccountState, today: date, outages: OutageDays | None) -> Overdue:
    overdue = []
    for invoice in state.invoices.values():
        if not dunnable(invoice):
            continue
        due = invoice.fell_due or invoice.extended_to or invoice.due_date
        if outages is not None:  # inline rather than effective_due: this runs for every invoice at every moment
            due = outages.shift(due)
        days = (today - due).days if not state.holds else days_past(due, today, state.holds)
        if days >= 1:
            overdue.append((invoice, due, days))
    return overdue


def _facts(state: AccountState, overdue: Overdue, currency: str, local: datetime | None) -> dict[str, Any]:
    """`local`: the account's local time when the ruleset shows contact facts (None: it does not)."""
    open_balance = sum(
        (inv.balance for inv in state.invoices.values()
         if inv.status == "open" and not inv.disputed and inv.currency == currency),
        ZERO,
    )
    facts = {
        "days_past_due": max((days for _, _, days in overdue), default=0),
        "overdue_amount": sum((inv.balance for inv, _, _ in overdue if inv.currency == currency), ZERO),
        "open_balance": open_balance,
        "overdue_invoices": len(overdue),
        "risk_tier": state.risk_tier,
        "arrangement": _arrangement_status(state),
        "first_time": state.settled_invoices == 0,
    }
    if state.flags:  # only then: notices show the fact when a flag stands
        facts["flags"] = ",".join(sorted(state.flags))
    if local is not None:
        facts.update(contact_facts(state, local))
    return facts


def _arrangement_status(state: AccountState) -> str:
    latest = None
    for arrangement in state.arrangements.values():
        if arrangement.status == "active":
            return "active"
        if arrangement.status in ("broken", "kept") and (latest is None or arrangement.ended_at >= latest.ended_at):
            latest = arrangement
    outcome = state.past_arrangement if latest is None else latest.status  # past: ended before any still kept
    return "broken" if outcome == "broken" else "none"
