"""Delivery of waiting reminders, urgent notices and offers: withdrawn when their reason is gone, held for the contact
window and the limits, sent on the first channel the customer has not opted out of."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import get_args

from rules.engine.contact import WEEK_DAYS, ContactPolicy
from rules.engine.moment import Moment, dunnable, effective_due, paused
from rules.engine.notices import NoticeIssuer, concerned, notice_id
from rules.engine.outcome import Outcome, record
from rules.engine.receipts import Receipts
from rules.engine.rulebook import Rulebook
from rules.engine.settlement import covered, offer, settlement_standing, terms
from rules.engine.treatment import silenced
from rules.model import ContactWindow, Limits
from rules.state import AccountState, Pending
from schemas.notices import Trigger

# Urgent notices go before reminders and offers when limits leave too little room.
_KIND_PRIORITY = {"urgent_notice": 0, "reminder": 1, "offer": 1}


class Delivery:
    def __init__(self, rulebook: Rulebook, window: ContactWindow | None, limits: Limits, issuer: NoticeIssuer,
                 receipts: Receipts, contact: ContactPolicy):
        self.rulebook = rulebook
        self.window = window
        self.limits = limits
        self.issuer = issuer
        self.receipts = receipts
        self.contact = contact

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
        if state.ceased is not None:  # no more direct contact: every waiting one is recorded and dropped
            for pending in still:
                self._suppress(out, pending, moment, f"direct contact ended ({state.ceased.replace('_', ' ')})")
            still = []
        state.pending = still
        window = self.window
        if window is not None and not window.contains(moment.local.time()):
            for pending in still:
                if "contact_window" not in pending.deferred_by:
                    pending.deferred_by.append("contact_window")
            return
        later = [pending for pending in still if pending.not_before is not None and pending.not_before > now]
        if later:  # retries wait for their delay
            still = [pending for pending in still if pending not in later]
        # A notice no channel can carry is recorded and dropped first, so it takes no place under the limits.
        channels = {id(pending): self._channel(state, pending) for pending in still}
        for pending in still:
            if channels[id(pending)] is None:
                _no_channel(out, pending, now)
                self._decided_unsent(state, pending, today)
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
        contact = self.contact if self.contact.active or state.contact_hours else None
        held = []
        for pending in still:
            channel = channels[id(pending)]
            # a blackout day, the channel's own window or caps, the customer's hours (rules/engine/contact.py), then
            # the account's limits
            reason = contact.holds(state, channel, moment.local) if contact is not None else None
            if reason is None and room <= 0:
                reason = "limits"
            if reason is not None:
                if reason not in pending.deferred_by:
                    pending.deferred_by.append(reason)
                held.append(pending)
                continue
            if self._send(out, moment, cause, pending, channel):
                room -= 1  # an offer withdrawn or suppressed as it would go takes no place under the limits
        state.pending = held + later if later else held

    def silence(self, out: Outcome, moment: Moment) -> None:
        """Waiting notices a flag stopped (rules/engine/treatment.py): each is recorded as suppressed and dropped."""
        state = out.state
        kept = []
        for pending in state.pending:
            reason = silenced(state, pending.kind)
            if reason is None:
                kept.append(pending)
            else:
                self._suppress(out, pending, moment, reason)
        state.pending = kept

    def _suppress(self, out: Outcome, pending: Pending, moment: Moment, reason: str) -> None:
        record(out, moment.now, "decision.suppressed", pending.rule_id, _named(out.state, pending, {"reason": reason}))
        self._decided_unsent(out.state, pending, moment.today)

    def _decided_unsent(self, state: AccountState, pending: Pending, today: date) -> None:
        """A repeating rule's interval counts from a decision not to send, as from a send: whichever ticks looked
        at the account, it is decided again only after its interval."""
        if self.rulebook.by_id[pending.rule_id].every_days is not None:
            state.last_sent[pending.rule_id] = today

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
        """The first channel the rule allows that the customer has not opted out of ('preferred': theirs), that
        is not unreachable and that this notice did not fail on already; a retry's own channel while it is."""
        rule = self.rulebook.by_id[pending.rule_id].rule
        candidates: list[str] = [pending.channel] if pending.channel is not None else []
        for channel in rule.emit.channels:
            candidates.extend(state.channels if channel == "preferred" else [channel])
        closed = state.unreachable
        tried = pending.tried
        return next((c for c in candidates if c not in state.opted_out and c not in closed and c not in tried), None)

    def _send(self, out: Outcome, moment: Moment, cause: str, pending: Pending, channel: str) -> bool:
        """Sends it; False when an offer does not go after all (withdrawn or suppressed)."""
        state = out.state
        compiled = self.rulebook.by_id[pending.rule_id]
        rule = compiled.rule
        invoices, extra = concerned(state, moment, pending.invoice_id), None
        standing = state.arrangements.get(pending.arrangement_id) if pending.replaces else None
        if pending.kind == "offer" and standing is not None and standing.status == "offered":
            # An offer sent again after a failed delivery: the same offer, on another channel or later.
            invoices = covered(state, standing, moment)
            extra = {"settlement": terms(standing, moment.local.tzinfo.key)}
        elif pending.kind == "offer":
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
        self.contact.count(state, channel, sent_on)
        if compiled.every_days is not None:
            state.last_sent[rule.id] = sent_on
        self.issuer.issue(
            out, moment, cause, kind=pending.kind, rule_id=rule.id, key=pending.key,
            episode_id=pending.episode_id,
            trigger=Trigger(event_id=pending.trigger_event, at=pending.trigger_at,
                            deferred_by=_in_order(pending.deferred_by)),
            facts=pending.facts, channel=channel, template=rule.emit.template, invoices=invoices,
            extra={**(extra or {}), "replaces": pending.replaces} if pending.replaces else extra,
        )
        self.receipts.sent(state, out.notices[-1].notice_id, channel, moment.now, pending)
        return True


_REASONS = get_args(get_args(Trigger.model_fields["deferred_by"].annotation)[0])


def _in_order(reasons: list[str]) -> list[str]:
    """What held a notice, in one order: which ticks looked at the account (idle ones may be skipped) must not
    change the order in which the reasons were first seen."""
    return sorted(reasons, key=_REASONS.index) if len(reasons) > 1 else reasons


def _no_channel(out: Outcome, pending: Pending, now: datetime) -> None:
    """Recorded and dropped: opted out of every channel (suppressed), or every one left unreachable or failed."""
    state = out.state
    if pending.replaces or state.unreachable:
        record(out, now, "decision.undeliverable", pending.rule_id, _named(state, pending, {
            "reason": "every channel the rule allows is opted out of, unreachable or failed for this notice",
            "unreachable": ",".join(state.unreachable)}))
    else:
        record(out, now, "decision.suppressed", pending.rule_id, _named(state, pending, {
            "reason": "the customer opted out of every channel the rule allows"}))


def _withdraw(out: Outcome, pending: Pending, now: datetime, reason: str | None = None) -> None:
    state = out.state
    if pending.replaces is not None:
        pass  # a notice sent again: the rule fired and its first notice went; that stays
    elif pending.scope == "episode" and state.episode is not None and state.episode.episode_id == pending.episode_id:
        state.episode.done.pop(pending.rule_id, None)
    elif pending.scope == "invoice" and pending.invoice_id in state.invoices:
        done = state.invoices[pending.invoice_id].rules_done
        if pending.rule_id in done:
            done.remove(pending.rule_id)
    record(out, now, "decision.withdrawn", pending.rule_id,
           _named(state, pending, {"reason": reason} if reason else {}))


def _named(state: AccountState, pending: Pending, detail: dict[str, str]) -> dict[str, str]:
    """A decision's detail with the notice it is about (and the one that notice replaces)."""
    detail["notice_id"] = notice_id(state.account_id, pending.key)
    if pending.replaces:
        detail["replaces"] = pending.replaces
    return detail
