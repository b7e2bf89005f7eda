"""The rule language: pydantic models of a ruleset file, with conditions compiled to plain predicates."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from rules.contact_policy import Blackout, ChannelPolicy, ContactWindow, DeliveryPolicy
from schemas.events import EVENT_TYPES, ContactOutcome, Flag, PaymentFailed, WriteOffReason
from schemas.notices import STANDARD_TEAMS, HandoffTarget
from schemas.types import Currency, TimeZoneName

ARRANGEMENT_BROKEN = "arrangement.broken"
# Event types a rule may react to with `on:`: an account's own events, and arrangement.broken, which the
# engine raises itself. Platform-wide events (clock, outages) concern no one account.
RULE_EVENT_TYPES = tuple(t for t in EVENT_TYPES if t not in ("platform.outage", "clock.tick")) + (ARRANGEMENT_BROKEN,)

FactKind = Literal["days_past", "days_until", "money", "count", "choice", "flag", "text", "set"]
FLAGS: tuple[str, ...] = Flag.__args__


@dataclass(frozen=True, slots=True)
class FactSpec:
    kind: FactKind
    choices: tuple[str, ...] = ()
    field: str | None = None  # an event fact's field of the event (None: the fact's own name)


ACCOUNT_FACTS: dict[str, FactSpec] = {
    "days_past_due": FactSpec("days_past"),
    "days_until_due": FactSpec("days_until"),
    "overdue_amount": FactSpec("money"),
    "open_balance": FactSpec("money"),
    "overdue_invoices": FactSpec("count"),
    "risk_tier": FactSpec("choice", ("low", "standard", "high")),
    "arrangement": FactSpec("choice", ("none", "active", "broken")),
    "first_time": FactSpec("flag"),
    "flags": FactSpec("set", FLAGS),  # the flags standing on the account (rules/engine/treatment.py)
    # How the account has paid (rules/engine/behaviour.py)
    "episodes_12m": FactSpec("count"),
    "days_to_cure_last": FactSpec("count"),
    "broken_arrangements": FactSpec("count"),
    "paid_on_time": FactSpec("count"),  # percent of invoices paid off on time
    "score": FactSpec("count"),
}
# What the engine knows of contacts (rules/engine/contact.py); shown to rules only in a ruleset that uses one.
CONTACT_FACTS: dict[str, FactSpec] = {
    "unreachable_channels": FactSpec("count"),
    "delivered_contacts": FactSpec("count"),
    "days_since_conversation": FactSpec("days_past"),  # a bare number: at least that many days
    "contact_ceased": FactSpec("flag"),
}
ACCOUNT_FACTS.update(CONTACT_FACTS)

ARRANGEMENT_KINDS = ("extension", "promise_to_pay", "installments", "settlement")
# What a rule can do: tell the customer (reminder, urgent_notice, offer), hand the account to a team, or write
# the debt off.
# restrict / lift: apply or lift a restriction (freeze_credit, block_purchases, ...) told to billing.
RuleAction = Literal["reminder", "urgent_notice", "handoff", "offer", "write_off", "restrict", "lift"]

# Facts of the triggering event, per `on:` type, for event rules: what a rule may name is what the engine hands
# it (rules/engine/episodes.py reads these fields; arrangement.broken's from the arrangement that broke).
EVENT_FACTS: dict[str, dict[str, FactSpec]] = {
    "payment.failed": {
        "failure_reason": FactSpec("choice", PaymentFailed.model_fields["reason"].annotation.__args__, "reason"),
        "amount": FactSpec("money"),
        "currency": FactSpec("text"),
    },
    "payment.received": {"amount": FactSpec("money"), "currency": FactSpec("text")},
    "invoice.issued": {"amount": FactSpec("money"), "currency": FactSpec("text")},
    "invoice.adjusted": {"amount": FactSpec("money")},
    "arrangement.agreed": {"arrangement_kind": FactSpec("choice", ARRANGEMENT_KINDS, "kind")},
    ARRANGEMENT_BROKEN: {"arrangement_kind": FactSpec("choice", ARRANGEMENT_KINDS, "kind")},
    "debt.written_off": {"reason": FactSpec("choice", WriteOffReason.__args__)},
    "account.flagged": {"flag": FactSpec("choice", FLAGS)},
    "account.unflagged": {"flag": FactSpec("choice", FLAGS)},
    "contact.recorded": {"outcome": FactSpec("choice", ContactOutcome.__args__), "by": FactSpec("text")},
}

OPERATORS = ("gte", "lte", "gt", "lt", "eq", "between", "in", "not_in")


def _typed_value(spec: FactSpec, value: Any) -> Any:
    """Checks one literal in a condition against the fact's type."""
    if spec.kind == "money":
        if isinstance(value, float):
            raise ValueError(f"write amounts as quoted decimal strings (\"{value:.2f}\"), not floats")
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("an amount must be a quoted decimal string such as \"100.00\"")
        if not re.fullmatch(r"-?\d+(\.\d+)?", str(value)):
            raise ValueError(f"{value!r} is not a decimal amount")
        return Decimal(str(value))
    if spec.kind in ("days_past", "days_until", "count"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number of {'days' if spec.kind != 'count' else 'items'}, got {value!r}")
        return value
    if spec.kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if spec.kind == "choice":
        if value not in spec.choices:
            raise ValueError(f"{value!r} is not one of {', '.join(spec.choices)}")
        return value
    return str(value)


def _set_comparison(op: str, spec: FactSpec, operand: Any) -> Callable[[Any], bool]:
    """On a set fact (flags): `in` holds when any of the names stands, `not_in` when none does, `eq` when exactly
    these do (`eq: []`: none at all)."""
    if op not in ("in", "not_in", "eq"):
        raise ValueError(f"{op} does not apply to a set; use in, not_in or eq")
    if not isinstance(operand, list) or (op != "eq" and not operand):
        raise ValueError(f"{op} takes a {'' if op == 'eq' else 'non-empty '}list of {', '.join(spec.choices)}")
    names = frozenset(_typed_value(FactSpec("choice", spec.choices), item) for item in operand)
    if op == "in":
        return lambda actual: not names.isdisjoint(_standing(actual))
    if op == "not_in":
        return lambda actual: names.isdisjoint(_standing(actual))
    return lambda actual: _standing(actual) == names


def _standing(actual: str | None) -> frozenset[str]:
    """A set fact's value: names joined by commas, absent when none stands (so notices show it only then)."""
    return frozenset(actual.split(",")) if actual else frozenset()


def _comparison(op: str, spec: FactSpec, operand: Any) -> Callable[[Any], bool]:
    if spec.kind == "set":
        return _set_comparison(op, spec, operand)
    if op == "not_in":
        raise ValueError("not_in is for flags; use in with the other values")
    if op == "between":
        if not isinstance(operand, list) or len(operand) != 2:
            raise ValueError("between takes a list of two bounds, e.g. [1, 7]")
        low, high = (_typed_value(spec, bound) for bound in operand)
        if low > high:
            raise ValueError(f"between bounds are reversed: {low} > {high}")
        return lambda actual: actual is not None and low <= actual <= high
    if op == "in":
        if not isinstance(operand, list) or not operand:
            raise ValueError("in takes a non-empty list")
        allowed = frozenset(_typed_value(spec, item) for item in operand)
        return lambda actual: actual in allowed
    bound = _typed_value(spec, operand)
    if op == "eq":
        return lambda actual: actual == bound
    if spec.kind in ("choice", "flag", "text"):
        raise ValueError(f"{op} compares numbers; use eq or in for this fact")
    compare = {
        "gte": lambda actual: actual >= bound,
        "lte": lambda actual: actual <= bound,
        "gt": lambda actual: actual > bound,
        "lt": lambda actual: actual < bound,
    }[op]
    return lambda actual: actual is not None and compare(actual)


@dataclass(frozen=True, slots=True)
class Condition:
    fact: str
    test: Callable[[Any], bool]
    source: Any

    def holds(self, facts: dict[str, Any]) -> bool:
        return self.test(facts.get(self.fact))


def compile_condition(fact: str, spec: FactSpec, written: Any) -> Condition:
    if isinstance(written, dict):
        unknown = sorted(set(written) - set(OPERATORS))
        if unknown:
            raise ValueError(f"unknown operator {unknown[0]!r}; use one of {', '.join(OPERATORS)}")
        if not written:
            raise ValueError("an empty condition; give a value or an operator")
        tests = [_comparison(op, spec, operand) for op, operand in written.items()]
        return Condition(fact, lambda actual: all(test(actual) for test in tests), written)
    if isinstance(written, list):
        raise ValueError("a list needs an operator: {in: [...]} or {between: [low, high]}")
    if spec.kind == "set":  # a bare name: that flag stands
        name = _typed_value(FactSpec("choice", spec.choices), written)
        return Condition(fact, lambda actual: name in _standing(actual), written)
    value = _typed_value(spec, written)
    if spec.kind == "days_past":
        # A bare number on days past due means "that day has been reached".
        return Condition(fact, lambda actual: actual is not None and actual >= value, written)
    if spec.kind == "days_until":
        return Condition(fact, lambda actual: actual is not None and 0 <= actual <= value, written)
    return Condition(fact, lambda actual: actual == value, written)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Settle(_Strict):
    """An offer's terms: a percent of what the covered invoices owe, or a fixed amount, payable within valid_days."""

    percent: Decimal | None = Field(default=None, gt=0, lt=100, description="of the overdue balance, per currency")
    amount: Decimal | None = Field(default=None, gt=0, description="fixed, in the rule's currency")
    valid_days: int = Field(ge=1, le=366, description="local days after the day it is sent on which payments count")

    @field_validator("percent", "amount", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError(f"write it as a quoted decimal string (\"{value}\"), not a float")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> "Settle":
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give either percent or amount")
        return self


class Emit(_Strict):
    kind: RuleAction
    channel: str | list[str] | None = Field(
        default=None, description="a channel, or a list (the first one the customer has not opted out of); "
        "'preferred' stands for the customer's own ordered channels"
    )
    template: str | None = None
    to: HandoffTarget | None = None
    settle: Settle | None = Field(default=None, description="offers: percent or amount, and valid_days")
    reason: WriteOffReason | None = Field(default=None, description="write-offs (default: uncollectible)")
    action: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$", description="restrict and lift: "
                               "freeze_credit, block_purchases, suspend_service, or a name of your own")
    after_write_off: Literal["lift", "keep"] | None = Field(
        default=None, description="restrict: lift at a write-off that ends the episode (default), or keep it "
        "while the written-off debt is unrecovered")

    @model_validator(mode="after")
    def _fits_kind(self) -> "Emit":
        if self.kind in ("restrict", "lift"):
            if self.action is None:
                raise ValueError(f"a {self.kind} needs action: freeze_credit, block_purchases, suspend_service or "
                                 "a name of your own")
            if self.channel is not None or self.template is not None or self.to is not None \
                    or self.settle is not None or self.reason is not None:
                raise ValueError(f"a {self.kind} takes action (and for restrict after_write_off) only")
            if self.after_write_off is not None and self.kind != "restrict":
                raise ValueError("after_write_off: is for restrict")
            return self
        if self.action is not None or self.after_write_off is not None:
            raise ValueError(f"action: is for restrict and lift, not for a {self.kind}")
        if (self.settle is not None) != (self.kind == "offer"):
            raise ValueError("an offer needs settle: {percent or amount, valid_days}" if self.kind == "offer"
                             else f"settle: is for offers, not for a {self.kind}")
        if self.reason is not None and self.kind != "write_off":
            raise ValueError(f"reason: is for write-offs, not for a {self.kind}")
        if self.kind in ("handoff", "write_off"):
            if self.kind == "handoff" and self.to is None:
                raise ValueError("a handoff needs to: collector, agency, legal or a team the ruleset lists")
            if self.kind == "write_off" and self.to is not None:
                raise ValueError("to: is for handoffs, not for a write_off")
            if self.channel is not None or (self.kind == "write_off" and self.template is not None):
                raise ValueError(f"a {self.kind} has no channel; it does not go to the customer")
        else:
            if self.to is not None:
                raise ValueError(f"to: is for handoffs, not for a {self.kind}")
            if not self.channel:
                raise ValueError(f"a {self.kind} needs a channel")
            if not self.template:
                raise ValueError(f"a {self.kind} needs a template")
        return self

    @property
    def channels(self) -> tuple[str, ...]:
        if self.channel is None:
            return ()
        return (self.channel,) if isinstance(self.channel, str) else tuple(self.channel)


class Rule(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str | None = None
    on: str | None = Field(default=None, description="an event type: the rule fires on each matching event")
    when: dict[str, Any] = Field(default_factory=dict)
    every: str | None = Field(default=None, pattern=r"^[1-9][0-9]*[dw]$", description="repeat interval: 1d, 2d, 1w")
    currency: Currency | None = Field(default=None, description="currency of amount facts; default: the ruleset's")
    emit: Emit

    _conditions: tuple[Condition, ...] = PrivateAttr(default=())

    @field_validator("on")
    @classmethod
    def _known_event(cls, value: str | None) -> str | None:
        if value is not None and value not in RULE_EVENT_TYPES:
            raise ValueError(f"{value!r} is not an event a rule can react to; use one of {', '.join(RULE_EVENT_TYPES)}")
        return value

    @model_validator(mode="after")
    def _compile(self) -> "Rule":
        allowed = dict(ACCOUNT_FACTS)
        if self.on is not None:
            allowed.pop("days_until_due")
            allowed.update(EVENT_FACTS.get(self.on, {}))
            if self.every is not None:
                raise ValueError("every: for time rules only; an event rule fires on each matching event")
        elif "days_until_due" in self.when and "days_past_due" in self.when:
            raise ValueError("when: a rule looks either before the due date (days_until_due) or after it (days_past_due)")
        if self.emit.kind in ("offer", "write_off") and "days_until_due" in self.when:
            raise ValueError(f"emit: a {self.emit.kind} is about overdue debt; use days_past_due, not days_until_due")
        if self.emit.kind == "write_off" and self.every is not None:
            raise ValueError("every: a debt is written off once")
        if self.emit.kind in ("restrict", "lift"):
            if self.every is not None:
                raise ValueError(f"every: a restriction is applied once and lifted once")
            if "days_until_due" in self.when:
                raise ValueError(f"emit: a {self.emit.kind} is about overdue debt; use days_past_due, not "
                                 "days_until_due")
        conditions = []
        for fact, written in self.when.items():
            spec = allowed.get(fact)
            if spec is None:
                raise ValueError(f"when.{fact}: unknown fact; known here: {', '.join(sorted(allowed))}")
            try:
                conditions.append(compile_condition(fact, spec, written))
            except ValueError as exc:
                raise ValueError(f"when.{fact}: {exc}") from None
        self._conditions = tuple(conditions)
        return self

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self._conditions

    @property
    def per_invoice(self) -> bool:
        return self.on is None and "days_until_due" in self.when

    @property
    def every_days(self) -> int | None:
        if self.every is None:
            return None
        count = int(self.every[:-1])
        return count * 7 if self.every.endswith("w") else count

    def matches(self, facts: dict[str, Any]) -> bool:
        return all(condition.holds(facts) for condition in self._conditions)


class Defaults(_Strict):
    timezone: TimeZoneName
    currency: Currency


class Limits(_Strict):
    per_day: int | None = Field(default=None, ge=1)
    per_week: int | None = Field(default=None, ge=1, description="over any 7 consecutive local days")


class Holds(_Strict):
    """How days past due count after a breathing space or hardship hold (rules/engine/holds.py)."""

    after: Literal["resume", "reage"] = Field(default="resume", description="resume: the clock goes on from where "
                                              "it stood; reage: what was overdue falls due on the hold's last day")


class Ruleset(_Strict):
    version: str = Field(min_length=1, description="quote it: 2026.11 unquoted is a number")
    description: str | None = None
    defaults: Defaults
    contact_window: ContactWindow | None = None
    limits: Limits = Limits()
    rules: list[Rule]
    holds: Holds = Holds()
    teams: list[HandoffTarget] = Field(default_factory=list, description="teams a handoff may go to besides "
                                       "collector, agency and legal (fraud, bereavement, insolvency, ...)")
    delivery: DeliveryPolicy | None = Field(default=None, description="what delivery receipts do; absent: they "
                                            "are recorded and change nothing")
    channels: dict[str, ChannelPolicy] = Field(default_factory=dict, description="per channel: its own window (per "
                                               "weekday) and caps, beside contact_window and limits")
    blackout: Blackout | None = Field(default=None, description="local days on which nobody is contacted")

    @field_validator("version", mode="before")
    @classmethod
    def _quoted_version(cls, value: Any) -> Any:
        if isinstance(value, (int, float)):
            raise ValueError(f"quote the version (\"{value}\"): unquoted it is a number and loses trailing zeros")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> "Ruleset":
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                # Named by position so the loader can point at the second rule, not at `rules:`.
                raise ValueError(f"rules.{index}.id: rule id {rule.id!r} is already used by rule #{seen[rule.id] + 1}")
            seen[rule.id] = index
        known = (*STANDARD_TEAMS, *self.teams)
        for index, rule in enumerate(self.rules):
            if rule.emit.to is not None and rule.emit.to not in known:
                raise ValueError(f"rules.{index}.emit.to: {rule.emit.to!r} is not a team; use "
                                 f"{', '.join(known)}, or list it under teams:")
        return self

    def model_post_init(self, context: Any) -> None:
        self._episode_rules = tuple((i, r) for i, r in enumerate(self.rules) if r.on is None and not r.per_invoice)
        self._invoice_rules = tuple((i, r) for i, r in enumerate(self.rules) if r.per_invoice)
        by_event: dict[str, list[tuple[int, Rule]]] = {}
        for index, rule in enumerate(self.rules):
            if rule.on is not None:
                by_event.setdefault(rule.on, []).append((index, rule))
        self._by_event = {name: tuple(rules) for name, rules in by_event.items()}

    _episode_rules: tuple[tuple[int, Rule], ...] = PrivateAttr(default=())
    _invoice_rules: tuple[tuple[int, Rule], ...] = PrivateAttr(default=())
    _by_event: dict[str, tuple[tuple[int, Rule], ...]] = PrivateAttr(default_factory=dict)

    @property
    def episode_rules(self) -> tuple[tuple[int, Rule], ...]:
        """Time rules judged once per delinquency episode (or every N days within it), with file positions."""
        return self._episode_rules

    @property
    def invoice_rules(self) -> tuple[tuple[int, Rule], ...]:
        """Time rules judged per invoice before its due date (they use days_until_due)."""
        return self._invoice_rules

    def event_rules(self, event_type: str) -> tuple[tuple[int, Rule], ...]:
        return self._by_event.get(event_type, ())

    @property
    def uses_contact_facts(self) -> bool:
        return any(fact in CONTACT_FACTS for rule in self.rules for fact in rule.when)

