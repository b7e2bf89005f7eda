"""Delivery of waiting reminders, urgent notices and offers: withdrawn when their reason is gone, held for the contact
window and the limits, sent on the first channel the customer has not opted out of."""
from __future__ import annotations

from datetime import datetime, timedelta

from rules.engine.moment import Moment, dunnable, effective_due, paused
from rules.engine.notices import NoticeIssuer, concerned, notice_id
from rules.engine.outcome import Outcome, record
from rules.engine.rulebook import Rulebook
from rules.engine.settlement import covered, offer, settlement_standing, terms
from rules.model import ContactWindow, Limits
from rules.state import AccountState, Pending
from schemas.notices import Trigger

WEEK_DAYS = 7
# Urgent notices go before reminders and offers when limits leave too little room.
_KIND_PRIORITY = {"urgent_notice": 0, "reminder": 1, "offer": 1}


class Delivery:
    def __init__(self, rulebook: Rulebook, window: ContactWindow | None, limits: Limits, issuer: NoticeIssuer):
        self.rulebook = rulebook
        self.window = window
        self.limits = limits
        self.issuer = issuer

    def release(self, out: Outcome, moment: Moment, cause: str) -> None:
        state = out.state
        if not state.pending:
            return
        now, today = moment.now, moment.today
        still = []
        for pending in state.pending:
            if pending.rule_id not in self.rulebook.by_id:  # a new ruleset dropped the rule while it waited
                _withdraw(out, pending, now, f"rule {pending.rule_id} is not in ruleset {self.issuer.version}")
            elif self._still_due(state, pending, moment):
                still.append(pending)
            else:
                _withdraw(out, pending, now)
        state.pending = still
        window = self.window
        if window is not None and not window.contains(moment.local.time()):
            for pending in still:
                if "contact_window" not in pending.deferred_by:
                    pending.deferred_by.append("contact_window")
            return
        # A notice no channel can carry is recorded and dropped first, so it takes no place under the limits.
        channels = {id(pending): self._channel(state, pending) for pending in still}
        for pending in still:
            if channels[id(pending)] is None:
                record(out, now, "decision.suppressed", pending.rule_id,
                       {"reason": "the customer opted out of every channel the rule allows",
                        "notice_id": notice_id(state.account_id, pending.key)})
        still = [pending for pending in still if channels[id(pending)] is not None]
        week_start = today - timedelta(days=WEEK_DAYS - 1)
        state.sent_days = [day for day in state.sent_days if day >= week_start]
        room = len(still)
        limits = self.limits
        if limits.per_day is not None:
            room = min(room, limits.per_day - sum(1 for day in state.sent_days if day == today))
        if limits.per_week is not None:
            room = min(room, limits.per_week - len(state.sent_days))
        still.sort(key=lambda p: (_KIND_PRIORITY[p.kind], p.rule_index, p.trigger_at, p.key))
        state.pending = []
        for pending in still:
            if room <= 0:
                if "limits" not in pending.deferred_by:
                    pending.deferred_by.append("limits")
                state.pending.append(pending)
            elif self._send(out, moment, cause, pending, channels[id(pending)]):
                room -= 1  # an offer withdrawn or suppressed as it would go takes no place under the limits

    def _still_due(self, state: AccountState, pending: Pending, moment: Moment) -> bool:
        """A waiting time-rule notice goes only if its reason still holds when the window opens."""
        if pending.scope == "event":
            arrangement = state.arrangements.get(pending.arrangement_id) if pending.arrangement_id else None
            return arrangement is None or arrangement.status == "broken"
        if paused(state):
            return False
        rule = self.rulebook.by_id[pending.rule_id]
        facts = moment.facts(rule.currency)
        if pending.scope == "episode":
            return state.episode is not None and state.episode.episode_id == pending.episode_id and rule.matches(facts)
        invoice = state.invoices.get(pending.invoice_id)
        if invoice is None or not dunnable(invoice):
            return False
        until_due = (effective_due(invoice, moment.outages) - moment.today).days
        return rule.matches({**facts, "days_until_due": until_due})

    def _channel(self, state: AccountState, pending: Pending) -> str | None:
        """The first channel the rule allows that the customer has not opted out of ('preferred': theirs)."""
        rule = self.rulebook.by_id[pending.rule_id].rule
        candidates: list[str] = []
        for channel in rule.emit.channels:
            candidates.extend(state.channels if channel == "preferred" else [channel])
        return next((c for c in candidates if c not in state.opted_out), None)

    def _send(self, out: Outcome, moment: Moment, cause: str, pending: Pending, channel: str) -> bool:
        """Sends it; False when an offer does not go after all (withdrawn or suppressed)."""
        state = out.state
        compiled = self.rulebook.by_id[pending.rule_id]
        rule = compiled.rule
        invoices, extra = concerned(state, moment, pending.invoice_id), None
        if pending.kind == "offer":
            if settlement_standing(state):
                # Another offer went first (in this release), or an event rule's came while one stood: a time
                # rule's waits with the time rules and is decided again when they resume, as a waiting notice
                # under a promise is.
                _withdraw(out, pending, moment.now, "a settlement stands" + (
                    ": decided again when time rules resume" if pending.scope == "episode" else ""))
                return False
            # An offer is made as it goes: its terms are what is overdue now, its days counted from today.
            offer_id = notice_id(state.account_id, pending.key)
            settlement = offer(state, moment, rule, offer_id, rule.currency or moment.currency)
            if settlement is None:
                record(out, moment.now, "decision.suppressed", rule.id, {
                    "reason": "nothing to offer: nothing overdue, or a fixed amount not below it",
                    "notice_id": offer_id})
                return False
            state.arrangements[offer_id] = settlement
            invoices = covered(state, settlement, moment)
            extra = {"settlement": terms(settlement, moment.local.tzinfo.key)}
        sent_on = moment.today
        state.sent_days.append(sent_on)
        if compiled.every_days is not None:
            state.last_sent[rule.id] = sent_on
        self.issuer.issue(
            out, moment, cause, kind=pending.kind, rule_id=rule.id, key=pending.key,
            episode_id=pending.episode_id,
            trigger=Trigger(event_id=pending.trigger_event, at=pending.trigger_at, deferred_by=pending.deferred_by),
            facts=pending.facts, channel=channel, template=rule.emit.template, invoices=invoices, extra=extra,
        )
        return True


def _withdraw(out: Outcome, pending: Pending, now: datetime, reason: str | None = None) -> None:
    state = out.state
    if pending.scope == "episode" and state.episode is not None and state.episode.episode_id == pending.episode_id:
        state.episode.done.pop(pending.rule_id, None)
    elif pending.scope == "invoice" and pending.invoice_id in state.invoices:
        done = state.invoices[pending.invoice_id].rules_done
        if pending.rule_id in done:
            done.remove(pending.rule_id)
    detail = {"notice_id": notice_id(state.account_id, pending.key)}
    if reason:
        detail["reason"] = reason
    record(out, now, "decision.withdrawn", pending.rule_id, detail)
