"""Delinquency episodes and the rules judged in them: which rules fire, which are skipped, and what each firing
decides (a handoff at once, a reminder or urgent notice to wait for delivery)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

from rules.engine.ledger import money
from rules.engine.moment import Moment, dunnable, effective_due
from rules.engine.notices import NoticeIssuer, concerned, notice_id
from rules.engine.outcome import Outcome, record
from rules.engine.restrictions import Restrictions
from rules.engine.rulebook import Compiled, Rulebook
from rules.engine.treatment import silenced
from rules.engine.writeoff import WriteOffs
from rules.model import ARRANGEMENT_BROKEN, EVENT_FACTS
from rules.state import AccountState, ArrangementState, Episode, Pending
from schemas.events import InputEvent
from schemas.notices import Trigger

Due = list[tuple[Compiled, dict[str, Any]]]  # rules whose conditions hold, with the facts they saw
# Teams whose work is contacting the customer: a cease request recalls their handoffs (legal and the ruleset's own
# teams keep theirs: legal deals with the attorney, the others with the case they were given).
CONTACTING_TEAMS = ("collector", "agency")


class Episodes:
    def __init__(self, rulebook: Rulebook, issuer: NoticeIssuer, writeoffs: WriteOffs, restrictions: Restrictions):
        self.rulebook = rulebook
        self.issuer = issuer
        self.writeoffs = writeoffs
        self.restrictions = restrictions

    def update(self, out: Outcome, moment: Moment, cause: str) -> None:
        """Starts the episode at day 1, or ends it (recalling its open handoffs) when nothing is overdue."""
        state, now, overdue = out.state, moment.now, moment.overdue
        episode = state.episode
        if episode is None and overdue:
            state.episode_seq += 1
            state.episode = Episode(f"{state.account_id}/{state.episode_seq}", now)
            state.case_notices.clear()  # the case file is the episode's
            record(out, now, "episode.started", state.episode.episode_id,
                   {"days_past_due": str(max(days for _, _, days in overdue))})
        elif episode is not None and not overdue:
            # The rules that contacted the account in this episode, for cure metrics per rule.
            contacted = sorted({line.detail["rule_id"] for line in state.case_notices if "rule_id" in line.detail})
            for target, rule_id in episode.open_handoffs.items():
                self._recall(out, moment, cause, episode, target, rule_id)
            state.episode = None
            state.case_events.clear()
            state.case_notices.clear()
            record(out, now, "episode.ended", episode.episode_id, {"rules": ",".join(contacted)} if contacted else {})

    def ceased(self, out: Outcome, moment: Moment, cause: str) -> None:
        """Direct contact just ended (cease requested, attorney named): the collector or agency holding the account
        is recalled, since their work is contacting the customer."""
        episode = out.state.episode
        if episode is None:
            return
        for target in [target for target in episode.open_handoffs if target in CONTACTING_TEAMS]:
            self._recall(out, moment, cause, episode, target, episode.open_handoffs.pop(target))

    def _recall(self, out: Outcome, moment: Moment, cause: str, episode: Episode, target: str, rule_id: str) -> None:
        self.issuer.issue(
            out, moment, cause, kind="handoff", rule_id=rule_id, key=f"recall|{target}|{episode.episode_id}",
            episode_id=episode.episode_id, trigger=Trigger(event_id=cause, at=moment.now), facts={},
            to=target, action="recall", invoices=[],
        )

    def fire_episode_rules(self, out: Outcome, moment: Moment, cause: str) -> None:
        state = out.state
        episode, today = state.episode, moment.today
        waiting = {p.rule_id for p in state.pending}
        due: Due = []
        for rule in self.rulebook.episode:
            if rule.every_days is None:
                if rule.id in episode.done:
                    continue
            else:
                last = state.last_sent.get(rule.id)
                if rule.id in waiting or (last is not None and (today - last).days < rule.every_days):
                    continue
            facts = moment.facts(rule.currency)
            if rule.matches(facts):
                due.append((rule, facts))
        fire = _collapse(out, moment.now, due, lambda rule: episode.done.__setitem__(rule.id, "skipped"))
        for rule, facts in fire:
            if rule.every_days is None:
                episode.done[rule.id] = "fired"
                key = f"{rule.id}|{episode.episode_id}"
            else:
                # A repeating rule counts its days from when it was last sent (see Delivery), not decided.
                key = f"{rule.id}|{episode.episode_id}|{today.isoformat()}"
            self._decide(out, moment, cause, rule, facts, scope="episode", key=key, episode_id=episode.episode_id)

    def forget_past_sends(self, state: AccountState, today: date) -> None:
        """Drops a repeating rule's last send once its interval has passed (with a day to spare: a new time zone
        can move the local date back one), or when the ruleset no longer has the rule."""
        by_id = self.rulebook.by_id
        for rule_id, sent_on in list(state.last_sent.items()):
            rule = by_id.get(rule_id)
            if rule is None or rule.every_days is None or (today - sent_on).days > rule.every_days:
                del state.last_sent[rule_id]

    def fire_invoice_rules(self, out: Outcome, moment: Moment, cause: str) -> None:
        state, lookahead = out.state, self.rulebook.lookahead
        for invoice in list(state.invoices.values()):
            if not dunnable(invoice):
                continue
            until_due = (effective_due(invoice, moment.outages) - moment.today).days
            if until_due < 0 or (lookahead is not None and until_due > lookahead):
                continue
            due: Due = []
            for rule in self.rulebook.invoice:
                if rule.id in invoice.rules_done:
                    continue
                facts = dict(moment.facts(rule.currency))
                facts["days_until_due"] = until_due
                if rule.matches(facts):
                    due.append((rule, facts))
            for rule, facts in _collapse(out, moment.now, due, lambda rule: invoice.rules_done.append(rule.id)):
                invoice.rules_done.append(rule.id)
                self._decide(out, moment, cause, rule, facts, scope="invoice",
                             key=f"{rule.id}|invoice:{invoice.invoice_id}", invoice_id=invoice.invoice_id,
                             episode_id=state.episode.episode_id if state.episode else None)

    def fire_event_rules(self, out: Outcome, moment: Moment, event: InputEvent) -> None:
        self._fire_event_rules(out, moment, event.type, event.event_id, event_facts(event.type, event),
                               invoice_id=event.__dict__.get("invoice_id"))

    def arrangement_broken(self, out: Outcome, moment: Moment, arrangement: ArrangementState) -> None:
        """The engine's own event: rules `on: arrangement.broken` fire as for an account event. Its id names the
        day of the break: a plan restored by a late payment and broken again is broken anew, with new notices."""
        self._fire_event_rules(out, moment, ARRANGEMENT_BROKEN,
                               f"{arrangement.arrangement_id}:broken:{moment.today.isoformat()}",
                               event_facts(ARRANGEMENT_BROKEN, arrangement), arrangement_id=arrangement.arrangement_id)

    def _fire_event_rules(
        self, out: Outcome, moment: Moment, event_type: str, event_id: str, event_facts: dict[str, Any],
        invoice_id: str | None = None, arrangement_id: str | None = None,
    ) -> None:
        rules = self.rulebook.event.get(event_type)
        if not rules:
            return
        if event_facts.get("failure_reason") == "system_error":
            # Our own platform's fault never counts against the customer.
            for rule in rules:
                record(out, moment.now, "decision.suppressed", rule.id, {"reason": "payment failed by system_error"})
            return
        state = out.state
        for rule in rules:
            facts = {**moment.facts(rule.currency), **event_facts}
            if rule.matches(facts):
                self._decide(out, moment, event_id, rule, facts, scope="event",
                             key=f"{rule.id}|event:{event_id}", invoice_id=invoice_id, arrangement_id=arrangement_id,
                             episode_id=state.episode.episode_id if state.episode else None)

    def _decide(
        self, out: Outcome, moment: Moment, cause: str, compiled: Compiled, facts: dict[str, Any], *,
        scope: str, key: str, episode_id: str | None = None, invoice_id: str | None = None,
        arrangement_id: str | None = None,
    ) -> None:
        """A handoff or a write-off is done at once; a reminder, urgent notice or offer waits in `pending` for
        delivery."""
        state, index, rule = out.state, compiled.index, compiled.rule
        shown = {name: (money(value) if isinstance(value, Decimal) else value) for name, value in facts.items()}
        now = moment.now
        if state.flags:
            flagged = silenced(state, rule.emit.kind)
            if flagged is not None:  # a flag stops it: recorded, and a repeating rule waits its interval again
                record(out, now, "decision.suppressed", rule.id,
                       {"reason": flagged, "notice_id": notice_id(state.account_id, key)})
                if compiled.every_days is not None:
                    state.last_sent[rule.id] = moment.today
                return
        if rule.emit.kind in ("restrict", "lift"):
            self.restrictions.by_rule(out, moment, cause, rule, key, shown)
            return
        if rule.emit.kind == "write_off":
            self.writeoffs.by_rule(out, moment, cause, rule.id, rule.emit.reason or "uncollectible", key, shown)
            return
        if rule.emit.kind == "handoff":
            self.issuer.issue(
                out, moment, cause, kind="handoff", rule_id=rule.id, key=key, episode_id=episode_id,
                trigger=Trigger(event_id=cause, at=now), facts=shown, to=rule.emit.to, action="open",
                invoices=concerned(state, moment, invoice_id),
            )
            if state.episode is not None and episode_id == state.episode.episode_id:
                state.episode.open_handoffs[rule.emit.to] = rule.id
            return
        state.pending.append(Pending(
            key=key, rule_id=rule.id, rule_index=index, kind=rule.emit.kind, scope=scope, trigger_event=cause,
            trigger_at=now, facts=shown, episode_id=episode_id, invoice_id=invoice_id, arrangement_id=arrangement_id,
        ))


def _collapse(out: Outcome, now: datetime, due: Due, mark_skipped: Callable[[Compiled], None]) -> Due:
    """Of once-only rules of one kind due together, only the last in file order fires; the rest are skipped."""
    last_of_kind: dict[str, int] = {}
    for position, (rule, _) in enumerate(due):
        if rule.every_days is None:
            last_of_kind[rule.kind] = position
    fire = []
    for position, (rule, facts) in enumerate(due):
        if rule.every_days is None and last_of_kind[rule.kind] != position:
            mark_skipped(rule)
            superseded_by = due[last_of_kind[rule.kind]][0].id
            record(out, now, "decision.skipped", rule.id, {"superseded_by": superseded_by})
        else:
            fire.append((rule, facts))
    return fire


# The declared facts of each `on:` type (rules.model.EVENT_FACTS) as (fact, field it is read from): a rule is judged
# on exactly what it may name.
_EVENT_FIELDS = {event_type: tuple((fact, spec.field or fact) for fact, spec in facts.items())
                 for event_type, facts in EVENT_FACTS.items()}


def event_facts(event_type: str, source: object) -> dict[str, Any]:
    """The facts of an event (or of the arrangement that broke, for arrangement.broken) its rules see."""
    facts = {}
    for fact, name in _EVENT_FIELDS.get(event_type, ()):
        value = getattr(source, name, None)
        if value is not None:
            facts[fact] = value
    return facts
