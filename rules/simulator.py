"""The offline simulator: events in file order with clock ticks in between, through the same engine.

It is the oracle the live system is tested against. Ticks go only to accounts whose wakeup has come (a skipped
tick changes nothing, see Engine.wakeup), which keeps a month of hourly ticks over many accounts cheap.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator

from rules.engine import Engine, Outcome
from rules.policy import PolicyEngine, Schedule
from rules.state import AccountState, JournalEntry, PlatformState
from schemas.audit import AuditRecord
from schemas.events import PLATFORM_ACCOUNT, ClockTick, InputEvent, PlatformOutage, tick
from schemas.notices import Notice

_UNSCHEDULED = object()
_AT_ONCE = datetime.min.replace(tzinfo=timezone.utc)


@dataclass
class Simulation:
    engine: Engine | PolicyEngine
    platform: PlatformState = field(default_factory=PlatformState)
    accounts: dict[str, AccountState] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    audit: list[AuditRecord] | None = None  # every audit line in order, when asked for (an empty list)
    skip_idle: bool = True
    schedule: Schedule | None = None  # policies published while running; `engine` is the one in force
    _wake_heap: list[tuple[datetime, str]] = field(default_factory=list)
    _wake: dict[str, datetime | None] = field(default_factory=dict)

    def feed(self, event: InputEvent) -> list[Notice]:
        """One event: a tick or outage reaches every account; anything else reaches its own account."""
        changed = self.engine.apply_platform(self.platform, event)
        if isinstance(event, ClockTick) and event.account_id == PLATFORM_ACCOUNT:
            if changed and self.schedule is not None:
                self._switch(self.schedule.at(event.at))
            return self._tick_all(event) if changed else []
        if isinstance(event, PlatformOutage):
            for account_id, state in self.accounts.items():
                self._schedule(account_id, self.engine.wakeup(state, self.platform))
            return []
        outcome = self.engine.step(self.accounts.get(event.account_id), event, self.platform)
        self.accounts[event.account_id] = outcome.state
        self._schedule(event.account_id, outcome.wakeup)
        self._keep_audit(event.account_id, outcome)
        self.notices.extend(outcome.notices)
        return outcome.notices

    def _switch(self, engine: PolicyEngine) -> None:
        """A new policy from this tick on: every account is looked at by it (as a live partition does)."""
        if engine is not self.engine:
            self.engine = engine
            for account_id in self.accounts:
                self._schedule(account_id, _AT_ONCE)

    def _keep_audit(self, account_id: str, outcome: Outcome) -> None:
        if self.audit is not None:
            self.audit.extend(AuditRecord.of(account_id, outcome.version, line, outcome.variant)
                              for line in outcome.audit)

    def trails(self) -> dict[str, list[JournalEntry]]:
        """Each account's audit lines, in order (kept only when `audit` was asked for)."""
        grouped: dict[str, list[JournalEntry]] = {}
        for record in self.audit or ():
            grouped.setdefault(record.account_id, []).append(record.line())
        return grouped

    def _schedule(self, account_id: str, wake: datetime | None) -> None:
        if self._wake.get(account_id, _UNSCHEDULED) != wake:
            self._wake[account_id] = wake
            if wake is not None:
                heapq.heappush(self._wake_heap, (wake, account_id))

    def _tick_all(self, clock: ClockTick) -> list[Notice]:
        released: list[Notice] = []
        if not self.skip_idle:
            due = list(self.accounts)
        else:
            due = []
            while self._wake_heap and self._wake_heap[0][0] <= clock.at:
                wake, account_id = heapq.heappop(self._wake_heap)
                if self._wake.get(account_id) == wake:
                    del self._wake[account_id]  # stale heap entries no longer match and are dropped
                    due.append(account_id)
            due.sort()
        for account_id in due:
            outcome = self.engine.step(self.accounts[account_id], clock, self.platform)
            released.extend(outcome.notices)
            self._schedule(account_id, outcome.wakeup)
            self._keep_audit(account_id, outcome)
        self.notices.extend(released)
        return released

    def run(self, events: Iterable[InputEvent], every: timedelta | None, until: datetime | None = None) -> None:
        """Feeds the events with clock ticks between them, as with_ticks schedules them."""
        for event in with_ticks(events, every, until):
            self.feed(event)

    def sorted_notices(self) -> list[Notice]:
        return sorted(self.notices, key=lambda n: (n.issued_at, n.account_id, n.notice_id))


def with_ticks(events: Iterable[InputEvent], every: timedelta | None, until: datetime | None) -> Iterator[InputEvent]:
    """The simulator's schedule, which the live publisher keeps too: ticks every `every` from the first event's
    time, ticks at or before an event's occurred_at before it, and with `until`, ticks after the last event up to
    that time."""
    next_tick: datetime | None = None
    for event in events:
        if every is not None:
            next_tick = next_tick or event.occurred_at
            while next_tick <= event.occurred_at:
                yield tick(next_tick)
                next_tick += every
        yield event
    if every is not None and until is not None:
        next_tick = next_tick or until
        while next_tick <= until:
            yield tick(next_tick)
            next_tick += every
