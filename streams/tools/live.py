"""Clients of a running system: `dunning publish` (events in, by type, with ticks) and `dunning tail`."""
from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from typing import Iterable, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from rules.simulator import with_ticks
from schemas.events import PLATFORM_ACCOUNT, InputEvent
from schemas.notices import Notice
from streams.runtime.settings import Settings


async def group_caught_up(settings: Settings, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> bool:
    """True when the worker group has committed every message published to its input topics."""
    partitions = [TopicPartition(topic, p) for topic in settings.topic.inputs for p in range(settings.partitions)]
    ends = await consumer.end_offsets(partitions)
    committed = await admin.list_consumer_group_offsets(settings.app_id, partitions=partitions)
    return all(committed.get(tp) is not None and committed[tp].offset >= ends[tp] for tp in partitions if ends[tp])


class GroupWatcher:
    """Waits until the worker group has committed everything published so far (clients kept open)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.admin = AIOKafkaAdminClient(**settings.kafka_client_options())
        self.consumer = AIOKafkaConsumer(**settings.kafka_client_options())

    async def __aenter__(self) -> "GroupWatcher":
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def wait(self, timeout: float = 120.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await group_caught_up(self.settings, self.admin, self.consumer):
            if loop.time() > deadline:
                raise TimeoutError(f"the worker group {self.settings.app_id!r} did not catch up within "
                                   f"{timeout:.0f} s")
            await asyncio.sleep(0.05)


async def publish(settings: Settings, events: list[InputEvent], every: timedelta | None, until: datetime | None,
                  settle: bool, out: TextIO = sys.stdout) -> int:
    """Sends events to their topics keyed by account (ticks and outages to every clock partition).

    With settle, keeps the simulator's order although topics are consumed in no fixed order: before a tick it
    waits until the worker has consumed the events sent so far, before an event until it has consumed the
    ticks sent so far, and before an account's event on another topic than its previous unsettled one (an
    invoice, then its payment) until that one is consumed."""
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    sent = 0
    ticks_unsettled = False
    events_unsettled: dict[str, str] = {}  # account -> topic of its events sent since the last wait
    try:
        async with GroupWatcher(settings) as watcher:

            async def wait() -> None:
                nonlocal ticks_unsettled
                await producer.flush()
                await watcher.wait()
                ticks_unsettled = False
                events_unsettled.clear()

            for event in with_ticks(events, every, until):
                value = event.model_dump_json(exclude_none=True).encode()
                topic = settings.topic.for_event_type(event.type)
                if event.account_id == PLATFORM_ACCOUNT:
                    if settle and events_unsettled:
                        await wait()  # ticks follow each other in order on the clock topic: no wait between them
                    await asyncio.gather(*[await producer.send(topic, value, key=b"*", partition=p)
                                           for p in range(settings.partitions)])
                    ticks_unsettled = True
                else:
                    if settle and (ticks_unsettled or events_unsettled.get(event.account_id, topic) != topic):
                        await wait()
                    await producer.send(topic, value, key=event.account_id.encode())
                    events_unsettled[event.account_id] = topic
                sent += 1
            await producer.flush()
    finally:
        await producer.stop()
    print(f"published {sent} events", file=out)
    return sent


def one_line(notice: Notice) -> str:
    owed = " ".join(f"{amount} {currency}" for currency, amount in notice.overdue.items()) or "-"
    if notice.kind == "handoff":
        what = f"HANDOFF {notice.action} -> {notice.to}"
    elif notice.channel:
        what = f"{notice.kind.upper()} {notice.template} via {notice.channel}"
    else:  # a decision to billing: its amounts
        what = " ".join([notice.kind.upper()] + [f"{name}={amount} {currency}" for name in ("paid", "written_off")
                                                 for currency, amount in (getattr(notice, name) or {}).items()])
    return (f"{notice.issued_at.isoformat(timespec='minutes')}  {notice.account_id:<12} {what:<44} "
            f"rule={notice.rule_id or '-'} dpd={notice.days_past_due} overdue={owed}  [{notice.notice_id}]")


def reader(settings: Settings, topics: Iterable[str], from_beginning: bool) -> AIOKafkaConsumer:
    """A consumer of these topics, in no group (it commits nothing)."""
    return AIOKafkaConsumer(*topics, **settings.kafka_client_options(),
                            auto_offset_reset="earliest" if from_beginning else "latest",
                            enable_auto_commit=False, group_id=None)


def notice_consumer(settings: Settings, from_beginning: bool) -> AIOKafkaConsumer:
    """A consumer of the notice topics (offers and decisions too), in no group (it commits nothing)."""
    return reader(settings, settings.topic.notices, from_beginning)


def trails(records: Iterable[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    """Audit records (account_id, JSON) grouped by account, each account's in order: the audit topic keeps the
    order of one account's lines (one key, one partition), not the order across accounts."""
    grouped: dict[str, list[bytes]] = {}
    for account_id, line in records:
        grouped.setdefault(account_id, []).append(line)
    return grouped


def trail_differences(live: dict[str, list[bytes]], expected: dict[str, list[bytes]]) -> dict[str, str]:
    """For each account whose live trail is not the expected one: its first differing line, both ways."""
    found = {}
    for account in sorted(live.keys() | expected.keys()):
        mine, theirs = live.get(account, []), expected.get(account, [])
        if mine != theirs:
            at = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
            found[account] = (f"line {at + 1} (live {len(mine)} lines, expected {len(theirs)}): "
                              f"live {mine[at:at + 1]} expected {theirs[at:at + 1]}")
    return found


async def tail(settings: Settings, from_beginning: bool, limit: int | None, idle_seconds: float | None,
               out: TextIO = sys.stdout) -> int:
    """Prints notices as the broker acknowledges them (a redelivered notice shows again: same notice_id);
    stops after `limit` notices or `idle_seconds` without one."""
    consumer = notice_consumer(settings, from_beginning)
    await consumer.start()
    shown = 0
    try:
        while limit is None or shown < limit:
            batch = await consumer.getmany(timeout_ms=int((idle_seconds or 3600) * 1000))
            if not batch:
                if idle_seconds is not None:
                    break
                continue
            for records in batch.values():
                for record in records:
                    if limit is not None and shown >= limit:
                        return shown
                    print(one_line(Notice.model_validate_json(record.value)), file=out, flush=True)
                    shown += 1
    finally:
        await consumer.stop()
    return shown
