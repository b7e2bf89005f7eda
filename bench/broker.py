"""Kafka side of bench/live.py: one run's topics and app ids under a unique prefix, pre-filling, offsets, bytes.

Every name a run creates starts with its prefix, so `Broker.delete_run_topics` removes all of it (the worker's
topics, the changelogs and Faust's leader topics) from a broker the other engineers share.
"""
from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.events import PLATFORM_ACCOUNT
from streams.runtime.processor import partition_for
from streams.runtime.settings import Settings, TopicNames

TABLES = ("dunning-accounts", "dunning-platform")  # the worker's tables (streams/runtime/app.py)


@dataclass
class Run:
    """One bench run's names: a topic set per use, and an app id (consumer group) per contender."""

    bootstrap: str
    partitions: int = 4
    prefix: str = field(default_factory=lambda: f"bench-{datetime.now(timezone.utc):%Y%m%d%H%M%S}-"
                                                f"{uuid.uuid4().hex[:6]}")

    def topics(self, use: str) -> TopicNames:
        return TopicNames(**{name: f"{self.prefix}.{use}.{default}"
                             for name, default in TopicNames().model_dump().items()})

    def settings(self, use: str, app: str) -> Settings:
        return Settings(KAFKA_BOOTSTRAP_SERVERS=self.bootstrap, app_id=f"{self.prefix}-{app}",
                        partitions=self.partitions, topic=self.topics(use), clock_enabled=False)

    def input_partitions(self, settings: Settings) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for topic in settings.topic.inputs for p in range(self.partitions)]


def changelog(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


def worker_env(settings: Settings, state_dir: Path, web_port: int) -> dict[str, str]:
    """`dunning worker`'s environment for these settings (no DUNNING_* leaks in from ours)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DUNNING_")}
    env.update(KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers, DUNNING_APP_ID=settings.app_id,
               DUNNING_PARTITIONS=str(settings.partitions), DUNNING_STATE_DIR=str(state_dir),
               DUNNING_WEB_PORT=str(web_port), DUNNING_CLOCK_ENABLED="false", PYTHONUNBUFFERED="1")
    for name, topic in settings.topic.model_dump().items():
        env[f"DUNNING_TOPIC__{name.upper()}"] = topic
    return env


class Broker:
    """An admin client, a producer and an offsets consumer (in no group) on the harness's event loop."""

    def __init__(self, bootstrap: str):
        options = {"bootstrap_servers": bootstrap}
        self.options = options
        self.admin = AIOKafkaAdminClient(**options)
        self.offsets = AIOKafkaConsumer(**options, enable_auto_commit=False)
        # Big batches: pre-filling is set-up, not measured, and should not keep the broker busy for long.
        self.producer = AIOKafkaProducer(**options, acks="all", linger_ms=20, max_batch_size=1 << 20)
        self._coordinators: dict[str, int] = {}

    async def __aenter__(self) -> "Broker":
        await self.admin.start()
        await self.offsets.start()
        await self.producer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.producer.stop()
        await self.offsets.stop()
        await self.admin.close()

    async def create_topics(self, names: Iterable[str], partitions: int, config: dict[str, str]) -> None:
        await self.admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config) for name in names])

    async def send_all(self, records: Iterable[tuple[str, int, bytes, bytes]]) -> tuple[int, int]:
        """(topic, partition, key, value) records, sent in order; returns when the broker has all of them, with
        how many they were and their key and value bytes."""
        sent, size = [], 0
        for topic, partition, key, value in records:
            sent.append(await self.producer.send(topic, value, key=key, partition=partition))
            size += len(key) + len(value)
        await self.producer.flush()
        for delivery in sent:
            delivery.result()  # raises if the broker refused one
        return len(sent), size

    async def prefill(self, settings: Settings, lines: list[bytes]) -> None:
        """The event file on its topics, as `dunning publish` and the billing systems send it: keyed by account
        on the murmur2 partition (partition_for); an outage to every clock partition."""

        def records():
            for line in lines:
                event = json.loads(line)
                topic = settings.topic.for_event_type(event["type"])
                value = line.rstrip(b"\n")
                if event["account_id"] == PLATFORM_ACCOUNT:
                    for partition in range(settings.partitions):
                        yield topic, partition, b"*", value
                else:
                    yield topic, partition_for(event["account_id"], settings.partitions), \
                        event["account_id"].encode(), value

        await self.send_all(records())

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return await self.offsets.end_offsets(partitions)

    async def committed(self, group: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offset per partition (0 where it has none)."""
        if group not in self._coordinators:
            self._coordinators[group] = await self.admin.find_coordinator(group)
        found = await self.admin.list_consumer_group_offsets(group, self._coordinators[group], partitions)
        return {tp: max(0, found[tp].offset) if tp in found else 0 for tp in partitions}

    async def commit_empty_group(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        """Commits `offsets` for a group that has no member yet (the broker refuses outsiders once it has)."""
        member = AIOKafkaConsumer(**self.options, group_id=group, enable_auto_commit=False)
        await member.start()
        try:
            member.assign(list(offsets))
            await member.commit(offsets)
        finally:
            await member.stop()

    async def topic_bytes(self, topic: str, partitions: int) -> tuple[int, int]:
        """Records on a topic and the sum of their key and value bytes, read from the beginning to the end."""
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await self.end_offsets(tps)
        reader = AIOKafkaConsumer(**self.options, enable_auto_commit=False, auto_offset_reset="earliest",
                                  fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20)
        await reader.start()
        records = size = 0
        try:
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            pending = {tp for tp in tps if ends[tp]}
            while pending:
                for tp, batch in (await reader.getmany(*pending, timeout_ms=1000)).items():
                    records += len(batch)
                    size += sum(len(r.key or b"") + len(r.value or b"") for r in batch)
                    if batch[-1].offset + 1 >= ends[tp]:
                        pending.discard(tp)
        finally:
            await reader.stop()
        return records, size

    async def delete_run_topics(self, prefix: str) -> int:
        mine = [name for name in await self.admin.list_topics() if name.startswith(prefix)]
        if mine:
            await self.admin.delete_topics(mine)
        return len(mine)


async def wait_until(check, timeout: float, what: str, every: float = 0.1):
    """Awaits `check()` until it returns something truthy; TimeoutError naming `what` at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)
    return result
