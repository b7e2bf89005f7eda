"""Output: the notices the engine issues. They carry ids and amounts, never addresses or names."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from schemas.events import WriteOffReason
from schemas.types import Amount, Currency, Day, Timestamp

# To the customer: reminder, urgent_notice, offer (of a settlement). To a team: handoff. To billing and finance,
# decisions about the debt: settlement (paid as agreed, the rest written off), write_off, recovery.
# restriction: a restriction applied to the account or lifted from it (freeze_credit, ...), for billing to enforce.
NoticeKind = Literal["reminder", "urgent_notice", "handoff", "offer", "settlement", "write_off", "recovery",
                     "restriction"]
STANDARD_TEAMS = ("collector", "agency", "legal")
# collector, agency, legal, or a team the ruleset lists under `teams:` (fraud, bereavement, insolvency, ...)
HandoffTarget = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
HandoffAction = Literal["open", "recall"]
NOTICE_KINDS: tuple[str, ...] = get_args(NoticeKind)
WrittenOffBecause = Literal[WriteOffReason, "settlement"]

FactValue = str | int | bool | None
# Delivery receipts are input events whose type starts like a notice's audit line (notice.<kind>).
RECEIPT_TYPES = ("notice.delivered", "notice.failed")


def is_notice_line(what: str) -> bool:
    """An audit or case-file line of a notice sent (notice.<kind>), not of a delivery receipt."""
    return what.startswith("notice.") and what not in RECEIPT_TYPES


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InvoiceConcerned(_Contract):
    invoice_id: str
    currency: Currency
    amount_due: Amount
    due_date: Day = Field(description="the effective due date (after extensions, plans and outage grace)")


# A dataclass, not a model: it is also the line type of the engine's per-account journal (appended on every
# event, where a model's validation would cost), and pydantic takes the instances into a CaseFile as they are.
@dataclass(slots=True)
class CaseEntry:
    """One line of a case file: an event the account went through, or a notice it was sent."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    at: Timestamp
    what: Annotated[str, Field(description="event type, or 'notice.<kind>'")]
    id: Annotated[str, Field(description="event_id or notice_id")]
    detail: dict[str, str] = field(default_factory=dict)


class CaseFile(_Contract):
    events: list[CaseEntry]
    notices: list[CaseEntry]


class Trigger(_Contract):
    """What made the rule fire, when that differs from what released the notice."""

    event_id: str
    at: Timestamp
    # delivery_failed: sent again after its first send failed; retry: waited for the retry delay; channel_window,
    # channel_limits: the channel's own; blackout: a blackout day; quiet_period: after a right-party conversation;
    # customer_hours: the hours the customer asked to be contacted in (README, Contact rules)
    deferred_by: list[Literal["contact_window", "limits", "delivery_failed", "retry", "channel_window",
                              "channel_limits", "blackout", "quiet_period", "customer_hours"]] = Field(
        default_factory=list)


class SettlementTerms(_Contract):
    """A settlement: pay `amount` in each currency by `pay_by` and the covered invoices are closed."""

    settlement_id: str = Field(description="an offer's: its notice_id; an agreed one's: its arrangement_id. An "
                               "arrangement.agreed of kind settlement with this offer_id accepts the offer")
    amount: dict[str, Amount] = Field(description="to pay per currency (an offer's percent is rounded up to the "
                                      "currency's minor unit)")
    balance: dict[str, Amount] = Field(description="what the covered invoices owed when it was made")
    pay_by: Day = Field(description="the last day on which payments count, in the customer's time zone")
    time_zone: str


class RestrictionChange(_Contract):
    """A restriction billing enforces (freeze_credit, block_purchases, suspend_service, or a name a ruleset gave)."""

    action: str
    state: Literal["applied", "lifted"]
    applied_notice_id: str | None = Field(default=None, description="lifted: the notice that applied it")
    reason: str | None = Field(default=None, description="lifted: cured, written_off, settled, a rule's id, or "
                               "the ruleset no longer has the rule")


class Notice(_Contract):
    notice_id: str = Field(description="deterministic: the same inputs always give the same id")
    kind: NoticeKind
    account_id: str
    rule_id: str | None = Field(default=None, description="the rule that decided it (a settlement's: the rule that offered it); "
                                "absent for what billing or a collector decided (debt.written_off, an agreed "
                                "settlement, a recovery)")
    ruleset_version: str
    variant: str | None = Field(default=None, description="the experiment variant the account is in (absent: no "
                                "experiment)")
    channel: str | None = Field(default=None, description="reminders and urgent notices")
    template: str | None = None
    to: HandoffTarget | None = Field(default=None, description="handoffs")
    action: HandoffAction | None = Field(default=None, description="handoffs")
    days_past_due: int
    overdue: dict[str, Amount] = Field(description="overdue amount per currency")
    invoices: list[InvoiceConcerned]
    episode_id: str | None = Field(default=None, description="absent for event rules outside a delinquency episode")
    issued_at: Timestamp = Field(description="logical time of the tick or event that released the notice")
    caused_by: str = Field(description="id of that tick or event")
    trigger: Trigger = Field(description="the tick or event at which the rule fired")
    facts: dict[str, FactValue] = Field(description="the facts the rule saw when it fired")
    case_file: CaseFile | None = Field(default=None, description="handoffs: the episode's recent events and notices")
    settlement: SettlementTerms | None = Field(default=None, description="offers and settlements: the terms")
    paid: dict[str, Amount] | None = Field(default=None, description="settlements: paid under it per currency; "
                                           "recoveries: recovered per currency")
    written_off: dict[str, Amount] | None = Field(default=None, description="write-offs and settlements: the "
                                                  "amount written off per currency (a settlement's discount)")
    reason: WrittenOffBecause | None = Field(default=None, description="write-offs and settlements: why")
    restriction: RestrictionChange | None = Field(default=None, description="restrictions: what and its state")
    replaces: str | None = Field(default=None, description="a notice sent again (next channel after a failed "
                                 "delivery, or a retry): the notice_id of the one it replaces")

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


notice_adapter: TypeAdapter[Notice] = TypeAdapter(Notice)

