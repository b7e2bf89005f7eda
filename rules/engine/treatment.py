"""Holds and flags on an account (account.flagged / account.unflagged), and what each does to dunning.

- breathing_space, hardship: a hold. Time rules pause while it stands (as for a promise to pay) and the days-past-
  due clock stops from the local day after the flag (rules/engine/holds.py: how days count after it, and the
  ruleset's `holds: {after: reage}`). Event rules still fire; rules may condition on `flags`.
- do_not_dun: nothing a rule decides goes out (contacts, handoffs, restrictions, write-offs); each one is recorded
  as `decision.suppressed`. What billing decides (its write-offs, settlements paid, recoveries) and what winds
  dunning down (handoff recalls, restrictions lifted) still goes.
- deceased, bankruptcy, fraud: no more customer contact (reminders, urgent notices, offers are suppressed);
  handoffs go, so rules hand the account to a named team (`teams:` in the ruleset).
- vulnerable: only a fact; the ruleset says what changes.
A flag with `until` stands through that local day and is dropped at the first step after it
(`decision.flag_expired`).
"""
from __future__ import annotations

from datetime import date, datetime

from rules.engine.ledger import When
from rules.engine.moment import Calendar
from rules.engine.outcome import Outcome, record
from rules.state import AccountState, FlagState, Hold
from schemas.events import AccountFlagged, AccountUnflagged

HOLDING = ("breathing_space", "hardship")
NO_CONTACT = ("deceased", "bankruptcy", "fraud")
CONTACT_KINDS = ("reminder", "urgent_notice", "offer")
# What a rule decides: do_not_dun suppresses all of it; deceased, bankruptcy and fraud only the contacts.
RULE_KINDS = (*CONTACT_KINDS, "handoff", "write_off", "restrict")


def silenced(state: AccountState, kind: str) -> str | None:
    """Why a rule's decision of this kind must not go out on this account now (None: it may)."""
    flags = state.flags
    if not flags:
        return None
    if "do_not_dun" in flags and kind in RULE_KINDS:
        return "account flagged do_not_dun"
    if kind in CONTACT_KINDS:
        for flag in NO_CONTACT:
            if flag in flags:
                return f"account flagged {flag}: no customer contact"
    return None


class Treatment:
    def __init__(self, calendar: Calendar, reage: bool):
        self.calendar = calendar
        self.reage = reage  # the ruleset's holds.after

    def _today(self, state: AccountState, when: When) -> date:
        return when.now.astimezone(self.calendar.zone_of(state)).date()

    def flagged(self, state: AccountState, event: AccountFlagged, when: When) -> dict[str, str]:
        """The applier of account.flagged: the flag stands (again: its until and reference are replaced)."""
        detail = {"flag": event.flag}
        if event.until is not None:
            detail["until"] = event.until.isoformat()
        if event.reference is not None:
            detail["reference"] = event.reference
        today = self._today(state, when)
        if event.until is not None and event.until < today:
            detail["ignored"] = "until is before today"
            return detail
        standing = state.flags.get(event.flag)
        if standing is not None and (standing.until, standing.reference) == (event.until, event.reference):
            detail["ignored"] = "flag already standing"
            return detail
        state.flags[event.flag] = FlagState(standing.since if standing else when.now, event.until, event.reference)
        if event.flag in HOLDING and not (state.holds and state.holds[-1].last is None):
            state.holds.append(Hold(date.fromordinal(today.toordinal() + 1)))
        return detail

    def unflagged(self, state: AccountState, event: AccountUnflagged, when: When) -> dict[str, str]:
        detail = {"flag": event.flag}
        if event.reference is not None:
            detail["reference"] = event.reference
        if event.flag not in state.flags:
            detail["ignored"] = "flag not standing"
            return detail
        self._drop(state, event.flag, self._today(state, when))
        return detail

    def expire(self, out: Outcome, now: datetime, today: date) -> None:
        """Flags whose until has passed end before anything else is decided."""
        state = out.state
        for flag, standing in list(state.flags.items()):
            if standing.until is not None and standing.until < today:
                self._drop(state, flag, standing.until)
                detail = {"flag": flag, "until": standing.until.isoformat()}
                if standing.reference:
                    detail["reference"] = standing.reference
                record(out, now, "decision.flag_expired", flag, detail)

    def _drop(self, state: AccountState, flag: str, last: date) -> None:
        del state.flags[flag]
        hold = state.holds[-1] if state.holds else None
        if flag in HOLDING and hold is not None and hold.last is None \
                and not any(other in state.flags for other in HOLDING):
            if last < hold.first:  # ended the day it began: no day was held
                state.holds.pop()
            else:
                hold.last, hold.reage = last, self.reage

    @staticmethod
    def prune(state: AccountState) -> None:
        """Ended holds stay only while an open invoice fell due before their end (they still count for it)."""
        if not state.holds:
            return
        dues = [inv.fell_due or inv.extended_to or inv.due_date for inv in state.invoices.values()
                if inv.status == "open"]
        earliest = min(dues, default=None)
        state.holds = [hold for hold in state.holds
                       if hold.last is None or (earliest is not None and earliest < hold.last)]
