"""Per-account state the engine keeps, and platform-wide state every account sees.

Plain slotted dataclasses: the engine's hot path reads and writes them directly, and `rules.codec` turns them
into compact versioned bytes for the runtime's table and back.

An account's state holds what decisions need, not its history (that goes to the audit stream): open invoices,
and closed ones, payments and ended arrangements only for RETENTION after they closed (late adjustments,
refunds, and arrangements judged again by a late payment); event ids only for the redelivery window; the
case file only while a delinquency episode is open.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from rules.codec import Codec
from schemas.notices import CaseEntry

ZERO = Decimal("0")
RETENTION = timedelta(days=30)
# Event ids are remembered for REDELIVERY_WINDOW of the account's logical time, and the latest
# REDELIVERY_FLOOR of them whatever their age (a backfill can cross a week of event time in one batch).
REDELIVERY_WINDOW = timedelta(days=7)
REDELIVERY_FLOOR = 8
CASE_FILE_LIMIT = 50
# Notices sent and not yet answered by a delivery receipt: at most AWAITING_LIMIT per account (the oldest goes
# first), each forgotten after the ruleset's delivery.receipt_days.
AWAITING_LIMIT = 16

# One line of an account's audit trail: an event, a notice (notice.<kind>) or a decision behind them
# (decision.<skipped|withdrawn|suppressed|...>, episode.<started|ended>). A handoff's case file carries them
# as they are.
JournalEntry = CaseEntry


@dataclass(slots=True)
class InvoiceState:
    invoice_id: str
    currency: str
    amount: Decimal
    paid: Decimal
    due_date: date
    issued_at: datetime
    # written_off: given up (a later payment for it is a recovery); settled: closed by a settlement paid in full
    status: Literal["open", "paid", "cancelled", "written_off", "settled"] = "open"
    disputed: bool = False
    extended_to: date | None = None
    extension_id: str | None = None
    plan_id: str | None = None
    fell_due: date | None = None  # set when the installment plan covering it broke: the remainder fell due then
    rules_done: list[str] = field(default_factory=list)
    closed_at: datetime | None = None  # when it was paid off or cancelled: it leaves the state RETENTION later

    @property
    def balance(self) -> Decimal:
        return self.amount - self.paid


@dataclass(slots=True)
class PaymentRecord:
    currency: str
    amount: Decimal
    occurred_at: datetime


@dataclass(slots=True)
class InstallmentState:
    due_date: date
    amount: Decimal


@dataclass(slots=True)
class ArrangementState:
    arrangement_id: str
    kind: Literal["extension", "promise_to_pay", "installments", "settlement"]
    agreed_at: datetime
    currency: str
    # offered: a settlement a rule offered, not (yet) agreed; lapsed: an offer nobody took up by its date (not
    # broken: the customer never agreed to it)
    status: Literal["active", "offered", "kept", "broken", "cancelled", "superseded", "lapsed"] = "active"
    invoice_ids: list[str] = field(default_factory=list)
    new_due_date: date | None = None
    promised_date: date | None = None  # a promise's date; a settlement's last day on which payments count
    amount: Decimal | None = None
    schedule: list[InstallmentState] = field(default_factory=list)
    ended_at: datetime | None = None
    settle: dict[str, Decimal] = field(default_factory=dict)  # a settlement's amount to pay, per currency
    balance: dict[str, Decimal] = field(default_factory=dict)  # what its invoices owed when it was made
    rule_id: str | None = None  # the rule whose offer it is (an offer, or the agreement that accepted one)


@dataclass(slots=True)
class Pending:
    """A reminder or urgent notice decided but not yet sent (contact window or limits)."""

    key: str
    rule_id: str
    rule_index: int
    kind: str
    scope: Literal["episode", "invoice", "event"]
    trigger_event: str
    trigger_at: datetime
    facts: dict[str, Any]
    episode_id: str | None = None
    invoice_id: str | None = None
    arrangement_id: str | None = None  # for arrangement.broken notices: withdrawn if a late payment keeps it
    deferred_by: list[str] = field(default_factory=list)
    # layout 3: a notice sent again after a failed delivery (rules/engine/receipts.py)
    replaces: str | None = None  # the notice_id it replaces
    channel: str | None = None  # a retry: only this channel
    tried: list[str] = field(default_factory=list)  # channels its earlier sends failed on
    not_before: datetime | None = None  # a retry waits for the ruleset's delay
    retries: int = 0  # temporary failures retried so far


@dataclass(slots=True)
class Awaiting:
    """A notice sent on a channel, until its delivery receipt comes or it ages out: what is needed to send it
    again."""

    notice_id: str
    channel: str
    sent_at: datetime
    pending: Pending


@dataclass(slots=True)
class Episode:
    episode_id: str
    started_at: datetime
    done: dict[str, str] = field(default_factory=dict)  # once-per-episode rule id -> fired | skipped
    open_handoffs: dict[str, str] = field(default_factory=dict)  # target -> rule id that opened it
    delivered: int = 0  # layout 3: contacts a receipt said were delivered in this episode


@dataclass(slots=True)
class FlagState:
    """A flag standing on the account (rules/engine/treatment.py)."""

    since: datetime
    until: date | None = None  # the last local day it stands
    reference: str | None = None


@dataclass(slots=True)
class Hold:
    """Local days on which the days-past-due clock stood still (breathing space, hardship): from `first` through
    `last` (None: still holding). `reage`: when it ended, what was overdue became due on `last`."""

    first: date
    last: date | None = None
    reage: bool = False


@dataclass(slots=True)
class Restriction:
    """A restriction applied to the account (rules/engine/restrictions.py)."""

    key: str  # what its notice ids derive from
    rule_id: str
    applied_at: datetime
    episode_id: str | None = None
    keep_written_off: bool = False  # stays while written-off debt is unrecovered


@dataclass(slots=True)
class AccountState:
    account_id: str
    risk_tier: str = "standard"
    timezone: str | None = None
    channels: list[str] = field(default_factory=list)
    opted_out: list[str] = field(default_factory=list)
    invoices: dict[str, InvoiceState] = field(default_factory=dict)
    credit: dict[str, Decimal] = field(default_factory=dict)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    arrangements: dict[str, ArrangementState] = field(default_factory=dict)
    past_arrangement: str | None = None  # how the latest arrangement that left the state ended
    episode: Episode | None = None
    episode_seq: int = 0
    settled_invoices: int = 0
    # Written off and not yet recovered, per currency: payments beyond the open invoices recover it first.
    written_off: dict[str, Decimal] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)
    sent_days: list[date] = field(default_factory=list)  # local dates of recent reminders and urgent notices
    # Repeating rule id -> local date it was last sent, across episodes; kept until its interval has passed.
    last_sent: dict[str, date] = field(default_factory=dict)
    evaluated_until: datetime | None = None
    dirty: bool = True  # something changed since the last tick; the next tick must look
    platform_revision: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # recent event ids -> epoch seconds applied, oldest first
    case_events: list[JournalEntry] = field(default_factory=list)  # the current episode's (its case file)
    case_notices: list[JournalEntry] = field(default_factory=list)
    # Layout 3 (appended): flags and holds, restrictions, and how far billing's statements and events reached.
    flags: dict[str, FlagState] = field(default_factory=dict)
    holds: list[Hold] = field(default_factory=list)
    restrictions: dict[str, Restriction] = field(default_factory=dict)  # action -> the one applied
    books_at: datetime | None = None  # the latest occurred_at of an account event applied (statements aside)
    statement_at: datetime | None = None  # as_of of the latest statement applied
    # Behaviour aggregates (rules/engine/behaviour.py): bounded, not history.
    episode_starts: list[date] = field(default_factory=list)  # local start days within the last year, and the last
    last_cure_days: int | None = None
    broken_arrangements: int = 0
    invoices_paid: int = 0
    paid_on_time: int = 0
    score: int | None = None
    # layout 3: delivery receipts (rules/engine/receipts.py)
    awaiting: list[Awaiting] = field(default_factory=list)  # sent, no receipt yet; oldest first, bounded
    unreachable: list[str] = field(default_factory=list)  # channels a permanent failure closed
    # layout 3: local dates of the last 7 days' contacts per channel that has caps (ours, collectors', agencies')
    channel_days: dict[str, list[date]] = field(default_factory=dict)
    # layout 3: contacts collectors and agencies recorded (contact.recorded)
    conversation_at: datetime | None = None  # the latest right-party conversation
    ceased: str | None = None  # cease_requested or attorney_represented: no more direct contact
    # layout 4: the hours the customer asked to be contacted in (account.updated contact_hours), per channel ("*":
    # every channel without its own): seven days, Monday first, each [] (no contact) or [start, end] in minutes
    contact_hours: dict[str, list[list[int]]] = field(default_factory=dict)


@dataclass(slots=True)
class Outage:
    start: datetime
    end: datetime
    grace_days: int


@dataclass(slots=True)
class PlatformState:
    """What every account sees: the clock and platform outages."""

    clock: datetime | None = None
    outages: dict[str, Outage] = field(default_factory=dict)
    revision: int = 0


def _from_layout_1(stored: list[Any]) -> list[Any]:
    """Layout 1 had no settlements or write-offs: an arrangement lacked its last three fields (settle, balance,
    rule_id) and the account its written_off amounts."""
    names = [f.name for f in fields(AccountState)]
    for arrangement in stored[names.index("arrangements")].values():
        arrangement.extend([{}, {}, None])
    stored.insert(names.index("written_off"), {})
    return stored


def _from_layout_2(stored: list[Any]) -> list[Any]:
    """Layout 2 ended at the case file, and had no delivery receipts. A waiting notice lacked its last five fields
    (replaces, channel, tried, not_before, retries), an episode its delivered count. Appended to the account:
    flags, holds, restrictions and behaviour start empty, and books_at is the latest instant the state still holds
    of an invoice issued or closed or a payment (so a statement older than those is judged stale,
    rules/engine/reconcile.py); then no awaited receipts, unreachable channels, contacts per channel, conversation
    or cease."""
    names = [f.name for f in fields(AccountState)]
    for pending in stored[names.index("pending")]:
        pending.extend([None, None, [], None, 0])
    episode = stored[names.index("episode")]
    if episode is not None:
        episode.append(0)
    issued, closed = (next(i for i, f in enumerate(fields(InvoiceState)) if f.name == name)
                      for name in ("issued_at", "closed_at"))
    instants = [payment[2] for payment in stored[names.index("payments")].values()]  # occurred_at
    for invoice in stored[names.index("invoices")].values():
        instants += [at for at in (invoice[issued], invoice[closed]) if at is not None]
    # Behaviour aggregates start from nothing: layout 2 kept no record of how the account paid.
    treatment = [{}, [], {}, max(instants, key=lambda at: at[0], default=None), None, [], None, 0, 0, 0, None]
    return stored + treatment + [[], [], {}, None, None]


def _from_layout_3(stored: list[Any]) -> list[Any]:
    """Layout 3 had no customer's contact hours."""
    return stored + [{}]


# Version 4 of the stored layout (4: a customer's contact hours; 3: flags, holds, restrictions, statements,
# behaviour, delivery receipts and contacts; 2: settlements and write-offs; 1 to 3 are read and upgraded); a change
# of fields gets a new version (see rules.codec).
_account_codec: Codec[AccountState] = Codec(AccountState, 4, upgrades={
    1: lambda stored: _from_layout_3(_from_layout_2(_from_layout_1(stored))),
    2: lambda stored: _from_layout_3(_from_layout_2(stored)), 3: _from_layout_3})
_platform_codec: Codec[PlatformState] = Codec(PlatformState, 1)


def dump_account(state: AccountState) -> bytes:
    return _account_codec.encode(state)


def load_account(raw: bytes) -> AccountState:
    return _account_codec.decode(raw)


def dump_platform(state: PlatformState) -> bytes:
    return _platform_codec.encode(state)


def load_platform(raw: bytes) -> PlatformState:
    return _platform_codec.decode(raw)
