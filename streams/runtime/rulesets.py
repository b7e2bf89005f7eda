"""Policies as data on Kafka: `dunning rules publish` writes one to the compacted topic `dunning.rulesets`, and
every worker reads the whole topic (a few records) into a Schedule of the policies in force over logical time.

Determinism: a partition switches at its first clock tick at or after the record's `effective_after`, whichever
worker owns it and whenever that worker read the record. Before a batch with a tick the worker reads the topic
to its end, so a record published before the tick was produced is known when the tick is applied.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import ValidationError

from rules.loader import RulesetError
from rules.policy import Policy, PolicyEngine, Schedule, parse_policy
from schemas.rulesets import PublishedRuleset
from streams.runtime.settings import Settings

log = logging.getLogger("dunning.rulesets")


def record_of(policy: Policy, effective_after: datetime, published_at: datetime) -> PublishedRuleset:
    return PublishedRuleset(digest=policy.digest, version=policy.version, main=policy.main, sources=policy.sources,
                            published_at=published_at, effective_after=effective_after)


def policy_of(record: PublishedRuleset) -> Policy:
    """The policy a record carries, validated as `dunning rules check` validates its files."""
    sources = record.sources
    if record.main not in sources:
        raise RulesetError([f"{record.main}: not among the record's files ({', '.join(sorted(sources))})"])
    return parse_policy(sources[record.main], record.main, sources.__getitem__)


def switch_of(value: bytes | None, where: str,
              engines: dict[str, PolicyEngine]) -> tuple[datetime, PolicyEngine] | None:
    """A record's (effective_after, engine); None for a tombstone or a record that is not usable (logged).
    `engines` holds the engines by digest: a republished policy is the same engine."""
    if value is None:
        return None  # a tombstone: nothing to run
    try:
        record = PublishedRuleset.model_validate_json(value)
        engine = engines.get(record.digest) or PolicyEngine(policy_of(record))
    except (ValidationError, RulesetError) as exc:
        log.error("ruleset record %s is not usable, ignored: %s", where, exc)
        return None
    engines[record.digest] = engine
    return record.effective_after, engine


async def ensure_rulesets_topic(settings: Settings) -> bool:
    """Creates the compacted one-partition topic when missing; True when it did."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options(), client_id=f"{settings.app_id}-admin")
    await admin.start()
    try:
        if settings.topic.rulesets in set(await admin.list_topics()):
            return False
        await admin.create_topics([NewTopic(settings.topic.rulesets, 1, settings.replication_factor,
                                            topic_configs={"cleanup.policy": "compact"})])
        return True
    finally:
        await admin.close()


async def publish_policy(settings: Settings, policy: Policy, effective_after: datetime | None) -> PublishedRuleset:
    """Writes the policy to the rulesets topic; it is in force from the first tick at or after effective_after
    (default: now)."""
    await ensure_rulesets_topic(settings)
    now = datetime.now(timezone.utc)
    record = record_of(policy, effective_after or now, now)
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic.rulesets, record.to_json(), key=record.digest.encode(),
                                     partition=0)
    finally:
        await producer.stop()
    return record


class RulesetFeed:
    """The worker's view of the rulesets topic: the seed (DUNNING_RULES) and every valid record read so far."""

    def __init__(self, settings: Settings, seed: PolicyEngine):
        self.settings = settings
        self.seed = seed
        self.schedule = Schedule(seed)
        self._switches: list[tuple[datetime, PolicyEngine]] = []
        self._engines: dict[str, PolicyEngine] = {}  # by digest: a republished policy is the same engine
        self._consumer: AIOKafkaConsumer | None = None
        self._partition = TopicPartition(settings.topic.rulesets, 0)

    @property
    def started(self) -> bool:
        return self._consumer is not None

    async def catch_up(self) -> Schedule:
        """Reads the topic to its current end; returns the schedule of every policy known then."""
        if self._consumer is None:
            # A broker away stops the batch here as it stops its sends, which wait (Faust's producer, 20 min):
            # aiokafka's default of 40 s failed the batch (and stopped the worker) when the broker was back after 45.
            self._consumer = AIOKafkaConsumer(**self.settings.kafka_client_options(), group_id=None,
                                              enable_auto_commit=False, auto_offset_reset="earliest",
                                              request_timeout_ms=300_000)
            await self._consumer.start()
            self._consumer.assign([self._partition])
            await self._consumer.seek_to_beginning(self._partition)
        consumer, partition = self._consumer, self._partition
        end = (await consumer.end_offsets([partition]))[partition]
        while await consumer.position(partition) < end:
            for message in (await consumer.getmany(partition, timeout_ms=1000)).get(partition, []):
                self._add(message.value, message.offset)
        return self.schedule

    def _add(self, value: bytes | None, offset: int) -> None:
        switch = switch_of(value, f"at offset {offset}", self._engines)
        if switch is None:
            return
        self._switches.append(switch)
        self.schedule = Schedule(self.seed, self._switches)
        effective, engine = switch
        log.info("ruleset %s in force from the first tick at or after %s", engine.version, effective.isoformat())

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
