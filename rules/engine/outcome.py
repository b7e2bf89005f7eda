"""What one step did to one account, and the one place its audit lines are written."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rules.state import JOURNAL_LIMIT, AccountState, JournalEntry
from schemas.notices import Notice


@dataclass(slots=True)
class Outcome:
    """One event (or tick) applied to one account: the state after it, the notices it released, every audit line
    it wrote (in order, whatever the account's capped journal kept), and when a tick should next look at it."""

    state: AccountState
    notices: list[Notice] = field(default_factory=list)
    audit: list[JournalEntry] = field(default_factory=list)
    wakeup: datetime | None = None


def record(out: Outcome, at: datetime, what: str, entry_id: str, detail: dict[str, str]) -> JournalEntry:
    """One audit line: into the step's audit, and into the account's journal (its latest JOURNAL_LIMIT lines)."""
    line = JournalEntry(at, what, entry_id, detail)
    out.audit.append(line)
    journal = out.state.journal
    journal.append(line)
    if len(journal) > JOURNAL_LIMIT:
        del journal[: len(journal) - JOURNAL_LIMIT]
    return line
