"""The worker's hot path without Kafka: raw messages in, notices, dead letters and state writes out.

The Faust agent feeds it batches and does the I/O; tests drive it directly. It calls the same Engine.step as
the simulator. Per-account state is held decoded for the length of a batch and written back once per batch; the
latest states stay decoded across batches, up to a bound (write-through: the store still gets every change).
"""
from __future__ import annotations

import base64
import codecs
import hashlib
import heapq
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Callable, Iterable, Protocol

from aiokafka.partitioner import murmur2
from pydantic import ValidationError

from rules.engine import AGING_BUCKETS, Engine, Outcome, Position, aging_bucket
from rules.policy import PolicyEngine, Schedule
from rules.state import AccountState, PlatformState, dump_account, dump_platform, load_account, load_platform
from schemas.audit import AuditRecord
from schemas.deadletter import DeadLetter, DeadLetterReason, MessageOrigin
from schemas.events import (
    EVENT_TYPES,
    PLATFORM_ACCOUNT,
    ClockTick,
    InputEvent,
    PlatformOutage,
    describe_errors,
    parse_event,
)
from schemas.notices import NOTICE_KINDS, RECEIPT_TYPES, Notice
from streams.runtime.settings import MAX_REQUEST_BYTES, TopicNames

# Header of a stored account value: "<partition>:<wakeup epoch seconds, or - for none>:" then the state JSON.
_NO_WAKEUP = b"-"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from; the agent builds one from each Faust event."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes
    partition: int


class Store(Protocol):
    """Read access to a table; writes come back from the processor, to be made in the right event context."""

    def get(self, key: str) -> bytes | None: ...


Scan = Callable[[], Iterable[tuple[str, bytes]]]  # every (account key, stored value) this worker holds


class Rejected(Exception):
    def __init__(self, reason: DeadLetterReason, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.reason, self.message, self.errors = reason, message, errors or []


@lru_cache(maxsize=1 << 16)  # checked for every message: murmur2 in Python was a fortieth of the worker's time
def partition_for(account_id: str, partitions: int) -> int:
    """The partition a Java-compatible producer (murmur2) puts this key in: where its state lives."""
    return (murmur2(account_id.encode()) & 0x7FFFFFFF) % partitions


def encode_account(state: AccountState, partition: int, wakeup: datetime | None) -> bytes:
    stamp = _NO_WAKEUP if wakeup is None else str(int(wakeup.timestamp())).encode()
    return b"%d:%s:" % (partition, stamp) + dump_account(state)


def account_header(raw: bytes) -> tuple[int, float | None]:
    first = raw.index(b":")  # not split(): that would copy the state too, for every account an index rebuild reads
    second = raw.index(b":", first + 1)
    stamp = raw[first + 1:second]
    return int(raw[:first]), None if stamp == _NO_WAKEUP else float(stamp)


def decode_account(raw: bytes) -> AccountState:
    return load_account(raw.split(b":", 2)[2])


@dataclass
class BatchResult:
    outgoing: list[Outgoing] = field(default_factory=list)
    accounts: dict[str, tuple[bytes, Source]] = field(default_factory=dict)  # key -> (value, source to write under)
    platforms: dict[str, tuple[bytes, Source]] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    types: Counter[str] = field(default_factory=Counter)  # valid events by type
    happenings: Counter[tuple[str, str]] = field(default_factory=Counter)  # (journal entry kind, detail) counts
    billed: dict[str, Decimal] = field(default_factory=dict)  # invoice.issued amounts per currency
    released_by: list[int | None] = field(default_factory=list)  # per notice: timestamp (ms) of its message
    cures: Counter[tuple[str, str]] = field(default_factory=Counter)  # (variant, rule id or "" for the episode)


class Processor:
    def __init__(self, engine: Engine, topics: TopicNames, partitions: int, check_partitioning: bool = True,
                 dead_letter_limit: int = MAX_REQUEST_BYTES // 4, cached_accounts: int = 0,
                 cached_stored_bytes: float = math.inf):
        self.engine = engine
        self.schedule = Schedule(engine)  # the policies in force over logical time (streams/runtime/rulesets.py)
        self._engines: dict[int, Engine | PolicyEngine] = {}  # the policy each partition runs now
        self.dead_letter_limit = dead_letter_limit  # bytes of a dead letter with its key
        self.topics = topics
        self.partitions = partitions
        self.check_partitioning = check_partitioning
        self._allowed = {name: topics.for_event_type(name) for name in EVENT_TYPES}
        self._notice_topics = {kind: topics.for_notice_kind(kind) for kind in NOTICE_KINDS}
        self._wakeups: dict[int, list[tuple[float, str]]] | None = None
        self._wake_at: dict[str, float] = {}  # each indexed account's current wakeup; other heap entries are stale
        self._batch = BatchResult()
        self._states: dict[str, tuple[AccountState, Source, datetime | None]] = {}  # this batch's accounts
        # The decoded states of the accounts stepped latest, with their partition and stored size, least recent
        # first: each is what the store holds once its batch is written (decoding a state was a seventh of the
        # worker's time). Bounded by count and by the stored bytes of what it holds: a decoded state takes some
        # 14x its stored bytes, and states grow with an account's open business, so a count alone bounds no memory
        # (10,000 long-lived states held 4 million more Python blocks in the 1M soak).
        self._cached: OrderedDict[str, tuple[AccountState, int, int]] = OrderedDict()
        self._cached_bytes = 0
        self.cached_accounts = cached_accounts
        self.cached_stored_bytes = cached_stored_bytes
        self._platforms: dict[int, PlatformState] = {}
        self._positions: dict[str, dict[str, Position]] | None = None  # account -> its last standing
        self._totals: dict[int, dict[str, dict[str, Decimal]]] = {}  # partition -> currency -> figure -> sum
        self._covered: set[int] = set()  # partitions the figures were built for
        # The flags and restrictions each account has now ("flag:<name>", "restriction:<action>"), and their
        # counts per partition, for the dunning_flagged_accounts and dunning_restricted_accounts gauges.
        self._marks: dict[str, frozenset[str]] = {}
        self._mark_totals: dict[int, Counter[str]] = {}

    # ----------------------------------------------------------------- batch lifecycle

    def forget_partitions(self) -> None:
        """After a rebalance: the wakeup index and cached platform and account states may describe partitions we
        lost, or (restored from a changelog another worker wrote) a store that changed meanwhile."""
        self._cached.clear()
        self._cached_bytes = 0
        self._wakeups = None
        self._wake_at = {}
        self._positions = None
        self._totals = {}
        self._marks, self._mark_totals = {}, {}
        self._platforms.clear()
        self._engines.clear()

    @property
    def accounts_pending(self) -> int:
        """Accounts stepped since the last finish_batch: their states are held decoded until it."""
        return len(self._states)

    def finish_batch(self) -> BatchResult:
        result, self._batch = self._batch, BatchResult()
        for account_id, (state, source, wakeup) in self._states.items():
            self._update_position(account_id, state, source.partition)  # once per account, not per event
            value = encode_account(state, source.partition, wakeup)
            result.accounts[account_id] = (value, source)
            self._cached[account_id] = (state, source.partition, len(value))  # not cached before: _step took it
            self._cached_bytes += len(value)
        while len(self._cached) > self.cached_accounts or self._cached_bytes > self.cached_stored_bytes:
            self._cached_bytes -= self._cached.popitem(last=False)[1][2]
        self._states.clear()
        return result

    # ----------------------------------------------------------------- one message

    def process(self, source: Source, accounts: Store, platforms: Store, scan: Scan) -> None:
        try:
            event = self._decode(source)
        except Rejected as rejected:
            self._dead_letter(source, rejected)
            return
        self._batch.types[event.type] += 1
        if event.account_id == PLATFORM_ACCOUNT:
            self._platform_event(event, source, accounts, platforms, scan)
            return
        self._step(event.account_id, event, source, accounts, platforms)

    def _decode(self, source: Source) -> InputEvent:
        if source.value is None:
            raise Rejected("empty", "the message has no value (NULL, a tombstone)")
        if not source.value:
            raise Rejected("empty", "the message's value is empty (0 bytes)")
        try:
            event = parse_event(source.value)
        except ValidationError as exc:
            errors = describe_errors(exc)
            if any(error["type"] == "json_invalid" for error in exc.errors()):
                raise Rejected("malformed_json", "the value is not valid JSON", errors) from None
            raise Rejected("invalid_event", "the event does not match its contract", errors) from None
        expected = self._allowed[event.type]
        if source.topic != expected:
            raise Rejected("wrong_topic", f"{event.type} belongs on {expected}, not {source.topic}")
        if (event.account_id == PLATFORM_ACCOUNT) != isinstance(event, (ClockTick, PlatformOutage)):
            raise Rejected("key_mismatch", f"account_id {event.account_id!r} does not fit a {event.type} event")
        if event.account_id != PLATFORM_ACCOUNT:
            if source.key is not None and source.key != event.account_id.encode():
                raise Rejected("key_mismatch", f"message key {source.key!r} is not the account_id "
                                               f"{event.account_id!r}")
            wanted = partition_for(event.account_id, self.partitions) if self.check_partitioning else source.partition
            if wanted != source.partition:
                raise Rejected("misrouted", f"account {event.account_id!r} belongs on partition {wanted} "
                                            f"(murmur2 of the key), not {source.partition}; use a Java-compatible "
                                            "partitioner (kcat: -X partitioner=murmur2_random)")
        return event

    def _platform_event(self, event: InputEvent, source: Source, accounts: Store, platforms: Store,
                        scan: Scan) -> None:
        platform = self._platform(source.partition, platforms)
        running = self.engine_of(source.partition, platform)
        if not running.apply_platform(platform, event):
            return  # a redelivered tick or outage
        self._batch.platforms[str(source.partition)] = (dump_platform(platform), source)
        index = self._index(scan).setdefault(source.partition, [])
        switched = isinstance(event, ClockTick) and self.schedule.at(event.at) is not running
        if switched:
            # A policy published since the last tick takes over at this one: every account is looked at by it.
            self._engines[source.partition] = self.schedule.at(event.at)
        if switched or not isinstance(event, ClockTick):
            # An outage moves due dates (looked at from the next tick), a new policy judges anew (from this one):
            # every account of the partition looks again.
            for account_id in self._accounts_on(source.partition, scan):
                self._wake_at[account_id] = 0.0
                heapq.heappush(index, (0.0, account_id))
            if not switched:
                return
        due_before = event.at.timestamp()
        seen: set[str] = set()
        while index and index[0][0] <= due_before:
            wake, account_id = heapq.heappop(index)
            if account_id in seen or self._wake_at.get(account_id) != wake:
                continue  # an entry the account's later steps superseded (the simulator drops these too)
            seen.add(account_id)
            del self._wake_at[account_id]  # popped: the step below indexes its next wakeup anew
            self._step(account_id, event, source, accounts, platforms)

    # ----------------------------------------------------------------- state access

    def _step(self, account_id: str, event: InputEvent, source: Source, accounts: Store, platforms: Store) -> None:
        held = self._states.get(account_id)
        if held is not None:
            state = held[0]
        else:
            cached = self._cached.pop(account_id, None)  # back in at the end of the batch, as the latest
            if cached is not None:
                self._cached_bytes -= cached[2]
            if cached is not None and cached[1] == source.partition:
                state = cached[0]
            else:
                raw = accounts.get(account_id)
                state = None if raw is None else decode_account(raw)
        platform = self._platform(source.partition, platforms)
        outcome = self.engine_of(source.partition, platform).step(state, event, platform)
        self._emit(outcome.notices, source)
        self._emit_audit(account_id, outcome, source)
        self._count_happenings(outcome)
        self._count_cures(outcome)
        wakeup = outcome.wakeup
        self._states[account_id] = (outcome.state, source, wakeup)
        if self._wakeups is not None:
            # Later ticks in this same batch must see the account's new wakeup, and only that one.
            if wakeup is None:
                self._wake_at.pop(account_id, None)
            elif self._wake_at.get(account_id) != wakeup.timestamp():  # an unchanged wakeup is indexed already
                self._wake_at[account_id] = wakeup.timestamp()
                heapq.heappush(self._wakeups.setdefault(source.partition, []), (wakeup.timestamp(), account_id))

    def engine_of(self, partition: int, platform: PlatformState) -> Engine | PolicyEngine:
        """The policy the partition runs: the one in force at its clock, kept until a tick switches it."""
        engine = self._engines.get(partition)
        if engine is None:
            engine = self._engines[partition] = self.schedule.at(platform.clock)
        return engine

    def _platform(self, partition: int, platforms: Store) -> PlatformState:
        platform = self._platforms.get(partition)
        if platform is None:
            raw = platforms.get(str(partition))
            platform = load_platform(raw) if raw is not None else PlatformState()
            self._platforms[partition] = platform
        return platform

    def _index(self, scan: Scan) -> dict[int, list[tuple[float, str]]]:
        """Wakeup times of every account this worker holds, by partition, rebuilt after a rebalance."""
        if self._wakeups is None:
            index: dict[int, list[tuple[float, str]]] = {}
            wake_at: dict[str, float] = {}
            for key, raw in scan():
                partition, wakeup = account_header(raw)
                if wakeup is not None:
                    index.setdefault(partition, []).append((wakeup, key))
                    wake_at[key] = wakeup
            for key, (_, source, wakeup) in self._states.items():  # changed in this batch, not yet stored
                if wakeup is None:
                    wake_at.pop(key, None)
                else:
                    index.setdefault(source.partition, []).append((wakeup.timestamp(), key))
                    wake_at[key] = wakeup.timestamp()
            for heap in index.values():
                heapq.heapify(heap)
            self._wakeups, self._wake_at = index, wake_at
        return self._wakeups

    def _accounts_on(self, partition: int, scan: Scan) -> set[str]:
        """Every account of the partition: stored ones, and this batch's new ones not stored yet."""
        stored = {key for key, raw in scan() if account_header(raw)[0] == partition}
        return stored | {key for key, (_, source, _) in self._states.items() if source.partition == partition}

    # ----------------------------------------------------------------- portfolio figures

    def _count_cures(self, outcome: Outcome) -> None:
        """An episode ended by the payment the step applied (its first audit line is the event's) is a cure, for
        the variant and for each rule that contacted the account in it (rules/report.py attributes them so)."""
        if not outcome.audit or outcome.audit[0].what != "payment.received":
            return
        variant = outcome.variant or ""
        for entry in outcome.audit:
            if entry.what == "episode.ended":
                self._batch.cures[(variant, "")] += 1
                for rule_id in filter(None, entry.detail.get("rules", "").split(",")):
                    self._batch.cures[(variant, rule_id)] += 1

    def _count_happenings(self, outcome: Outcome) -> None:
        """Episodes, arrangements and amounts billed as the step's audit lines recorded them, for the flow
        metrics."""
        arrangements = outcome.state.arrangements
        for entry in outcome.audit:
            if entry.what in ("episode.started", "episode.ended"):
                self._batch.happenings[(entry.what, "")] += 1
            elif entry.what in ("arrangement.agreed", "arrangement.cancelled") and "ignored" not in entry.detail:
                arrangement = arrangements.get(entry.detail.get("arrangement_id", ""))
                what = entry.what.split(".")[1]
                self._batch.happenings[(f"arrangement.{what}", arrangement.kind if arrangement else "")] += 1
            elif entry.what.startswith("decision.arrangement_"):
                what = entry.what.removeprefix("decision.arrangement_")
                self._batch.happenings[(f"arrangement.{what}", entry.detail.get("kind", ""))] += 1
            elif entry.what == "decision.settled":  # a settlement paid in full is kept
                self._batch.happenings[("arrangement.kept", "settlement")] += 1
            elif entry.what == "decision.reconciled":  # billing's statement: items per kind of difference
                for kind, items in entry.detail.items():
                    if kind != "as_of":
                        self._batch.happenings[("reconciled", kind)] += len(items.split("; "))
            elif entry.what in RECEIPT_TYPES and "ignored" not in entry.detail:
                detail = entry.detail
                self._batch.happenings[(entry.what, f"{detail['channel']}|{detail['template']}|"
                                                    f"{detail.get('reason', '')}")] += 1
            elif entry.what == "invoice.issued" and "ignored" not in entry.detail:
                billed, currency = self._batch.billed, entry.detail["currency"]
                billed[currency] = billed.get(currency, Decimal(0)) + Decimal(entry.detail["amount"])

    def _update_position(self, account_id: str, state: AccountState, partition: int) -> None:
        """The account's standing as of the partition's clock (before its first tick: the account's last event)."""
        if self._positions is None:
            return
        marks = frozenset([*(f"flag:{flag}" for flag in state.flags),
                           *(f"restriction:{action}" for action in state.restrictions)])
        before = self._marks.pop(account_id, frozenset())
        if marks != before:
            tally = self._mark_totals.setdefault(partition, Counter())
            tally.subtract(before)
            tally.update(marks)
        if marks:
            self._marks[account_id] = marks
        platform = self._platforms[partition]  # loaded by the step or the rebuild that brought the account here
        at = platform.clock or state.evaluated_until or (state.case_events[-1].at if state.case_events else None)
        if at is None:
            return
        new = self.engine_of(partition, platform).portfolio(state, platform, at)
        totals = self._totals.setdefault(partition, {})
        for currency, position in self._positions.pop(account_id, {}).items():
            _add(totals, currency, position, -1)
        for currency, position in new.items():
            _add(totals, currency, position, +1)
        if new:
            self._positions[account_id] = new

    def portfolio(self, partitions: Iterable[int], platforms: Store, scan: Scan, ready: bool = True
                  ) -> dict[str, dict[str, Decimal]]:
        """Sums over the given partitions: per currency, accounts and amounts open and overdue, and aging.

        Figures are rebuilt from the tables when partitions arrived that they do not cover yet, once `ready`
        says the tables have been restored."""
        partitions = set(partitions)
        if ready and (self._positions is None or not partitions <= self._covered):
            self._positions, self._totals, self._covered = {}, {}, partitions
            self._marks, self._mark_totals = {}, {}
            current = {key: (state, source.partition) for key, (state, source, _) in self._states.items()}
            stored = ((key, (decode_account(raw), account_header(raw)[0])) for key, raw in scan() if key not in current)
            for key, (state, partition) in [*current.items(), *stored]:
                self._platform(partition, platforms)
                self._update_position(key, state, partition)
        summed: dict[str, dict[str, Decimal]] = {}
        for partition in partitions:
            for currency, figures in self._totals.get(partition, {}).items():
                into = summed.setdefault(currency, {})
                for name, value in figures.items():
                    into[name] = into.get(name, Decimal(0)) + value
        return summed

    def marks(self, partitions: Iterable[int]) -> dict[str, int]:
        """Accounts per flag and per restriction over the given partitions (as of the last portfolio())."""
        summed: Counter[str] = Counter()
        for partition in partitions:
            summed.update(self._mark_totals.get(partition, {}))
        return {mark: count for mark, count in summed.items() if count > 0}

    def platform_of(self, partition: int, platforms: Store) -> PlatformState:
        return self._platform(partition, platforms)

    def running_versions(self, partitions: Iterable[int], platforms: Store) -> str:
        """The versions of the policies the partitions run now (one, but for a moment around a switch)."""
        return ", ".join(sorted({self.engine_of(p, self._platform(p, platforms)).version for p in partitions}))

    def last_tick(self, partitions: Iterable[int], platforms: Store) -> float | None:
        clocks = [self._platform(p, platforms).clock for p in partitions]
        return max((clock.timestamp() for clock in clocks if clock is not None), default=None)

    # ----------------------------------------------------------------- output

    def _emit(self, notices: list[Notice], source: Source) -> None:
        for notice in notices:
            self._batch.notices.append(notice)
            self._batch.released_by.append(source.timestamp_ms)
            self._batch.outgoing.append(Outgoing(self._notice_topics[notice.kind], notice.account_id.encode(),
                                                 notice.to_json(), source.partition))

    def _emit_audit(self, account_id: str, outcome: Outcome, source: Source) -> None:
        key, out = account_id.encode(), self._batch.outgoing
        for line in outcome.audit:
            record = AuditRecord.of(account_id, outcome.version, line, outcome.variant)
            out.append(Outgoing(self.topics.audit, key, record.to_json(), source.partition))

    def _dead_letter(self, source: Source, rejected: Rejected) -> None:
        letter, key, value = dead_letter(source, rejected, self.dead_letter_limit)
        self._batch.dead_letters.append(letter)
        self._batch.outgoing.append(Outgoing(self.topics.dead_letter, key, value, source.partition))


# A truncated dead letter keeps this share of the limit of the key and of the value: base64 (4/3) and text (JSON
# escapes take up to 6 bytes a byte) of both, and the shortened message and errors, stay well under the limit.
_KEPT_SHARE = 20
_KEPT_ERRORS, _KEPT_CHARS = 20, 200


def dead_letter(source: Source, rejected: Rejected, limit: int) -> tuple[DeadLetter, bytes, bytes]:
    """A message's dead letter, its key and its JSON, together at most `limit` bytes: a letter that would not fit
    keeps the start of the original key and value (DeadLetter.truncated)."""
    key = source.key or b""
    letter = _letter(source, rejected, source.key, source.value, truncated=False)
    encoded = letter.model_dump_json(exclude_none=True).encode()
    if len(encoded) + len(key) > limit:
        kept = limit // _KEPT_SHARE
        key = key[:kept]
        shortened = Rejected(rejected.reason, rejected.message[:_KEPT_CHARS * 5],
                             [error[:_KEPT_CHARS] for error in rejected.errors[:_KEPT_ERRORS]])
        letter = _letter(source, shortened, _start(source.key, kept), _start(source.value, kept), truncated=True)
        encoded = letter.model_dump_json(exclude_none=True).encode()
    return letter, key, encoded


def _start(data: bytes | None, length: int) -> bytes | None:
    return None if data is None else data[:length]


def _letter(source: Source, rejected: Rejected, key: bytes | None, value: bytes | None,
            truncated: bool) -> DeadLetter:
    text = None
    if value is not None:
        try:  # a truncated value may end inside a character: the text stops before it
            text = codecs.getincrementaldecoder("utf-8")().decode(value, final=not truncated)
        except UnicodeDecodeError:
            pass
    original = source.value
    return DeadLetter(
        reason=rejected.reason, message=rejected.message, errors=rejected.errors,
        origin=MessageOrigin(topic=source.topic, partition=source.partition, offset=source.offset,
                             timestamp_ms=source.timestamp_ms),
        key_base64=None if key is None else base64.b64encode(key).decode(),
        value_base64=None if value is None else base64.b64encode(value).decode(), value_text=text,
        value_length=None if original is None else len(original),
        value_sha256=None if original is None else hashlib.sha256(original).hexdigest(),
        truncated=truncated,
    )


def _add(totals: dict[str, dict[str, Decimal]], currency: str, position: Position, sign: int) -> None:
    figures = totals.setdefault(currency, {})

    def bump(name: str, value: Decimal) -> None:
        figures[name] = figures.get(name, Decimal(0)) + sign * value

    bump("accounts_open", Decimal(1))
    bump("open_amount", position.open_amount)
    if position.overdue_amount > 0:
        bump("accounts_overdue", Decimal(1))
        bump("overdue_amount", position.overdue_amount)
    for bucket in AGING_BUCKETS:
        bump(f"aging_amount:{bucket}", position.aging[bucket])
    bump(f"aging_accounts:{aging_bucket(position.days_past_due)}", Decimal(1))
