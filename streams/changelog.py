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
from typing import Iterable

import faust
from faust.types import TP


@dataclass(slots=True)
class _Applied:
    """An acknowledged changelog record, shaped as the store reads a changelog event (event.message.<field>)."""

    tp: TP
    partition: int
    offset: int
    key: bytes
    value: bytes

    @property
    def message(self) -> "_Applied":
        return self


def _same(value: bytes) -> bytes:
    return value


async def write_table(app: faust.App, table: faust.Table, writes: Iterable[tuple[bytes, bytes, int]]) -> None:
    """Writes (key, value, partition) records to the table: changelog first, local store after the acks.

    A partition's records go out as one record batch (or as few as the producer's batch size allows), not a send
    per key: Faust's send per key was a quarter of the worker's busy time with record lists (issue 19). A record's
    offset is its batch's base offset plus its place in it."""
    topic = table.changelog_topic.get_topic_name()
    by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value, partition in writes:
        by_partition.setdefault(partition, []).append((key, value))
    if not by_partition:
        return
    producer = app.producer._ensure_producer()  # aiokafka's, under Faust's producer
    sent = []  # (partition, its records in this batch, the batch's future)
    for partition, records in by_partition.items():
        while records:
            batch, count = producer.create_batch(), 0
            while count < len(records) and batch.append(key=records[count][0], value=records[count][1],
                                                        timestamp=None) is not None:
                count += 1
            batch.close()
            sent.append((partition, records[:count], await producer.send_batch(batch, topic, partition=partition)))
            records = records[count:]
    acknowledged = await asyncio.gather(*(future for _, _, future in sent))
    table.data.apply_changelog_batch(
        [_Applied(TP(topic, partition), partition, meta.offset + n, key, value)
         for (partition, records, _), meta in zip(sent, acknowledged) for n, (key, value) in enumerate(records)],
        to_key=_same, to_value=_same)
