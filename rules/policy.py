"""Policies: what a worker runs. One ruleset, or an experiment whose variants (champion, challengers) each run their
own ruleset on a stable share of the accounts; and the schedule of policies over logical time.

A policy file is either a ruleset, or

    experiment:
      id: collector-earlier
      variants:
        champion: {share: 80, rules: ../default.yaml}      # a ruleset file, relative to this one
        challenger: {share: 20, rules: {version: ..., defaults: ..., rules: [...]}}   # or inline

An account's variant is a hash of (experiment id, account_id) placed on the shares, so it never changes while
the experiment and its shares stay. Pure: no I/O beyond reading the files a caller names.
"""
from __future__ import annotations

import bisect
import hashlib
import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, ValidationError, model_validator

from rules.engine import Engine, Outcome
from rules.loader import RulesetError, _describe, _parse, at_location, parse_ruleset, read_calendar, read_rules_file
from rules.model import Ruleset, _Strict
from rules.state import AccountState, PlatformState
from schemas.events import InputEvent

# Hash buckets an experiment's shares are laid over: 10,000 gives shares to a hundredth of a percent.
BUCKETS = 10_000


class VariantSpec(_Strict):
    share: int = Field(ge=1, le=100, description="percent of the accounts")
    rules: str | dict[str, Any] = Field(description="a ruleset file (relative to the policy file), or one inline")


class ExperimentSpec(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    variants: dict[str, VariantSpec] = Field(min_length=2)

    @model_validator(mode="after")
    def _shares(self) -> "ExperimentSpec":
        for name in self.variants:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"variants.{name}: a variant name is letters, digits, - and _")
        total = sum(variant.share for variant in self.variants.values())
        if total != 100:
            shares = ", ".join(f"{name} {v.share}" for name, v in self.variants.items())
            raise ValueError(f"variants: the shares must add up to 100, not {total} ({shares})")
        return self


class PolicyFile(_Strict):
    description: str | None = None
    experiment: ExperimentSpec


@dataclass(frozen=True)
class Variant:
    name: str | None  # None: no experiment
    share: int
    ruleset: Ruleset


@dataclass(frozen=True)
class Policy:
    variants: tuple[Variant, ...]
    experiment_id: str | None = None
    main: str = ""  # the policy file's name, and the text of it and of every file it names (what is published)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """The ruleset's version, or the experiment's id with each variant's version."""
        if self.experiment_id is None:
            return self.variants[0].ruleset.version
        return f"{self.experiment_id}(" + ",".join(f"{v.name}={v.ruleset.version}" for v in self.variants) + ")"

    @property
    def digest(self) -> str:
        """Names the policy by its content: the same files publish under the same key."""
        hashed = hashlib.sha256(self.main.encode())
        for name in sorted(self.sources):
            hashed.update(b"\x1f" + name.encode() + b"\x1e" + self.sources[name].encode())
        return hashed.hexdigest()[:24]


def variant_bucket(experiment_id: str, account_id: str) -> int:
    digest = hashlib.sha256(f"{experiment_id}\x1f{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def parse_policy(text: str, source: str, read: Callable[[str], str]) -> Policy:
    """A policy from its file's text; `read` returns the text of a ruleset file the experiment names (as written).
    Every problem is a RulesetError naming file, line, variant, rule and field."""
    document = _parse(text, source)
    data = document.data
    sources = {source: text}

    def beside(ruleset: str) -> Callable[[str], str]:
        """Reads a file a ruleset names (its blackout calendar), relative to that ruleset; kept in the sources."""
        def read_beside(name: str) -> str:
            key = posixpath.normpath(posixpath.join(posixpath.dirname(ruleset), name))
            sources[key] = read(key)
            return sources[key]
        return read_beside

    if not (isinstance(data, dict) and "experiment" in data):
        return Policy((Variant(None, 100, parse_ruleset(text, source, beside(""))),), main=source, sources=sources)
    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise RulesetError([_describe(error, document, source) for error in exc.errors()]) from None
    variants, problems = [], []
    for name, variant in spec.experiment.variants.items():
        within = ("experiment", "variants", name, "rules")
        try:
            if isinstance(variant.rules, str):
                try:
                    sources[variant.rules] = read(variant.rules)
                except (OSError, UnicodeDecodeError, KeyError) as exc:
                    line = document.lines.get(within)
                    reason = exc.strerror if isinstance(exc, OSError) else "not found" if isinstance(
                        exc, KeyError) else "not UTF-8 text"
                    raise RulesetError([f"{source}:{line}: variant {name!r}: cannot read {variant.rules}: {reason}"]
                                       ) from None
                ruleset = parse_ruleset(sources[variant.rules], str(Path(source).parent / variant.rules),
                                        beside(variant.rules))
            else:  # inline: its calendar is read beside the policy file, and published with it
                read_calendar(document, source, beside(""), within)
                try:
                    ruleset = Ruleset.model_validate(at_location(document.data, within))
                except ValidationError as exc:
                    raise RulesetError([_describe(error, document, source, within, f" variant {name!r}:")
                                        for error in exc.errors()]) from None
        except RulesetError as exc:
            problems.extend(exc.problems)
            continue
        variants.append(Variant(name, variant.share, ruleset))
    if problems:
        raise RulesetError(problems)
    return Policy(tuple(variants), spec.experiment.id, main=source, sources=sources)


def load_policy(path: str | Path) -> Policy:
    """A policy file from disk; the rulesets an experiment names are read relative to it."""
    path = Path(path)
    return parse_policy(read_rules_file(path), str(path),
                        lambda written: (path.parent / written).read_text(encoding="utf-8"))


class PolicyEngine:
    """The engine of a policy: each account is decided by its variant's engine. Offers what callers use of Engine
    (step, wakeup, portfolio, ...), so the simulator and the worker run an experiment as they run one ruleset."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.version = policy.version
        self.engines = tuple(Engine(variant.ruleset, variant.name) for variant in policy.variants)
        self._bounds, total = [], 0
        for variant in policy.variants:
            total += variant.share * BUCKETS // 100
            self._bounds.append(total)
        first = self.engines[0]
        self.apply_platform = first.apply_platform  # platform state (clock, outages) is no variant's
        self.effective_due = first.effective_due

    def engine_for(self, account_id: str) -> Engine:
        if len(self.engines) == 1:
            return self.engines[0]
        bucket = variant_bucket(self.policy.experiment_id, account_id)
        return self.engines[bisect.bisect_right(self._bounds, bucket)]

    def variant_of(self, account_id: str) -> str | None:
        return self.engine_for(account_id).variant

    def step(self, state: AccountState | None, event: InputEvent, platform: PlatformState) -> Outcome:
        account_id = event.account_id if state is None else state.account_id
        return self.engine_for(account_id).step(state, event, platform)

    def wakeup(self, state: AccountState, platform: PlatformState) -> datetime | None:
        return self.engine_for(state.account_id).wakeup(state, platform)

    def portfolio(self, state: AccountState, platform: PlatformState, at: datetime):
        return self.engine_for(state.account_id).portfolio(state, platform, at)

    def zone_of(self, state: AccountState):
        return self.engine_for(state.account_id).zone_of(state)


def policy_engine(ruleset_or_policy: Ruleset | Policy) -> PolicyEngine:
    if isinstance(ruleset_or_policy, Ruleset):
        return PolicyEngine(Policy((Variant(None, 100, ruleset_or_policy),)))
    return PolicyEngine(ruleset_or_policy)


class Schedule:
    """Which policy is in force at a logical time: the seed, then each published one from its `effective_after`.

    A partition switches at its first clock tick at or after that time; the simulator switches at the same tick,
    so a live switch and its replay agree. Among policies effective at the same time the later published wins."""

    def __init__(self, seed: PolicyEngine, switches: list[tuple[datetime, PolicyEngine]] | None = None):
        self.seed = seed
        self.switches = sorted(switches or [], key=lambda switch: switch[0])  # stable: publication order in ties
        self._times = [effective for effective, _ in self.switches]

    def at(self, when: datetime | None) -> PolicyEngine:
        if when is None:
            return self.seed
        position = bisect.bisect_right(self._times, when)
        return self.seed if position == 0 else self.switches[position - 1][1]
