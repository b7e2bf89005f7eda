"""Input events: what billing, collections and the platform publish, and the clock.

Every event shares an envelope (event_id, type, account_id, occurred_at). Unknown extra fields are kept but
ignored; a missing or wrongly typed required field is a validation error.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator,
                      model_validator)

from schemas.types import (MAX_IDS, Amount, ClockTime, Currency, Day, Id, PositiveAmount, TimeZoneName, Timestamp,
                           Weekdays, by_weekday, error_path, readable)

FailureReason = Literal["insufficient_funds", "invalid_payment_method", "system_error", "other"]
RiskTier = Literal["low", "standard", "high"]
# Why a debt was written off. A settlement's forgiven remainder is written off too, as "settlement".
WriteOffReason = Literal["uncollectible", "bankruptcy", "deceased", "time_barred", "small_balance", "fraud", "other"]
# What an operator or a regulator's process says about an account (rules/engine/treatment.py says what each does).
Flag = Literal["breathing_space", "hardship", "vulnerable", "deceased", "bankruptcy", "fraud", "do_not_dun"]
PLATFORM_ACCOUNT = "*"
# Why a notification service could not deliver a notice (delivery receipts, rules/engine/receipts.py).
DeliveryFailure = Literal["bounced", "invalid_address", "unreachable", "blocked", "rejected", "other"]
# What came of a collector's or an agency's attempt to reach the customer (contact.recorded).
ContactOutcome = Literal["no_answer", "left_message", "right_party", "wrong_party", "wrong_number", "refused",
                         "cease_requested", "attorney_represented"]


class Envelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: Id
    account_id: Id
    occurred_at: Timestamp


class InvoiceIssued(Envelope):
    type: Literal["invoice.issued"]
    invoice_id: Id
    amount: Amount
    currency: Currency
    due_date: Day


class InvoiceAdjusted(Envelope):
    """The invoice's new total; a credit note lowers it."""

    type: Literal["invoice.adjusted"]
    invoice_id: Id
    amount: Amount


class InvoiceCancelled(Envelope):
    type: Literal["invoice.cancelled"]
    invoice_id: Id


class PaymentReceived(Envelope):
    """Without invoice_id the payment goes to the oldest effective due date first; any excess becomes credit."""

    type: Literal["payment.received"]
    payment_id: Id
    amount: PositiveAmount
    currency: Currency
    invoice_id: Id | None = None


class PaymentFailed(Envelope):
    """An auto-debit that failed; it changes no balance. Each attempt at the payment fails at most once: the same
    payment_id and attempt again changes nothing, a new attempt is a new failure."""

    type: Literal["payment.failed"]
    payment_id: Id
    amount: PositiveAmount
    currency: Currency
    invoice_id: Id | None = None
    reason: FailureReason
    attempt: int = Field(default=1, ge=1, strict=True,
                         description="Which try at the payment failed: 1 the first, a retry counts up")


class Installment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    due_date: Day
    amount: PositiveAmount


class _ArrangementAgreed(Envelope):
    type: Literal["arrangement.agreed"]
    arrangement_id: Id
    currency: Currency | None = Field(default=None, description="defaults to the ruleset's currency")


class ExtensionAgreed(_ArrangementAgreed):
    kind: Literal["extension"]
    new_due_date: Day
    invoice_ids: list[Id] | None = Field(default=None, max_length=MAX_IDS, description="absent: every open invoice")


class PromiseToPayAgreed(_ArrangementAgreed):
    kind: Literal["promise_to_pay"]
    promised_date: Day
    amount: PositiveAmount


class InstallmentsAgreed(_ArrangementAgreed):
    kind: Literal["installments"]
    schedule: list[Installment] = Field(min_length=1, max_length=MAX_IDS)
    invoice_ids: list[Id] | None = Field(default=None, max_length=MAX_IDS, description="absent: every open invoice")

    @field_validator("schedule")
    @classmethod
    def _in_date_order(cls, schedule: list[Installment]) -> list[Installment]:
        dates = [item.due_date for item in schedule]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("installment due dates must be distinct and in ascending order")
        return schedule


class SettlementAgreed(_ArrangementAgreed):
    """Part of the debt accepted in full payment: paid in full by by_date, the covered invoices close and their
    remainder is written off; missed, dunning resumes as after a broken promise."""

    kind: Literal["settlement"]
    amount: PositiveAmount = Field(description="to pay, in the arrangement's currency")
    by_date: Day = Field(description="the last day (the customer's time zone) on which payments count")
    invoice_ids: list[Id] | None = Field(default=None, max_length=MAX_IDS,
                                         description="absent: every open invoice in the currency")
    offer_id: Id | None = Field(default=None, description="the settlement_id of the offer this accepts, if any")


ArrangementAgreed = Annotated[
    Union[ExtensionAgreed, PromiseToPayAgreed, InstallmentsAgreed, SettlementAgreed], Field(discriminator="kind")
]


class ArrangementCancelled(Envelope):
    type: Literal["arrangement.cancelled"]
    arrangement_id: Id


class DisputeOpened(Envelope):
    type: Literal["dispute.opened"]
    invoice_id: Id


class DisputeResolved(Envelope):
    type: Literal["dispute.resolved"]
    invoice_id: Id


class DebtWrittenOff(Envelope):
    """Debt given up for collection: no more notices about it, open handoffs recalled. A later payment for it is a
    recovery and reopens nothing."""

    type: Literal["debt.written_off"]
    invoice_ids: list[Id] | None = Field(default=None, min_length=1, max_length=MAX_IDS,
                                         description="absent: every open invoice of the account")
    reason: WriteOffReason


class Hours(BaseModel):
    """Local hours of a day, from start up to an end after it (within the one day)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: ClockTime
    end: ClockTime


def _one_week(days: dict[str, Hours]) -> dict[str, Hours]:
    by_weekday(days)  # each day named once, ranges forwards
    for written, hours in days.items():
        if hours.end <= hours.start:  # "HH:MM" compares as times do
            raise ValueError(f"{written}: end {hours.end} is not after start {hours.start}")
    return days


WeekHours = Annotated[dict[Weekdays, Hours], Field(min_length=1, max_length=7,
                                                   json_schema_extra={"additionalProperties": False}),
                      AfterValidator(_one_week)]


class AccountUpdated(Envelope):
    type: Literal["account.updated"]
    risk_tier: RiskTier | None = None
    timezone: TimeZoneName | None = None
    channels: list[Id] | None = Field(default=None, max_length=MAX_IDS,
                                      description="preferred contact channels, in order")
    opted_out_channels: list[Id] | None = Field(default=None, max_length=MAX_IDS)
    score: int | None = Field(default=None, ge=0, le=1000, strict=True,
                              description="a credit or behaviour score from billing or a risk system (0-1000)")
    contact_hours: dict[Id, WeekHours] | None = Field(
        default=None, max_length=20, description="when the customer asked to be contacted (FCA CONC 7.9.4), per "
        "channel, \"*\" for every channel without its own: weekdays or ranges (mon-fri, sat) to local hours; a day "
        "not named has no contact. They narrow the ruleset's windows, never widen them; {} drops the request")


class AccountFlagged(Envelope):
    """A hold or flag on the account. The same flag again replaces its until and reference."""

    type: Literal["account.flagged"]
    flag: Flag
    until: Day | None = Field(default=None, description="the last local day it stands (absent: until unflagged)")
    reference: Id | None = Field(default=None, description="the case or debt-advice reference; never personal data")


class AccountUnflagged(Envelope):
    type: Literal["account.unflagged"]
    flag: Flag
    reference: Id | None = None


class StatementInvoice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    invoice_id: Id
    amount_due: Amount = Field(description="what billing says the invoice still owes")
    currency: Currency
    due_date: Day


class AccountStatement(Envelope):
    """Billing's books for the account at as_of, the book of record: its open invoices and its credit."""

    type: Literal["account.statement"]
    as_of: Timestamp
    invoices: list[StatementInvoice] = Field(max_length=MAX_IDS, description="every open invoice at as_of")
    credit: dict[Currency, Amount] | None = Field(default=None, description="credit balance per currency "
                                                  "(absent: not compared)")


class NoticeDelivered(Envelope):
    """A notification service's receipt: the notice reached the customer on the channel."""

    type: Literal["notice.delivered"]
    notice_id: Id
    channel: Id


class NoticeFailed(Envelope):
    """A notification service's receipt: the notice did not reach the customer. Permanent: the address is dead
    (the channel is unreachable until an account.updated gives it anew); temporary: worth trying again."""

    type: Literal["notice.failed"]
    notice_id: Id
    channel: Id
    reason: DeliveryFailure
    permanent: bool = Field(strict=True)


class ContactRecorded(Envelope):
    """A contact attempt by a collector, an agency or legal (or a named team): it counts against the channel's
    caps like one of ours; a right-party conversation starts the ruleset's quiet period; a wrong number closes the
    channel; a cease request or an attorney's representation stops every direct contact."""

    type: Literal["contact.recorded"]
    channel: Id = Field(description="call, visit, sms, email, ...")
    by: Id = Field(description="collector, agency, legal, or a named team")
    outcome: ContactOutcome


class PlatformOutage(Envelope):
    """Platform-wide: due dates inside [start, end] move to the local date of end + grace_days."""

    type: Literal["platform.outage"]
    account_id: Literal["*"] = PLATFORM_ACCOUNT
    outage_id: Id
    start: Timestamp
    end: Timestamp
    grace_days: int = Field(ge=0, le=366, strict=True)  # not true for 1 or "2" for 2

    @model_validator(mode="after")
    def _ordered(self) -> "PlatformOutage":
        if self.end < self.start:
            raise ValueError("outage end is before its start")
        return self


class ClockTick(Envelope):
    """The engine's only source of "now". account_id "*" reaches every account."""

    type: Literal["clock.tick"]
    at: Timestamp


InputEvent = Annotated[
    Union[
        InvoiceIssued,
        InvoiceAdjusted,
        InvoiceCancelled,
        PaymentReceived,
        PaymentFailed,
        ArrangementAgreed,
        ArrangementCancelled,
        DisputeOpened,
        DisputeResolved,
        DebtWrittenOff,
        AccountUpdated,
        PlatformOutage,
        ClockTick,
        AccountFlagged,
        AccountUnflagged,
        AccountStatement,
        NoticeDelivered,
        NoticeFailed,
        ContactRecorded,
    ],
    Field(discriminator="type"),
]

EVENT_TYPES: tuple[str, ...] = (
    "invoice.issued",
    "invoice.adjusted",
    "invoice.cancelled",
    "payment.received",
    "payment.failed",
    "arrangement.agreed",
    "arrangement.cancelled",
    "dispute.opened",
    "dispute.resolved",
    "debt.written_off",
    "account.updated",
    "platform.outage",
    "clock.tick",
    "account.flagged",
    "account.unflagged",
    "account.statement",
    "notice.delivered",
    "notice.failed",
    "contact.recorded",
)

input_event_adapter: TypeAdapter[InputEvent] = TypeAdapter(InputEvent)
_validate_json = input_event_adapter.validator.validate_json  # TypeAdapter's own wrapper costs a tenth of a decode


def describe_errors(error: ValidationError) -> list[str]:
    """One readable line per problem: the field path and what is wrong with it."""
    return [f"{error_path(item['loc']) or 'event'}: {readable(item)}" for item in error.errors()]


def parse_event(raw: bytes | str) -> InputEvent:
    """Decodes and validates one JSON event; raises pydantic.ValidationError on bad input."""
    return _validate_json(raw)


def tick(at: Timestamp, account_id: str = PLATFORM_ACCOUNT) -> ClockTick:
    """A clock tick whose id is derived from its instant, so re-sent ticks are recognisably the same."""
    return ClockTick(
        event_id=f"tick:{at.isoformat()}", type="clock.tick", account_id=account_id, occurred_at=at, at=at
    )
