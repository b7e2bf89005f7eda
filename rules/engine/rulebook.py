"""The ruleset's rules as the engine reads them on every evaluation, compiled once per engine."""
from __future__ import annotations

from typing import Any

from rules.model import Rule, Ruleset


class Compiled:
    """A rule with what the engine reads on every evaluation held in plain slots."""

    __slots__ = ("index", "rule", "id", "conditions", "every_days", "kind", "currency")

    def __init__(self, index: int, rule: Rule):
        self.index, self.rule, self.id = index, rule, rule.id
        self.conditions = rule.conditions
        self.every_days = rule.every_days
        # Once-only rules of one kind due together collapse to the last; restrictions of different actions do not.
        self.kind = rule.emit.kind if rule.emit.action is None else f"{rule.emit.kind}:{rule.emit.action}"
        self.currency = rule.currency

    def matches(self, facts: dict[str, Any]) -> bool:
        for condition in self.conditions:
            if not condition.test(facts.get(condition.fact)):
                return False
        return True


class Rulebook:
    """Plain tuples of what the hot path reads, instead of pydantic properties on every evaluation."""

    __slots__ = ("episode", "invoice", "event", "by_id", "lookahead")

    def __init__(self, ruleset: Ruleset):
        self.episode = tuple(Compiled(i, r) for i, r in ruleset.episode_rules)
        self.invoice = tuple(Compiled(i, r) for i, r in ruleset.invoice_rules)
        self.event = {name: tuple(Compiled(i, r) for i, r in ruleset.event_rules(name))
                      for name in {r.on for r in ruleset.rules if r.on}}
        self.by_id = {c.rule.id: c for c in (*self.episode, *self.invoice,
                                             *(c for group in self.event.values() for c in group))}
        self.lookahead = _invoice_lookahead(ruleset)


def _invoice_lookahead(ruleset: Ruleset) -> int | None:
    """How many days before a due date invoice rules can fire; None when a rule has no upper bound."""
    longest = 0
    for _, rule in ruleset.invoice_rules:
        reach = None
        for condition in rule.conditions:
            if condition.fact == "days_until_due":
                reach = _upper_bound(condition.source)
        if reach is None:
            return None
        longest = max(longest, reach)
    return longest


def _upper_bound(written: Any) -> int | None:
    if isinstance(written, int):
        return written
    if isinstance(written, dict):
        bounds = [written.get("lte"), written.get("eq")]
        if written.get("lt") is not None:
            bounds.append(written["lt"] - 1)
        if isinstance(written.get("between"), list):
            bounds.append(written["between"][1])
        if isinstance(written.get("in"), list):
            bounds.append(max(written["in"]))
        known = [b for b in bounds if isinstance(b, int)]
        return min(known) if known else None
    return None
