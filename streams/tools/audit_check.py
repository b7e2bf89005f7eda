"""`dunning audit-check`: the accounting invariant of a run, proven from the topics alone.

Every message on an input topic is accounted for, one way or the other:

- dead-lettered: a dead letter names its topic, partition and offset (DeadLetter.origin);
- applied, for an account event: the audit stream has the line the engine writes for every event it applies
  (account_id, what = the event's type, id = its event_id). A redelivered event (the same event_id again) is
  recognised by the engine and writes nothing more, so its proof is the same line;
- applied, for a platform event (a tick or an outage, on every clock partition): the platform table's changelog
  for that partition holds a clock at or after the tick, or the outage.

And the output is consistent: a notice_id never comes with two different contents, every notice the audit
stream records as sent is on a notice topic (and the other way round), and, given the simulator's notices for
the valid events, the notices are exactly those (same ids, same content; repeats allowed, at-least-once).

`check` works on records already read (the unit tests feed it); `check_broker` reads them from the broker
(`dunning audit-check`, and the live tests through tests/live/livekit.py). Nothing here needs the worker.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable

from pydantic import ValidationError

from rules.state import PlatformState, load_platform
from schemas.deadletter import DeadLetter
from schemas.events import PLATFORM_ACCOUNT, ClockTick, InputEvent, PlatformOutage, parse_event
from schemas.notices import Notice, is_notice_line
from streams.runtime.settings import Settings, TopicNames

SHOWN = 10  # violations named per kind; the rest are counted


@dataclass(frozen=True, slots=True)
class Message:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Report:
    inputs: int = 0
    applied: int = 0  # account events with their audit line
    redelivered: int = 0  # account events whose event_id an earlier input message already carried
    platform: int = 0  # ticks and outages found in the platform table
    dead_lettered: int = 0
    dead_letters: int = 0  # dead letters read (a crash may repeat one)
    reasons: Counter[str] = field(default_factory=Counter)
    notices: int = 0  # notices read, repeats included
    distinct_notices: int = 0
    audit_lines: int = 0
    simulated: int | None = None  # the simulator's notices, when compared
    violations: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # violations per kind

    @property
    def ok(self) -> bool:
        return not self.counts

    @property
    def lost(self) -> int:
        """Input messages neither applied nor dead-lettered, and sent notices missing from the notice topics."""
        return self.counts["unaccounted"] + self.counts["notice_missing"] + self.counts["simulator_missing"]

    @property
    def repeated_notices(self) -> int:
        return self.notices - self.distinct_notices

    def violation(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        shown = self.violations.setdefault(kind, [])
        if len(shown) < SHOWN:
            shown.append(text)

    def summary(self) -> dict[str, object]:
        return {"ok": self.ok, "inputs": self.inputs, "applied": self.applied, "redelivered": self.redelivered,
                "platform": self.platform, "dead_lettered": self.dead_lettered, "dead_letters": self.dead_letters,
                "reasons": dict(sorted(self.reasons.items())), "notices": self.notices,
                "distinct_notices": self.distinct_notices, "repeated_notices": self.repeated_notices,
                "audit_lines": self.audit_lines, "simulated": self.simulated, "lost": self.lost,
                "violations": dict(self.counts)}

    def render(self) -> str:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.reasons.items())) or "none"
        lines = [
            f"input messages: {self.inputs}",
            f"  applied (audit line): {self.applied}, of which redelivered: {self.redelivered}",
            f"  platform (in the platform table): {self.platform}",
            f"  dead-lettered: {self.dead_lettered} ({reasons}); dead letters read: {self.dead_letters}",
            f"notices: {self.notices} read, {self.distinct_notices} distinct, {self.repeated_notices} repeats",
            f"audit lines: {self.audit_lines}",
        ]
        if self.simulated is not None:
            lines.append(f"simulator: {self.simulated} notices expected")
        if self.ok:
            lines.append("OK: every input message applied or dead-lettered; no notice twin differs"
                         + ("; notices are the simulator's" if self.simulated is not None else ""))
        for kind, shown in self.violations.items():
            lines.append(f"VIOLATION {kind}: {self.counts[kind]}")
            lines.extend(f"  {text}" for text in shown)
            if self.counts[kind] > len(shown):
                lines.append(f"  ... and {self.counts[kind] - len(shown)} more")
        return "\n".join(lines)


def _at(message: Message) -> str:
    return f"{message.topic}/{message.partition}@{message.offset}"


def _canonical(value: bytes) -> str:
    return json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))


def check(inputs: Iterable[Message], dead_letters: Iterable[Message], notices: Iterable[Message],
          audit: Iterable[Message], platform: Iterable[Message], expected: list[Notice] | None = None) -> Report:
    """The verdict on one run's topics. `platform` is the platform table's changelog; `expected`, when given, the
    simulator's notices for the valid input events."""
    report = Report()

    # What the worker wrote: dead letters by origin, event lines and notice lines of the audit stream.
    origins: dict[tuple[str, int, int], str] = {}
    for message in dead_letters:
        report.dead_letters += 1
        try:
            letter = DeadLetter.model_validate_json(message.value or b"")
        except ValidationError as exc:
            report.violation("bad_dead_letter", f"{_at(message)}: not a dead letter: {exc.errors()[0]['msg']}")
            continue
        origins[(letter.origin.topic, letter.origin.partition, letter.origin.offset)] = letter.reason
    applied: set[tuple[str, str]] = set()  # (account_id, event_id): the engine knows a redelivery by its id
    audited_notices: dict[str, str] = {}  # notice_id -> where its audit line is
    for message in audit:
        report.audit_lines += 1
        line = json.loads(message.value or b"{}")
        what = line.get("what", "")
        if is_notice_line(what):
            audited_notices.setdefault(line["id"], _at(message))
        elif not what.startswith(("decision.", "episode.")):
            applied.add((line.get("account_id"), line.get("id")))
    clocks: dict[int, PlatformState] = {}
    for message in platform:  # the last value of each partition's key wins, as in the table
        if message.value is not None:
            clocks[int(message.key or b"0")] = load_platform(message.value)

    # Every input message: dead-lettered, or applied.
    seen_ids: set[tuple[str, str]] = set()
    matched: set[tuple[str, int, int]] = set()
    for message in inputs:
        report.inputs += 1
        position = (message.topic, message.partition, message.offset)
        if position in origins:
            matched.add(position)
            report.dead_lettered += 1
            report.reasons[origins[position]] += 1
            continue
        try:
            event = parse_event(message.value or b"")
        except ValidationError:
            report.violation("unaccounted", f"{_at(message)}: invalid, and no dead letter names it")
            continue
        if event.account_id == PLATFORM_ACCOUNT:
            if _platform_applied(event, clocks.get(message.partition)):
                report.platform += 1
            else:
                report.violation("unaccounted", f"{_at(message)}: {event.type} {event.event_id} is not in the "
                                                f"platform table of partition {message.partition}")
            continue
        identity = (event.account_id, event.event_id)
        if identity in applied:
            report.applied += 1
            if identity in seen_ids:
                report.redelivered += 1
            seen_ids.add(identity)
        else:
            report.violation("unaccounted", f"{_at(message)}: {event.type} {event.event_id} of account "
                                            f"{event.account_id}: no audit line applies it, no dead letter names it")
    for position in sorted(origins.keys() - matched):
        report.violation("stray_dead_letter", "a dead letter names {}/{}@{}, which is no input message"
                         .format(*position))

    # Notices: no twin differs, each audited one sent, each sent one audited, and the simulator's.
    first: dict[str, tuple[str, str]] = {}  # notice_id -> (canonical JSON, where)
    for message in notices:
        report.notices += 1
        notice = json.loads(message.value or b"{}")
        notice_id = notice.get("notice_id", "")
        content = _canonical(message.value)
        if notice_id not in first:
            first[notice_id] = (content, _at(message))
            if notice_id not in audited_notices:
                report.violation("notice_unaudited", f"{_at(message)}: notice {notice_id} has no audit line")
        elif first[notice_id][0] != content:
            report.violation("notice_twin", f"notice {notice_id} at {first[notice_id][1]} and at {_at(message)} "
                                            f"differ in {_differing(first[notice_id][0], content)}")
    report.distinct_notices = len(first)
    for notice_id in audited_notices.keys() - first.keys():
        report.violation("notice_missing", f"the audit line at {audited_notices[notice_id]} records notice "
                                           f"{notice_id} as sent; no notice topic carries it")
    if expected is not None:
        _compare(report, first, expected)
    return report


def _differing(one: str, other: str) -> str:
    """The top-level fields in which two notices' JSON differ, with both values (cut short)."""
    a, b = json.loads(one), json.loads(other)
    return "; ".join(f"{name}: {json.dumps(a.get(name))[:200]} vs {json.dumps(b.get(name))[:200]}"
                     for name in sorted(a.keys() | b.keys()) if a.get(name) != b.get(name))


def _platform_applied(event: InputEvent, state: PlatformState | None) -> bool:
    if state is None:
        return False
    if isinstance(event, ClockTick):
        return state.clock is not None and state.clock >= event.at
    if isinstance(event, PlatformOutage):
        return event.outage_id in state.outages
    return False


def _compare(report: Report, live: dict[str, tuple[str, str]], expected: list[Notice]) -> None:
    report.simulated = len(expected)
    wanted = {notice.notice_id: notice for notice in expected}
    for notice_id, notice in wanted.items():
        if notice_id not in live:
            report.violation("simulator_missing", f"{notice.issued_at.isoformat()} {notice.account_id} "
                                                  f"{notice.kind} {notice.rule_id} [{notice_id}]")
        elif live[notice_id][0] != _canonical(notice.to_json()):
            report.violation("simulator_differs", f"notice {notice_id} at {live[notice_id][1]} differs from "
                                                  "the simulator's")
    for notice_id, (_, where) in live.items():
        if notice_id not in wanted:
            report.violation("simulator_unexpected", f"{where}: notice {notice_id}, which the simulator did not send")


# --------------------------------------------------------------------------------------------- the simulator

def simulator_order(inputs: Iterable[Message], topics: TopicNames) -> list[InputEvent]:
    """The valid input events in the order the simulator takes them: by time, a tick or outage before an event
    at the same instant (as `with_ticks` does), each platform event once (it is on every clock partition), and
    otherwise in topic and offset order. This is the order the live worker kept when the events were published
    in it (`dunning publish` waits for the worker between a tick and the events after it)."""
    keyed: list[tuple[datetime, int, int, int, int, InputEvent]] = []
    platform_seen: set[str] = set()
    rank = {topic: number for number, topic in enumerate(topics.inputs)}
    for message in inputs:
        try:
            event = parse_event(message.value or b"")
        except ValidationError:
            continue
        if event.account_id == PLATFORM_ACCOUNT:
            if event.event_id in platform_seen:
                continue
            platform_seen.add(event.event_id)
            when, first = (event.at if isinstance(event, ClockTick) else event.occurred_at), 0
        else:
            when, first = event.occurred_at, 1
        keyed.append((when, first, rank.get(message.topic, 0), message.partition, message.offset, event))
    keyed.sort(key=lambda item: item[:5])
    return [item[-1] for item in keyed]


def simulated_notices(events: Iterable[InputEvent], rules: Path, published: Iterable[Message] = ()) -> list[Notice]:
    """The simulator's notices: `rules` (DUNNING_RULES, a ruleset or an experiment) until the policies published on
    the rulesets topic take over, as the workers switch to them."""
    from rules.policy import PolicyEngine, Schedule, load_policy
    from rules.simulator import Simulation
    from streams.runtime.rulesets import switch_of

    seed, engines = PolicyEngine(load_policy(rules)), {}
    switches = [switch_of(m.value, f"at offset {m.offset}", engines) for m in published]
    simulation = Simulation(seed, schedule=Schedule(seed, [switch for switch in switches if switch]))
    for event in events:
        simulation.feed(event)
    return simulation.notices


# --------------------------------------------------------------------------------------------- the broker

async def read_topic(options: dict[str, object], topic: str) -> list[Message]:
    """Every message on a topic, from its beginning to its end when asked (read_committed); none if it does not
    exist."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assigned = [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
    if description["error_code"] or not assigned:
        return []
    # earliest: the reset that assign() starts must not race the seek below to the end
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None, auto_offset_reset="earliest",
                                isolation_level="read_committed", max_partition_fetch_bytes=2 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        remaining = {tp for tp in assigned if ends[tp] > 0}
        await consumer.seek_to_beginning(*assigned)
        found: list[Message] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                found.extend(Message(topic, tp.partition, r.offset, r.key, r.value) for r in records)
            for tp in list(remaining):  # a compacted log may end in a gap: the position says where it is
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


async def check_broker(settings: Settings, simulate: bool = True, expected: list[Notice] | None = None) -> Report:
    """Reads the inputs, dead letters, notices, audit and platform changelog of settings' app and checks them;
    the notices against `expected`, or with `simulate` against the simulator's for the inputs in time order."""
    topics = settings.topic
    options = settings.kafka_client_options()
    inputs = [message for topic in topics.inputs for message in await read_topic(options, topic)]
    if expected is None and simulate:
        expected = simulated_notices(simulator_order(inputs, topics), settings.rules,
                                     await read_topic(options, topics.rulesets))
    notices = [message for topic in topics.notices for message in await read_topic(options, topic)]
    return check(inputs, await read_topic(options, topics.dead_letter), notices,
                 await read_topic(options, topics.audit),
                 await read_topic(options, platform_changelog(settings.app_id)), expected)


def platform_changelog(app_id: str) -> str:
    return f"{app_id}-dunning-platform-changelog"
