"""Output: the audit trail, one record per line, on `dunning.audit` keyed by account_id (append-only).

Every event applied to an account, every notice sent, and every decision behind or instead of one (skipped,
withdrawn, suppressed, an arrangement kept, broken, restored or superseded, an episode started or ended) is one
line. The simulator writes the same lines (`dunning simulate --audit FILE`), so a live trail and an offline one
can be compared line by line. After a worker crash a line may be repeated (at-least-once): the same account,
`at`, `what` and `id` name the same line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import ConfigDict, Field, TypeAdapter

from schemas.notices import CaseEntry
from schemas.types import Timestamp


@dataclass(slots=True)
class AuditRecord:
    """One line of an account's audit trail."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    account_id: str
    at: Annotated[Timestamp, Field(description="logical time: the event's, or the tick's that caused the line")]
    what: Annotated[str, Field(description="an event type, 'notice.<kind>', 'decision.<what>' or "
                                           "'episode.<started|ended>'")]
    id: Annotated[str, Field(description="event_id, notice_id, rule id, arrangement id or episode id")]
    ruleset_version: str
    detail: dict[str, str] = field(default_factory=dict)
    variant: Annotated[str | None, Field(description="the experiment variant the account is in (absent: no "
                                                     "experiment)")] = None

    @classmethod
    def of(cls, account_id: str, ruleset_version: str, line: CaseEntry, variant: str | None = None) -> "AuditRecord":
        return cls(account_id, line.at, line.what, line.id, ruleset_version, line.detail, variant)

    def line(self) -> CaseEntry:
        return CaseEntry(self.at, self.what, self.id, self.detail)

    def to_json(self) -> bytes:
        return audit_adapter.dump_json(self, exclude_none=True)


audit_adapter: TypeAdapter[AuditRecord] = TypeAdapter(AuditRecord)
