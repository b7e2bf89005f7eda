"""What one step did to one account, and the one place its audit lines are written."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rules.state import CASE_FILE_LIMIT, AccountState, JournalEntry
from schemas.notices import RECEIPT_TYPES, Notice


@dataclass(slots=True)
class Outcome:
    """One event (or tick) applied to one account: the state after it, the notices it released, every audit line
    it wrote (in order; the audit stream carries them), and when a tick should next look at it."""

    state: AccountState
    notices: list[Notice] = field(default_factory=list)
    audit: list[JournalEntry] = field(default_factory=list)
    wakeup: datetime | None = None
    version: str = ""  # the ruleset's that decided, and the experiment variant the account is in (None: none)
    variant: str | None = None


# What the case file keeps of a notice's line: what went out. Why (facts, when decided, what it waited for) is in
# the notice itself and on the audit stream; held for every notice of a long episode it was most of the state.
_SENT = ("rule_id", "channel", "template", "to", "action")


def record(out: Outcome, at: datetime, what: str, entry_id: str, detail: dict[str, str],
           case_file: bool = True) -> JournalEntry:
    """One audit line into the step's audit; events and notices also into the account's case file (unless
    `case_file` is False: a redelivery, which changes nothing in the state)."""
    line = JournalEntry(at, what, entry_id, detail)
    out.audit.append(line)
    if not case_file:
        return line
    if what.startswith("notice."):
        if what in RECEIPT_TYPES:  # a receipt is about a notice already in the case file: only on the audit
            return line
        kept = out.state.case_notices
        kept.append(JournalEntry(at, what, entry_id, {key: detail[key] for key in _SENT if key in detail}))
    elif what.startswith(("decision.", "episode.")):
        return line
    else:
        kept = out.state.case_events
        kept.append(line)
    if len(kept) > CASE_FILE_LIMIT:
        del kept[0]
    return line
