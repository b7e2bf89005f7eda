"""A batch's table writes: one changelog record per key, sent together, then applied to the local store at once.

A Faust table write (`table[key] = value`) sends its changelog record through a buffer task, one future and one
callback per key, and the callback writes the partition's persisted offset into RocksDB once per record. For a
batch that touches thousands of accounts that was most of the worker's time. Here each partition's records go out
as one record batch, and once the broker has acknowledged them they are applied with `Store.apply_changelog_batch`, the call
Faust's own recovery makes: one RocksDB write batch and one persisted offset per partition. The local store
then holds exactly what the changelog holds, up to the offsets it records, as after a recovery.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Iterable, Iterator

import faust
from faust.types import TP

from streams.runtime.intake import Applied, active_items, open_dbs, partition_db, raw_producer


def _same(value: bytes) -> bytes:
    return value


Sent = list[tuple[str, int, list[tuple[bytes, bytes]], object]]  # (topic, partition, records, ack metadata)


async def send_batched(app: faust.App, records: Iterable[tuple[str, int, bytes, bytes]]) -> Sent:
    """Sends (topic, partition, key, value) records as one record batch per partition (or as few as the producer's
    batch size allows; a larger record goes alone), and returns once the broker has acknowledged every one.

    Faust's producer sends per key, a future and a callback each: a quarter of the worker's busy time once records
    came in lists (issue 19). A record's offset is its batch's base offset plus its place in the batch."""
    by_partition: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    for topic, partition, key, value in records:
        by_partition.setdefault((topic, partition), []).append((key, value))
    producer = raw_producer(app)
    sent = []  # (topic, partition, the records in one batch, its future)
    for (topic, partition), pending in by_partition.items():
        while pending:
            batch, count = producer.create_batch(), 0
            while count < len(pending) and batch.append(key=pending[count][0], value=pending[count][1],
                                                        timestamp=None) is not None:
                count += 1
            batch.close()
            sent.append((topic, partition, pending[:count], await producer.send_batch(batch, topic,
                                                                                     partition=partition)))
            pending = pending[count:]
    acknowledged = await asyncio.gather(*(future for *_, future in sent))
    return [(topic, partition, batch, meta) for (topic, partition, batch, _), meta in zip(sent, acknowledged)]


async def write_table(app: faust.App, table: faust.Table, writes: Iterable[tuple[bytes, bytes, int]]) -> None:
    """Writes (key, value, partition) records to the table: changelog first, local store after the acks."""
    topic = table.changelog_topic.get_topic_name()
    sent = await send_batched(app, ((topic, partition, key, value) for key, value, partition in writes))
    if sent:
        table.data.apply_changelog_batch(
            [Applied(TP(topic, partition), partition, meta.offset + n, key, value)
             for _, partition, records, meta in sent for n, (key, value) in enumerate(records)],
            to_key=_same, to_value=_same)


class StoreReader:
    """Reads a table's RocksDB stores directly, raw bytes as `write_table` and Faust's recovery wrote them.

    Faust's `Store.get` looks in the current event's partition, but the agent's batches have no current event, so
    it searched every partition's store for each key (key_may_exist, then get), and its items() ran each record
    through the serializer layers: at 1M accounts those were a tenth of a clock tick and half of the first one's
    index rebuild (bench/results/, the tick profiles). An account lives in the store of its messages' partition."""

    def __init__(self, table: faust.Table) -> None:
        self._table = table
        self._partitions: dict[int, _PartitionStore] = {}

    def at(self, partition: int) -> "_PartitionStore":
        """The store of one partition (the one a message came from), read by key."""
        found = self._partitions.get(partition)
        if found is None:
            found = self._partitions[partition] = _PartitionStore(self._table, partition)
        return found

    def handles(self) -> list[object]:
        """The RocksDB handles of every store open now (one per partition, standby copies included)."""
        return open_dbs(self._table.data)

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every (key, value) of the partitions this worker owns (active ones; standby copies are not its own)."""
        for key, value in active_items(self._table.data):
            yield key.decode(), value


@dataclass(slots=True)
class _PartitionStore:
    table: faust.Table
    partition: int

    def get(self, key: str) -> bytes | None:
        return partition_db(self.table.data, self.partition).get(key.encode())
