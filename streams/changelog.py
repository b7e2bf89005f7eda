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
from typing import Iterable, Iterator

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
        return list(self._table.data._dbs.values())

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every (key, value) of the partitions this worker owns (active ones; standby copies are not its own)."""
        store = self._table.data
        for db in store._dbs_for_actives():
            for key, value in store._visible_items(db):
                yield key.decode(), value


@dataclass(slots=True)
class _PartitionStore:
    table: faust.Table
    partition: int

    def get(self, key: str) -> bytes | None:
        # looked up each time: Faust drops a revoked partition's handle and opens it again when it comes back
        return self.table.data._db_for_partition(self.partition).get(key.encode())
