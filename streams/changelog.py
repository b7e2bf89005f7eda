"""A batch's table writes: one changelog record per key, sent together, then applied to the local store at once.

A Faust table write (`table[key] = value`) sends its changelog record through a buffer task, one future and one
callback per key, and the callback writes the partition's persisted offset into RocksDB once per record. For a
batch that touches thousands of accounts that was most of the worker's time. Here the records go out in one
pass, and once the broker has acknowledged them they are applied with `Store.apply_changelog_batch`, the call
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
    """Writes (key, value, partition) records to the table: changelog first, local store after the acks."""
    topic = table.changelog_topic.get_topic_name()
    sent = [(key, value, await app.producer.send(topic, key, value, partition, None, None))
            for key, value, partition in writes]
    if not sent:
        return
    acknowledged = await asyncio.gather(*(future for _, _, future in sent))
    table.data.apply_changelog_batch(
        [_Applied(TP(topic, meta.partition), meta.partition, meta.offset, key, value)
         for (key, value, _), meta in zip(sent, acknowledged)],
        to_key=_same, to_value=_same)
