"""The dunning engine: a deterministic step (account state, event) -> notices, with no I/O and no wall clock.

Time enters only through clock ticks. Time rules are judged at ticks; events change balances and fire event
rules. The offline simulator and the live worker both call `Engine.step`, so the simulator is the oracle.
`step` updates the state it is given in place (callers own their state) and returns an Outcome: that state,
the notices it released, the audit lines it wrote, and when a tick should next look at the account.

The modules, by concern: `moment` (zones, outages, due dates, facts), `ledger` (balances and the event
appliers), `arrangements`, `settlement` (offers and settlements), `writeoff` (write-offs and recoveries),
`episodes` (which rules fire and what they decide), `delivery` (waiting notices), `notices` (what goes out),
`wakeup` (when to look again), `portfolio`, `rulebook` (compiled rules) and `outcome` (what a step produced, and its
audit lines); `treatment` and `holds` (flags, and days past due around holds), `restrictions`, `reconcile` (billing's
statements). Engine composes them.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from rules.engine import behaviour
from rules.engine.arrangements import Arrangements, cancelled, close_settlements
from rules.engine.contact import ContactPolicy
from rules.engine.delivery import WEEK_DAYS, Delivery
from rules.engine.episodes import Episodes
from rules.engine.ledger import APPLIERS, Applier, When
from rules.engine.moment import Calendar, Moment, Overdue, effective_due, paused
from rules.engine.notices import NoticeIssuer, notice_id
from rules.engine.outcome import Outcome, record
from rules.engine.portfolio import AGING_BUCKETS, Position, aging_bucket, positions
from rules.engine.receipts import Receipts
from rules.engine.reconcile import announce as reconciled
from rules.engine.reconcile import note_books, statement
from rules.engine.restrictions import Restrictions
from rules.engine.retention import remember, retire, settle_books
from rules.engine.rulebook import Rulebook
from rules.engine.settlement import Settlements
from rules.engine.treatment import Treatment
from rules.engine.wakeup import Wakeups
from rules.engine.writeoff import WriteOffs, debt_written_off, targets
from rules.model import Ruleset
from rules.state import CASE_FILE_LIMIT, AccountState, InvoiceState, Outage, PlatformState
from schemas.events import (
    AccountFlagged,
    AccountStatement,
    AccountUnflagged,
    ArrangementCancelled,
    ClockTick,
    ContactRecorded,
    DebtWrittenOff,
    ExtensionAgreed,
    InputEvent,
    InstallmentsAgreed,
    NoticeDelivered,
    NoticeFailed,
    PaymentReceived,
    PlatformOutage,
    PromiseToPayAgreed,
    SettlementAgreed,
)

__all__ = [
    "AGING_BUCKETS", "CASE_FILE_LIMIT", "WEEK_DAYS", "Engine", "Outcome", "Overdue", "Position", "aging_bucket",
    "notice_id",
]


class Engine:
    def __init__(self, ruleset: Ruleset, variant: str | None = None):
        self.ruleset = ruleset
        self.version = ruleset.version
        self.variant = variant  # the experiment variant this engine decides for, stamped on notices and audit
        currency = ruleset.defaults.currency
        used = {condition.fact for rule in ruleset.rules for condition in rule.conditions}
        self.calendar = Calendar(ruleset.defaults.timezone, currency, behaviour=bool(used & set(behaviour.FACTS)),
                                 contact_facts=ruleset.uses_contact_facts)
        self.rulebook = Rulebook(ruleset)
        issuer = NoticeIssuer(ruleset.version, variant)
        self.arrangements = Arrangements(self.calendar, currency)
        self.settlements = Settlements(self.calendar, issuer)
        self.writeoffs = WriteOffs(issuer)
        self.restrictions = Restrictions(issuer)
        self.treatment = Treatment(self.calendar, ruleset.holds.after == "reage")
        self.episodes = Episodes(self.rulebook, issuer, self.writeoffs, self.restrictions)
        self.receipts = Receipts(ruleset.delivery, self.rulebook)
        self.contact = ContactPolicy(ruleset.channels, ruleset.blackout, self.calendar)
        self.delivery = Delivery(self.rulebook, ruleset.contact_window, ruleset.limits, issuer, self.receipts,
                                 self.contact)
        self.wakeups = Wakeups(self.calendar, self.rulebook.lookahead, ruleset.contact_window, self.contact)
        # Each account event type's effect on the state; returns the audit detail ("ignored" when moot).
        agreed = self.arrangements.agreed
        self._appliers = {**APPLIERS, ExtensionAgreed: agreed, PromiseToPayAgreed: agreed,
                          InstallmentsAgreed: agreed, SettlementAgreed: agreed, ArrangementCancelled: cancelled,
                          DebtWrittenOff: debt_written_off, AccountFlagged: self.treatment.flagged,
                          AccountUnflagged: self.treatment.unflagged, AccountStatement: statement,
                          NoticeDelivered: self.receipts.delivered, NoticeFailed: self.receipts.failed,
                          ContactRecorded: self.contact.recorded}

    # ----------------------------------------------------------------- entry points

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

    def step(self, state: AccountState | None, event: InputEvent, platform: PlatformState) -> Outcome:
        """Applies one event (or tick) to one account, a new one (the event's) when state is None."""
        if state is None:
            state = AccountState(account_id=event.account_id)
        out = Outcome(state, version=self.version, variant=self.variant)
        apply = self._appliers.get(type(event))
        if apply is None:  # the clock, or a platform-wide event (see apply_platform)
            if isinstance(event, ClockTick) and (state.evaluated_until is None or event.at > state.evaluated_until):
                self._evaluate(out, platform, event)
                retire(state, event.at)
                self.receipts.forget(state, event.at)
        else:
            clock = platform.clock
            now = event.occurred_at if clock is None or event.occurred_at > clock else clock
            if remember(state, event.event_id, now):
                retire(state, now)
                self.receipts.forget(state, now)
                self._apply(out, platform, event, apply, now)
                zone = self.calendar.zone_of(state)
                outages = self.calendar.outages(platform, zone)
                behaviour.paid(state, now.astimezone(zone).date(), lambda invoice: effective_due(invoice, outages))
                behaviour.observe(out, now.astimezone(zone).date())
                settle_books(state, now)
            else:
                record(out, event.occurred_at, event.type, event.event_id,
                       {"ignored": "event already applied (a redelivery)"}, case_file=False)
        out.wakeup = self.wakeups.wakeup(state, platform)
        return out

    def wakeup(self, state: AccountState, platform: PlatformState) -> datetime | None:
        """The earliest instant a tick could change this account (None: none until an event arrives)."""
        return self.wakeups.wakeup(state, platform)

    def portfolio(self, state: AccountState, platform: PlatformState, at: datetime) -> dict[str, Position]:
        """The account's standing per currency at `at`, for portfolio metrics and aging reports."""
        zone = self.zone_of(state)
        return positions(state, at.astimezone(zone).date(), self.calendar.outages(platform, zone))

    def zone_of(self, state: AccountState) -> ZoneInfo:
        return self.calendar.zone_of(state)

    def effective_due(self, invoice: InvoiceState, platform: PlatformState, zone: ZoneInfo) -> date:
        return effective_due(invoice, self.calendar.outages(platform, zone))

    # ----------------------------------------------------------------- one event, one tick

    def _apply(self, out: Outcome, platform: PlatformState, event: InputEvent, apply: Applier, now: datetime) -> None:
        state, event_id = out.state, event.event_id
        state.dirty = True
        zone = self.calendar.zone_of(state)
        if state.flags:
            self.treatment.expire(out, now, now.astimezone(zone).date())
        line = record(out, event.occurred_at, event.type, event_id, {})  # before the decisions the event causes
        outages = self.calendar.outages(platform, zone)
        written = targets(state, event) if type(event) is DebtWrittenOff else None  # what the applier writes off
        line.detail = detail = apply(state, event, When(now, outages))
        moot = "ignored" in detail
        if not moot:
            note_books(state, event)
            if type(event) is AccountStatement:
                reconciled(out, now, event, detail)
        if type(event) is PaymentReceived and state.arrangements and not moot:  # it may keep what a tick broke
            self.arrangements.rejudge(out, platform, event, now)
        elif type(event) in (PromiseToPayAgreed, SettlementAgreed) and not moot:
            self.arrangements.supersede(out, now, event.kind)
        # A settlement is paid by a payment, or at its agreement by payments that arrived before it
        settled = (self.settlements.paid_in_full(state, platform, now)
                   if type(event) in (PaymentReceived, SettlementAgreed) and state.arrangements and not moot else [])
        moment = self.calendar.moment(state, platform, now)
        for settlement in settled:
            self.settlements.announce(out, moment, event_id, settlement)
        if state.arrangements and not moot:  # a settlement whose invoices this event closed ends with it
            close_settlements(out, now)
        if written and not moot:
            self.writeoffs.by_event(out, moment, event, written)
        elif "recovered" in detail:
            self.writeoffs.recovered(out, moment, event, Decimal(detail["recovered"]))
        if event.type in self.rulebook.event and not moot:
            self.episodes.fire_event_rules(out, moment, event)
            moment = _after_write_offs(out, moment)
        self.episodes.update(out, moment, event_id)
        if "ceased" in detail:  # contact.recorded ended direct contact just now
            self.episodes.ceased(out, moment, event_id)
        if state.restrictions:
            self.restrictions.review(out, moment, event_id)
        # a moot event (a repeat, an unknown id) changes nothing, not even when waiting notices go
        if state.pending and not moot:
            if state.flags:
                self.delivery.silence(out, moment)
            self.delivery.release(out, moment, event_id)

    def _evaluate(self, out: Outcome, platform: PlatformState, tick: ClockTick) -> None:
        state, now, cause = out.state, tick.at, tick.event_id
        state.evaluated_until = now
        state.dirty = False
        state.platform_revision = platform.revision
        if state.flags:
            self.treatment.expire(out, now, now.astimezone(self.calendar.zone_of(state)).date())
        if state.holds:
            self.treatment.prune(state)
        if state.arrangements:
            for broken in self.arrangements.judge(out, platform, now):
                self.episodes.arrangement_broken(out, self.calendar.moment(state, platform, now), broken)
        moment = self.calendar.moment(state, platform, now)
        if state.last_sent:
            self.episodes.forget_past_sends(state, moment.today)
        self.episodes.update(out, moment, cause)
        observed = behaviour.observe(out, moment.today)  # before rules fire: they see this episode and breaks
        if not paused(state):
            if state.episode is not None:
                self.episodes.fire_episode_rules(out, moment, cause)
                after = _after_write_offs(out, moment)
                if after is not moment:  # a rule wrote the debt off: the episode may be over
                    moment = after
                    self.episodes.update(out, moment, cause)
            if self.rulebook.invoice:
                self.episodes.fire_invoice_rules(out, moment, cause)
        if state.restrictions:
            self.restrictions.review(out, moment, cause)
        if state.flags and state.pending:
            self.delivery.silence(out, moment)
        self.delivery.release(out, moment, cause)
        behaviour.observe(out, moment.today, observed)


def _after_write_offs(out: Outcome, moment: Moment) -> Moment:
    """The moment again when a rule wrote debt off in it: what is overdue changed."""
    return moment.again() if any(notice.kind == "write_off" for notice in out.notices) else moment
