"""Contenders (a) and (b) of bench/live.py: plain aiokafka loops over the input topics, in the harness's process.

Each consumes every input partition in its own fresh consumer group, from the earliest offset. The clock starts
when the first non-empty fetch returns (joining the group and the assignment are before it) and stops when the
broker reports the group's committed offsets at the end of every input partition (lag 0).
"""
from __future__ import annotations

import json
import time
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from broker import Broker
from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from schemas.events import parse_event
from streams.runtime.settings import DEFAULT_RULES, Settings


def raw_ceiling() -> Callable[[bytes], None]:
    """(a) json.loads and a dict update per event: what any Python consumer of these topics pays."""
    latest: dict[str, str] = {}

    def handle(value: bytes) -> None:
        event = json.loads(value)
        latest[event["account_id"]] = event["event_id"]

    return handle


def engine_loop() -> Callable[[bytes], None]:
    """(b) the project's decode and engine, states in a dict: parse_event, then the simulator's feed (the
    stable API around Engine.step: platform events, the account's step, its next wakeup), the worker's ruleset."""
    simulation = Simulation(Engine(load_ruleset(DEFAULT_RULES)))

    def handle(value: bytes) -> None:
        simulation.feed(parse_event(value))

    return handle


async def consume(broker: Broker, settings: Settings, partitions: list[TopicPartition],
                  handle: Callable[[bytes], None]) -> dict:
    ends = await broker.end_offsets(partitions)
    total = sum(ends.values())
    consumer = AIOKafkaConsumer(*settings.topic.inputs, **broker.options, group_id=settings.app_id,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    seen, first = 0, None
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if batches and first is None:
                first = time.perf_counter()
            for records in batches.values():
                for record in records:
                    handle(record.value)
                seen += len(records)
        await consumer.commit()
        while any(offset < ends[tp] for tp, offset in (await broker.committed(settings.app_id, partitions)).items()):
            pass  # the commit has returned; this only confirms it as the broker reports it
        seconds = time.perf_counter() - first
    finally:
        await consumer.stop()
    return {"messages": total, "seconds": round(seconds, 3), "events_per_s": round(total / seconds)}
