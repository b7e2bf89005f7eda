"""Restrictions as decisions: a rule's `emit: {kind: restrict, action: freeze_credit}` tells billing to freeze the
credit line (block purchases, suspend service, ...) with a `restriction` notice on dunning.decisions, state
`applied`; the same notice with state `lifted` undoes it.

A restriction is state: applied once (a second rule applying the same action while it stands is recorded as
suppressed), lifted once. It lasts while the account is delinquent: it is lifted when nothing is overdue any more
(reason `cured`, or `written_off` / `settled` when that decision ended it), unless the rule said
`after_write_off: keep` and written-off debt is still unrecovered (then a recovery that clears it lifts it); or by
a rule's `emit: {kind: lift, action: ...}`. With nothing overdue there is nothing to restrict for: such a
decision is suppressed. Notice ids derive from the applying rule and its episode or event, so a replay applies
nothing twice.
"""
from __future__ import annotations

from typing import Any

from rules.engine.moment import Moment
from rules.engine.notices import NoticeIssuer, concerned, notice_id
from rules.engine.outcome import Outcome, record
from rules.model import Rule
from rules.state import ZERO, Restriction
from schemas.notices import RestrictionChange, Trigger


class Restrictions:
    def __init__(self, issuer: NoticeIssuer):
        self.issuer = issuer

    def by_rule(self, out: Outcome, moment: Moment, cause: str, rule: Rule, key: str, facts: dict[str, Any]) -> None:
        state, action = out.state, rule.emit.action
        if rule.emit.kind == "lift":
            if action in state.restrictions:
                self._lift(out, moment, cause, action, rule.id)
            else:
                record(out, moment.now, "decision.suppressed", rule.id, {"reason": f"{action} is not applied"})
            return
        if action in state.restrictions:
            record(out, moment.now, "decision.suppressed", rule.id,
                   {"reason": f"{action} already applied by {state.restrictions[action].rule_id}"})
            return
        if not moment.overdue:
            record(out, moment.now, "decision.suppressed", rule.id, {"reason": "nothing overdue to restrict for"})
            return
        episode_id = state.episode.episode_id if state.episode else None
        state.restrictions[action] = Restriction(key, rule.id, moment.now, episode_id,
                                                 rule.emit.after_write_off == "keep")
        self.issuer.issue(out, moment, cause, kind="restriction", rule_id=rule.id, key=key, episode_id=episode_id,
                          trigger=Trigger(event_id=cause, at=moment.now), facts=facts,
                          invoices=concerned(state, moment, None),
                          extra={"restriction": RestrictionChange(action=action, state="applied")})
        out.audit[-1].detail.update(restriction=action, state="applied")

    def review(self, out: Outcome, moment: Moment, cause: str) -> None:
        """Lifts what no longer holds: nothing overdue (and no written-off debt a restriction keeps for)."""
        state = out.state
        if not state.restrictions or moment.overdue:
            return
        unrecovered = any(amount > ZERO for amount in state.written_off.values())
        decided = {line.what for line in out.audit}
        because = ("written_off" if "decision.written_off" in decided
                   else "settled" if "decision.settled" in decided else "cured")
        for action, restriction in list(state.restrictions.items()):
            if not (restriction.keep_written_off and unrecovered):
                self._lift(out, moment, cause, action, because)

    def _lift(self, out: Outcome, moment: Moment, cause: str, action: str, reason: str) -> None:
        state = out.state
        restriction = state.restrictions.pop(action)
        self.issuer.issue(
            out, moment, cause, kind="restriction", rule_id=restriction.rule_id, key=f"{restriction.key}|lifted",
            episode_id=restriction.episode_id, trigger=Trigger(event_id=cause, at=moment.now), facts={},
            invoices=concerned(state, moment, None),
            extra={"restriction": RestrictionChange(
                action=action, state="lifted", applied_notice_id=notice_id(state.account_id, restriction.key),
                reason=reason)})
        out.audit[-1].detail.update(restriction=action, state="lifted", reason=reason)
