"""Notices as they go out: ids, the invoices and amounts they concern, a handoff's case file, and the audit line
that says why each one went."""
from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from rules.engine.moment import Moment, effective_due
from rules.engine.outcome import Outcome, record
from rules.state import ZERO, AccountState
from schemas.notices import CaseFile, InvoiceConcerned, Notice, Trigger



def notice_id(account_id: str, key: str) -> str:
    """Stable across replays, restarts and workers: derived from what the notice is about, not when it went."""
    return "n-" + hashlib.sha256(f"{account_id}\x1f{key}".encode()).hexdigest()[:32]


class NoticeIssuer:
    def __init__(self, version: str, variant: str | None = None):
        self.version = version  # the ruleset's, stamped on every notice
        self.variant = variant

    def issue(
        self, out: Outcome, moment: Moment, cause: str, *, kind: str, rule_id: str | None, key: str,
        episode_id: str | None, trigger: Trigger, facts: dict[str, Any], invoices: list[InvoiceConcerned],
        channel: str | None = None, template: str | None = None, to: str | None = None, action: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Adds the notice to the step's outcome, and its audit line: the rule, what it saw, what it waited for.
        `extra`: the fields of an offer or a decision (settlement terms, amounts, reason)."""
        state, now, overdue_list = out.state, moment.now, moment.overdue
        overdue: dict[str, Decimal] = {}
        for invoice, _, _ in overdue_list:
            overdue[invoice.currency] = overdue.get(invoice.currency, ZERO) + invoice.balance
        the_id = notice_id(state.account_id, key)
        out.notices.append(Notice(
            notice_id=the_id, kind=kind, account_id=state.account_id, rule_id=rule_id, ruleset_version=self.version,
            variant=self.variant, channel=channel, template=template, to=to, action=action,
            days_past_due=max((days for _, _, days in overdue_list), default=0), overdue=overdue,
            invoices=invoices, episode_id=episode_id, issued_at=now, caused_by=cause, trigger=trigger,
            facts=facts, case_file=_case_file(state) if kind == "handoff" else None, **(extra or {}),
        ))
        detail = {"rule_id": rule_id} if rule_id else {}
        if channel:
            detail.update(channel=channel, template=template or "")
        if to:
            detail.update(to=to, action=action or "open")
        if facts:
            detail["facts"] = ", ".join(f"{name}={value}" for name, value in facts.items())
        if trigger.event_id != cause:
            detail["decided"] = f"{trigger.at.isoformat()} by {trigger.event_id}"
        if trigger.deferred_by:
            detail["waited_for"] = ", ".join(trigger.deferred_by)
        if extra and extra.get("replaces"):
            detail["replaces"] = extra["replaces"]
        record(out, now, f"notice.{kind}", the_id, detail)


def concerned(state: AccountState, moment: Moment, invoice_id: str | None) -> list[InvoiceConcerned]:
    """The invoice a notice is about, or else every overdue one, by due date."""
    invoice = state.invoices.get(invoice_id) if invoice_id else None
    if invoice is not None:
        chosen = [(invoice, effective_due(invoice, moment.outages))]
    else:
        chosen = [(inv, due) for inv, due, _ in moment.overdue]
    return [
        InvoiceConcerned(invoice_id=inv.invoice_id, currency=inv.currency, amount_due=inv.balance, due_date=due)
        for inv, due in sorted(chosen, key=lambda pair: (pair[1], pair[0].invoice_id))
    ]


def _case_file(state: AccountState) -> CaseFile:
    """The delinquency story: the episode's events (from the one that opened it) and its notices."""
    return CaseFile(events=list(state.case_events), notices=list(state.case_notices))
