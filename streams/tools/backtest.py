"""`dunning backtest`: two policies over the same events (a time range of the input topics, or a JSONL file), side by
side, before the new one goes live: contacts per channel, handoffs per target, the notices the new policy would send
that the old one did not (and the other way round), and the accounts whose handling differs most.

Two notices are "the same handling" when they go to the same account, of the same kind, on the same channel (or to
the same team) on the same day: a new rule id or template for the same contact is not a difference here.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable

from rules.policy import Policy, PolicyEngine
from rules.simulator import Simulation
from schemas.events import ClockTick, InputEvent
from schemas.notices import Notice
from streams.runtime.settings import Settings

Handling = tuple[str, str, str, date]  # account, kind, channel or target, day


def handling(notice: Notice) -> Handling:
    where = f"{notice.to} ({notice.action})" if notice.kind == "handoff" else notice.channel or ""
    return notice.account_id, notice.kind, where, notice.issued_at.date()


@dataclass
class Side:
    name: str
    notices: list[Notice]

    def contacts(self) -> Counter[str]:
        return Counter(n.channel for n in self.notices if n.kind != "handoff" and n.channel)

    def handoffs(self) -> Counter[str]:
        return Counter(f"{n.to} ({n.action})" for n in self.notices if n.kind == "handoff")

    def handled(self) -> Counter[Handling]:
        return Counter(handling(n) for n in self.notices)


@dataclass
class Backtest:
    start: datetime
    end: datetime
    events: int
    accounts: int
    old: Side
    new: Side

    def only_new(self) -> Counter[Handling]:
        return self.new.handled() - self.old.handled()

    def only_old(self) -> Counter[Handling]:
        return self.old.handled() - self.new.handled()

    def differing_accounts(self, top: int) -> list[tuple[str, int, int, int, int]]:
        """(account, notices old, notices new, only in new, only in old), most differences first."""
        added, dropped = Counter(), Counter()
        for (account, *_), count in self.only_new().items():
            added[account] += count
        for (account, *_), count in self.only_old().items():
            dropped[account] += count
        old, new = Counter(n.account_id for n in self.old.notices), Counter(n.account_id for n in self.new.notices)
        accounts = sorted(set(added) | set(dropped), key=lambda a: (-(added[a] + dropped[a]), a))
        return [(a, old[a], new[a], added[a], dropped[a]) for a in accounts[:top]]


def in_range(events: Iterable[InputEvent], start: datetime, end: datetime) -> list[InputEvent]:
    """The account events and outages that occurred in [start, end); the backtest makes its own ticks."""
    return [e for e in events if start <= e.occurred_at < end and not isinstance(e, ClockTick)]


def run(policies: tuple[tuple[str, Policy], tuple[str, Policy]], events: list[InputEvent], start: datetime,
        end: datetime, every: timedelta) -> Backtest:
    sides = []
    for name, policy in policies:
        simulation = Simulation(PolicyEngine(policy))
        simulation.run(events, every, end)
        sides.append(Side(name, simulation.sorted_notices()))
    return Backtest(start, end, len(events), len({e.account_id for e in events if e.account_id != "*"}), *sides)


def _columns(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))).rstrip() for row in rows)


def _side_by_side(title: str, old: Counter[str], new: Counter[str], names: tuple[str, str]) -> str:
    rows = [(title, names[0], names[1], "change")]
    for key in sorted(set(old) | set(new)):
        rows.append((key, str(old[key]), str(new[key]), f"{new[key] - old[key]:+d}"))
    rows.append(("total", str(sum(old.values())), str(sum(new.values())),
                 f"{sum(new.values()) - sum(old.values()):+d}"))
    return _columns(rows)


def render(test: Backtest, top: int) -> str:
    names = (test.old.name, test.new.name)
    only_new, only_old = test.only_new(), test.only_old()
    lines = [f"backtest {test.start.isoformat()} to {test.end.isoformat()}: {test.events} events, {test.accounts} "
             f"accounts; {names[0]} (old) against {names[1]} (new)", "",
             _side_by_side("contacts per channel", test.old.contacts(), test.new.contacts(), names), "",
             _side_by_side("handoffs per target", test.old.handoffs(), test.new.handoffs(), names), "",
             f"notices outside what the old policy sent (same account, kind, channel or target, day): "
             f"{sum(only_new.values())}; the old policy's that the new one would not send: {sum(only_old.values())}"]
    by_kind = Counter((kind, where) for (_, kind, where, _), count in only_new.items() for _ in range(count))
    lines += [f"  new: {count} {kind} {where}" for (kind, where), count in by_kind.most_common()]
    dropped = Counter((kind, where) for (_, kind, where, _), count in only_old.items() for _ in range(count))
    lines += [f"  no longer: {count} {kind} {where}" for (kind, where), count in dropped.most_common()]
    differing = test.differing_accounts(top)
    if differing:
        lines += ["", f"accounts whose handling differs most (dunning backtest ... --explain ACCOUNT)",
                  _columns([("account", f"{names[0]}", f"{names[1]}", "only new", "only old"),
                            *((a, str(o), str(n), str(plus), str(minus)) for a, o, n, plus, minus in differing)])]
    else:
        lines += ["", "no account is handled differently"]
    return "\n".join(lines) + "\n"


def explain(test: Backtest, account: str) -> str:
    """One account's notices under both policies, in time order, each marked when the other policy differs."""
    old_handled = test.old.handled()
    new_handled = test.new.handled()
    rows = [("issued at", "policy", "kind", "channel / target", "rule", "")]
    merged = [(n, test.old.name, new_handled) for n in test.old.notices if n.account_id == account]
    merged += [(n, test.new.name, old_handled) for n in test.new.notices if n.account_id == account]
    merged.sort(key=lambda item: (item[0].issued_at, item[1]))
    for notice, name, other in merged:
        _, kind, where, _ = handling(notice)
        mark = "" if other[handling(notice)] else f"only {name}"
        rows.append((notice.issued_at.isoformat(), name, kind, where, notice.rule_id or "", mark))
    if len(rows) == 1:
        return (f"{account}: no notices under either policy between {test.start.isoformat()} and "
                f"{test.end.isoformat()}\n")
    return f"{account}: {test.old.name} (old) against {test.new.name} (new)\n" + _columns(rows) + "\n"


async def read_input_topics(settings: Settings) -> list[InputEvent]:
    """Every valid event on the input topics, in time order (ties: topic, partition and offset order)."""
    from pydantic import ValidationError

    from schemas.events import parse_event
    from streams.tools.audit_check import read_topic

    found = []
    options = settings.kafka_client_options()
    for topic in settings.topic.inputs:
        for message in await read_topic(options, topic):
            try:
                found.append(parse_event(message.value or b""))
            except ValidationError:
                continue  # the worker dead-lettered it: it never reached the engine either
    return sorted(found, key=lambda event: event.occurred_at)
