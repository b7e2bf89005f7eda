"""Output: the notices the engine issues. They carry ids and amounts, never addresses or names."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.types import Amount, Currency, Day, Timestamp

NoticeKind = Literal["reminder", "urgent_notice", "handoff"]
HandoffTarget = Literal["collector", "agency", "legal"]
HandoffAction = Literal["open", "recall"]
NOTICE_KINDS: tuple[str, ...] = ("reminder", "urgent_notice", "handoff")

FactValue = str | int | bool | None


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
    deferred_by: list[Literal["contact_window", "limits"]] = Field(default_factory=list)


class Notice(_Contract):
    notice_id: str = Field(description="deterministic: the same inputs always give the same id")
    kind: NoticeKind
    account_id: str
    rule_id: str
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

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


notice_adapter: TypeAdapter[Notice] = TypeAdapter(Notice)

