"""What each variant and each rule achieves, from the audit trail alone (pure: lines in, figures out).

Cure attribution (the README says the same):
- An episode runs from `episode.started` (day 1 past due) to `episode.ended`. It is *cured* when the account
  event just before its end is a `payment.received`: an episode ended by a dispute, a cancellation, a credit note,
  an extension or a write-off is resolved, not cured.
- A variant's episodes are those that started while the account was in it; its cure rate within N days counts the
  episodes cured within N days of their start, among those that started at least N days before the report's
  horizon (younger ones cannot have had their N days yet).
- A rule is credited with every episode in which it sent at least one notice, from its first notice in that
  episode: cured within N days of that notice, among the episodes where that notice is at least N days old.
  Several rules share an episode's cure; nothing is split.
- Delivery rate: contacts a receipt (notifications.receipts) said were delivered, of the contacts sent; contact
  rate: episodes in which a contact (for a rule: one of its own) was delivered, of the episodes counted. Without
  receipts both are 0: the trail cannot tell a contact that arrived from one that did not.
- Roll rate from one aging bucket to the next: of the episodes that reached a bucket and had time to reach the next
  one (day 31, 61, 91 since day 1), the share that did. A rule's roll rate counts from the bucket its first notice
  found the episode in.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from schemas.audit import AuditRecord
from schemas.notices import RECEIPT_TYPES, is_notice_line

CONTACT_KINDS = ("reminder", "urgent_notice", "offer")  # notices that reach the customer
WINDOWS = (7, 30)
BUCKET_STARTS = (1, 31, 61, 91)  # days past due at which 1-30, 31-60, 61-90 and 91+ begin
BUCKET_NAMES = ("1-30", "31-60", "61-90", "91+")
Z_95 = 1.959964
# Below this many judged episodes per variant, or fewer than this many cures or non-cures, the normal
# approximation behind the interval is not to be trusted: the verdict says so instead of guessing.
MIN_EPISODES, MIN_OUTCOMES = 100, 10
NO_VARIANT = "(none)"


@dataclass
class Episode:
    account_id: str
    variant: str
    started: datetime
    ended: datetime | None = None
    cured: bool = False
    first_notice: dict[str, datetime] = field(default_factory=dict)  # rule id -> its first notice in the episode
    delivered: set[str] = field(default_factory=set)  # rules with a contact a receipt said was delivered

    def age(self, horizon: datetime) -> int:
        """Days past due it reached: day 1 at its start."""
        return ((self.ended or horizon) - self.started).days + 1


@dataclass
class Rate:
    """k of n, and the fraction (None when nothing could be judged yet)."""

    cured: int = 0
    judged: int = 0

    @property
    def value(self) -> float | None:
        return self.cured / self.judged if self.judged else None


@dataclass
class Figures:
    """One variant's, or one rule's within a variant."""

    episodes: int = 0
    notices: int = 0  # a rule's notices of any kind; a variant's contacts (reminders, urgent notices, offers)
    handoffs: int = 0
    cured: dict[int, Rate] = field(default_factory=lambda: {days: Rate() for days in WINDOWS})
    days_to_cure: list[float] = field(default_factory=list)
    roll: dict[str, Rate] = field(default_factory=dict)  # "1-30>31-60" -> rate
    delivered: int = 0  # receipts: contacts delivered, and failed (each failure is a contact that did not arrive)
    failed: int = 0
    reached: int = 0  # episodes in which a contact (the rule's) was delivered

    @property
    def delivery_rate(self) -> float | None:
        """Contacts a receipt said were delivered, of the contacts sent."""
        return self.delivered / self.notices if self.notices else None

    @property
    def contact_rate(self) -> float | None:
        """Episodes in which a contact was delivered, of the episodes counted."""
        return self.reached / self.episodes if self.episodes else None

    @property
    def median_days_to_cure(self) -> float | None:
        return statistics.median(self.days_to_cure) if self.days_to_cure else None

    @property
    def per_cure(self) -> float | None:
        cures = len(self.days_to_cure)
        return self.notices / cures if cures else None


@dataclass
class Comparison:
    baseline: str
    variant: str
    difference: float | None  # variant's 30-day cure rate minus the baseline's
    low: float | None
    high: float | None
    verdict: str


@dataclass
class PolicyReport:
    horizon: datetime
    accounts: dict[str, int]  # variant -> accounts seen in it
    variants: dict[str, Figures]
    rules: dict[str, dict[str, Figures]]  # variant -> rule id -> figures
    comparisons: list[Comparison]


def episodes_of(records: Iterable[AuditRecord]) -> tuple[list[Episode], dict[tuple[str, str], int],
                                                        dict[str, set[str]], datetime | None]:
    """The episodes in the trail; notices per (variant, rule) and per variant kind; accounts per variant;
    the latest time seen. Lines of one account must come in their order (as the audit topic keeps them)."""
    episodes: list[Episode] = []
    open_episodes: dict[str, Episode] = {}
    last_event: dict[str, str] = {}
    counts: dict[tuple[str, str], int] = {}
    accounts: dict[str, set[str]] = {}
    latest = None
    for record in records:
        account, variant = record.account_id, record.variant or NO_VARIANT
        accounts.setdefault(variant, set()).add(account)
        latest = record.at if latest is None or record.at > latest else latest
        what = record.what
        episode = open_episodes.get(account)
        if what == "episode.started":
            episode = open_episodes[account] = Episode(account, variant, record.at)
            episodes.append(episode)
        elif what == "episode.ended":
            if episode is not None:
                episode.ended, episode.cured = record.at, last_event.get(account) == "payment.received"
                del open_episodes[account]
        elif what in RECEIPT_TYPES:  # a notification service's receipt: not an account event
            rule = record.detail.get("rule_id")
            if rule and "ignored" not in record.detail:
                outcome = what.removeprefix("notice.")
                counts[(variant, outcome)] = counts.get((variant, outcome), 0) + 1
                counts[(variant, f"{outcome}:{rule}")] = counts.get((variant, f"{outcome}:{rule}"), 0) + 1
                if episode is not None and outcome == "delivered":
                    episode.delivered.add(rule)
        elif is_notice_line(what):
            rule = record.detail.get("rule_id")
            if rule:
                counts[(variant, rule)] = counts.get((variant, rule), 0) + 1
                if episode is not None and record.detail.get("action") != "recall":
                    episode.first_notice.setdefault(rule, record.at)
            counts[(variant, what)] = counts.get((variant, what), 0) + 1
        elif not what.startswith("decision."):
            last_event[account] = what
    return episodes, counts, accounts, latest


def report(records: Iterable[AuditRecord], horizon: datetime | None = None, baseline: str | None = None
           ) -> PolicyReport:
    episodes, counts, accounts, latest = episodes_of(records)
    horizon = horizon or latest or datetime.min
    variants: dict[str, Figures] = {}
    rules: dict[str, dict[str, Figures]] = {}
    for episode in episodes:
        if episode.started > horizon:
            continue
        figures = variants.setdefault(episode.variant, Figures())
        _judge(figures, episode, episode.started, horizon)
        figures.reached += bool(episode.delivered)
        for rule, first in episode.first_notice.items():
            if first <= horizon:
                rule_figures = rules.setdefault(episode.variant, {}).setdefault(rule, Figures())
                _judge(rule_figures, episode, first, horizon)
                rule_figures.reached += rule in episode.delivered
    for variant, figures in variants.items():
        figures.notices = sum(counts.get((variant, f"notice.{kind}"), 0) for kind in CONTACT_KINDS)
        figures.handoffs = counts.get((variant, "notice.handoff"), 0)
        figures.delivered, figures.failed = counts.get((variant, "delivered"), 0), counts.get((variant, "failed"), 0)
        for rule, rule_figures in rules.get(variant, {}).items():
            rule_figures.notices = counts.get((variant, rule), 0)
            rule_figures.delivered = counts.get((variant, f"delivered:{rule}"), 0)
            rule_figures.failed = counts.get((variant, f"failed:{rule}"), 0)
    return PolicyReport(horizon, {v: len(a) for v, a in sorted(accounts.items())}, dict(sorted(variants.items())),
                        {v: dict(sorted(r.items())) for v, r in sorted(rules.items())},
                        compare(variants, baseline))


def _judge(figures: Figures, episode: Episode, since: datetime, horizon: datetime) -> None:
    """Counts one episode, from `since` (its start, or a rule's first notice in it)."""
    figures.episodes += 1
    cured_after = (episode.ended - since) if episode.cured and episode.ended <= horizon else None
    for days, rate in figures.cured.items():
        if since + timedelta(days=days) <= horizon:
            rate.judged += 1
            rate.cured += cured_after is not None and cured_after <= timedelta(days=days)
    if cured_after is not None:
        figures.days_to_cure.append(cured_after.total_seconds() / 86400)
    age, from_age = episode.age(horizon), (since - episode.started).days + 1
    for position, (start, name) in enumerate(zip(BUCKET_STARTS[:-1], BUCKET_NAMES)):
        following = BUCKET_STARTS[position + 1]
        if from_age >= following or age < start:
            continue  # the episode was past this bucket when counted from `since`, or never reached it
        if episode.started + timedelta(days=following - 1) > horizon:
            continue  # it could not have reached the next bucket yet
        rate = figures.roll.setdefault(f"{name}>{BUCKET_NAMES[position + 1]}", Rate())
        rate.judged += 1
        rate.cured += age >= following


def compare(variants: dict[str, Figures], baseline: str | None = None) -> list[Comparison]:
    """Each variant's 30-day cure rate against the baseline's (the champion's by default): the difference with a
    95% interval (two-proportion, normal approximation) and what it means in plain words."""
    names = [name for name in variants if name != NO_VARIANT]
    if len(names) < 2:
        return []
    if baseline is None:
        baseline = "champion" if "champion" in names else max(names, key=lambda n: variants[n].episodes)
    base = variants[baseline].cured[30]
    result = []
    for name in names:
        if name == baseline:
            continue
        other = variants[name].cured[30]
        result.append(_two_proportions(baseline, base, name, other))
    return result


def _two_proportions(baseline: str, base: Rate, name: str, other: Rate) -> Comparison:
    short = [f"{label} {rate.judged}" for label, rate in ((baseline, base), (name, other))
             if rate.judged < MIN_EPISODES or min(rate.cured, rate.judged - rate.cured) < MIN_OUTCOMES]
    if short:
        return Comparison(baseline, name, _difference(base, other), None, None,
                          f"not enough accounts yet: {', '.join(short)} episodes judged at 30 days; each variant "
                          f"needs at least {MIN_EPISODES}, with {MIN_OUTCOMES} cured and {MIN_OUTCOMES} not")
    p1, p2 = base.value, other.value
    spread = Z_95 * math.sqrt(p1 * (1 - p1) / base.judged + p2 * (1 - p2) / other.judged)
    difference = p2 - p1
    low, high = difference - spread, difference + spread
    interval = f"{_points(difference)} points (95% interval {_points(low)} to {_points(high)})"
    if low > 0:
        verdict = f"{name} cures more than {baseline}: {interval}"
    elif high < 0:
        verdict = f"{name} cures less than {baseline}: {interval}"
    else:
        verdict = f"no clear difference yet between {name} and {baseline}: {interval} includes 0"
    return Comparison(baseline, name, difference, low, high, verdict)


def _difference(base: Rate, other: Rate) -> float | None:
    return None if base.value is None or other.value is None else other.value - base.value


def _points(fraction: float) -> str:
    return f"{fraction * 100:+.1f}"
