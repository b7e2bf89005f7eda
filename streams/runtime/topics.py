"""Creates every topic the worker needs, with one partition count for all: Faust creates none of its sources,
and a table whose partition count differs from its source topic crash-loops."""
from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.runtime.settings import Settings


class TopicLayoutError(Exception):
    """Existing topics that cannot work together (wrong partition counts)."""


async def ensure_topics(settings: Settings) -> list[str]:
    """Creates the missing topics; returns their names. Raises TopicLayoutError on mismatched partitions."""
    wanted = list(settings.topic.inputs) + list(settings.topic.outputs)
    admin = AIOKafkaAdminClient(**settings.kafka_client_options(), client_id=f"{settings.app_id}-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        present = [name for name in wanted if name in existing]
        if present:
            described = await admin.describe_topics(present)
            wrong = [f"{d['topic']} has {len(d['partitions'])}" for d in described
                     if len(d["partitions"]) != settings.partitions]
            if wrong:
                raise TopicLayoutError(
                    f"every topic needs {settings.partitions} partitions (DUNNING_PARTITIONS), but "
                    + ", ".join(wrong) + "; co-partitioned topics and the state tables must agree")
        missing = [name for name in wanted if name not in existing]
        if missing:
            await admin.create_topics([NewTopic(name, settings.partitions, settings.replication_factor)
                                       for name in missing])
        return missing
    finally:
        await admin.close()
