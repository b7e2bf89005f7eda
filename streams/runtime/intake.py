"""The worker's edge with Faust's consumer: record lists per partition in, offsets acked and committed after.

Faust hands a stream one message at a time, and its fetch loop (`Consumer._drain_messages`) awaits
`wait_first(callback(message), suspend_flow.wait())` for every record: four tasks per message, most of an empty
agent's time (issue 19). Here the consumer's fetch loop takes what a fetch returned for the input topics as
record lists per partition and hands them, once, to one handler task (the app's, which runs the Processor and
waits for the acks of everything the batch sent). Only after it returns are the batch's offsets entered into the
bookkeeping a Stream's ack uses, and committed at once. Records of the tables' changelogs (recovery, standbys)
go to Faust's Recovery as one list per fetch: what its loop over the changelog queue does per record (offsets,
write batches of the same sizes, the recovery's end, standbys ready), once per fetch, not four tasks and a queue
per record (a restore from an empty state dir at 1M accounts was bound by those). Faust's own path stays where
that loop would differ. Group membership, assignment, tables, recovery, timers and the web server are Faust's.

What is not handled: records fetched under an older generation, while the flow is stopped (a rebalance) or for a
partition paused (under recovery) or revoked; each rebalance seeks its partitions back to their committed
offsets, so they come again. A revocation waits for the batch in flight to finish and commit before Faust drops
its offset bookkeeping (faust-streaming #502 drops acked but uncommitted offsets there). Offsets a fetch skips
(compaction, transaction markers) are entered as gaps, as Faust's own loop does, so they do not hold the commit.
An input partition nothing was committed on yet is sought back to its start as well (aiokafka seeks only those with
a committed offset): else what a fetch returned during a takeover was lost, and a dead worker's partitions never
saw the ticks published before the rebalance (issue 19).

It is the one module that stands on private Faust methods (streams.runtime.changelog reaches the stores and
the producer through the accessors at its end): PINNED and FAUST_SOURCES say which versions and which source it was proven
on, and tests/streams/runtime/test_intake.py fails when another is installed.
"""
from __future__ import annotations

import asyncio
import hashlib
import heapq
import inspect
from dataclasses import dataclass
from time import monotonic
from importlib import metadata
from typing import Any, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP
from faust.utils.tracing import finish_span

from streams.runtime.processor import Source

PINNED = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}

# sha256 (first 16 hex digits) of inspect.getsource of each method the intake calls, replaces or relies on the
# behaviour of; a change in any of them needs the intake read again against it.
FAUST_SOURCES = {
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer:Consumer._wait_next_records": "6218e1969a636b3f",
    "faust.transport.consumer:Consumer.getmany": "4b168d84882a70d6",
    "faust.transport.consumer:Consumer.on_partitions_revoked": "d04b7ae72c6fc206",
    "faust.transport.consumer:Consumer.perform_seek": "0e8c130ff4b0afd8",
    "faust.transport.consumer:Consumer.seek": "b86a9fe05f956b30",
    "faust.transport.consumer:ThreadDelegateConsumer.seek_to_committed": "f1d483b861b0328b",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.seek_to_committed": "f6cd85c8b70a4ccf",
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": "0870ec53dea75083",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer": "c2701bfc3e6f6cad",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.start": "2f1ba70443327538",
    "faust.transport.consumer:Consumer._add_gap": "4df2573ded7c1c2c",
    "faust.transport.consumer:Consumer._new_offset": "1d2c7ea89a7ad4f1",
    "faust.transport.consumer:Consumer.ack": "5fcf41cf45153475",
    "faust.transport.consumer:Consumer.commit": "a354437baaa08bf8",
    "faust.transport.consumer:Consumer._commit_offsets": "1a69799041188441",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._fetch_records": "39a2c6c79fc1455a",
    "faust.app.base:App._on_partitions_revoked": "d5c895bbe57dc73a",
    "faust.stores.rocksdb:Store.apply_changelog_batch": "ea3344d369fc4ab5",
    # the store accessors at the end, for streams.runtime.changelog (and the stores' _dbs, one handle per partition)
    "faust.stores.rocksdb:Store._db_for_partition": "cb7e67d5f9efc4bc",
    "faust.stores.rocksdb:Store._dbs_for_actives": "28ffca271cde5b06",
    "faust.stores.rocksdb:Store._visible_items": "545dc16a2b25e4a4",
    "aiokafka.producer.producer:AIOKafkaProducer.send_batch": "bf42b0f0c5c0646d",
    "faust.transport.drivers.aiokafka:Producer._ensure_producer": "5592a4bbdf251325",
    # BatchConsumer._into_recovery does per fetch what this loop does per changelog record, with what it calls;
    # the queue is the changelog records' only way to it, and the recovery waits for the end it signals
    "faust.tables.recovery:Recovery._slurp_changelogs.fun": "7825c7e50f766d5a",
    "faust.tables.recovery:Recovery._restart_recovery.fun": "6bd8a8558a2dffe4",
    "faust.tables.manager:TableManager._update_channels": "88e3941facc934d6",
    "faust.tables.manager:TableManager.on_standbys_ready": "46be52cea69684f5",
    "faust.tables.recovery:Recovery.flush_buffers": "6fa9c17f1071018c",
    "faust.tables.recovery:Recovery.need_recovery": "fd1dc345b5d5e121",
    "faust.tables.recovery:Recovery.standby_remaining_total": "15bd44e3a39bb01f",
    "faust.tables.recovery:Recovery._set_recovery_ended": "84badf3f2cfe0d02",
    "faust.tables.base:Collection.apply_changelog_batch": "b980a78d3ae9b1e8",
    "faust.tables.base:Collection.on_changelog_event": "5a4fa48fd7c3fd10",
}

Records = Mapping[TP, Sequence[Any]]  # aiokafka ConsumerRecords, in offset order, per input partition
Handler = Callable[[Records], Awaitable[None]]


def source_digest(name: str) -> str:
    module_name, _, qualified = name.partition(":")
    target: Any = __import__(module_name, fromlist=["_"])
    for part in qualified.split("."):
        target = getattr(target, part)
    return hashlib.sha256(inspect.getsource(target).encode()).hexdigest()[:16]


def mismatches() -> list[str]:
    """What differs from what the intake was proven on: versions and method sources, one line each."""
    found = [f"{name} {metadata.version(name)} is installed, the intake was proven on {version}"
             for name, version in PINNED.items() if metadata.version(name) != version]
    found += [f"{name} changed (source sha256 {source_digest(name)}, proven on {digest})"
              for name, digest in FAUST_SOURCES.items() if source_digest(name) != digest]
    return found


def in_order(records: Records, topics: Sequence[str]) -> Iterator[Source]:
    """A batch's records in the order the processor applies them.

    Partition by partition (by number; the inputs are co-partitioned, so a partition's accounts and its clock are
    all there, and partitions share nothing); within one, the input topics' records merged by their timestamp
    (ms), on equal timestamps in the order of `topics` (the clock first: the simulator applies a tick at or before
    an event's time before it). Each topic partition's own records keep their offset order whatever their
    timestamps. The publisher (`dunning publish`) settles the group between records whose order across topics
    matters, so the simulator's order holds either way; this makes the rest reproducible."""
    rank = {topic: n for n, topic in enumerate(topics)}
    by_partition: dict[int, list[tuple[int, str, Sequence[Any]]]] = {}
    for tp, batch in records.items():
        by_partition.setdefault(tp.partition, []).append((rank[tp.topic], tp.topic, batch))
    for partition in sorted(by_partition):
        lists = [batch for _, _, batch in sorted(by_partition[partition])]
        merged = lists[0] if len(lists) == 1 else heapq.merge(*lists, key=_timestamp)  # stable: ties by rank
        for record in merged:
            yield Source(record.topic, record.partition, record.offset, record.key, record.value, record.timestamp)


def _timestamp(record: Any) -> int:
    return record.timestamp if record.timestamp is not None else -1


# How long the broker holds a fetch that finds nothing new (Faust hard-codes 1.5 s). A request for offsets goes to the
# broker on the fetch's connection and waits behind it: a takeover's recovery asks for offsets twice, and each
# waited out the idle fetch (3 of the 6.8 s from a rebalance to the first notice at 10k accounts, with standbys).
FETCH_MAX_WAIT_MS = 100


class _ConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts (its Fetcher)
        return consumer


class BatchConsumer(Consumer):
    """Faust's aiokafka consumer whose fetch loop hands the input topics' records to `handler` in batches."""

    handler: Handler
    failed: Callable[[Exception], None]
    inputs: frozenset[str] = frozenset()
    _in_flight: asyncio.Future | None = None

    _held = False  # no new batch starts: from a revocation to the next assignment, and once stopping

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # per changelog partition, the last offset put into Faust's changelog queue: until Recovery has seen it,
        # that partition's records keep taking the queue (Recovery may hold it taken out but not yet applied)
        self._queued: dict[TP, int] = {}

    async def settle(self, stopping: bool = False) -> None:
        """Waits for the batch in flight, if any, to be handled and committed; when `stopping`, none starts after."""
        self._held = self._held or stopping
        task = self._in_flight
        if task is not None and not task.done():
            await asyncio.shield(task)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self._held = True  # else the fetch loop, woken by the same batch's end, could start the next one
        await self.settle()
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._held = self.app.should_stop
        await super().on_partitions_assigned(assigned, generation_id)

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seeks the assigned partitions to their committed offsets, and the input partitions without one (nothing
        committed yet, or 0) to their start.

        Faust drops what a fetch returns while the flow is stopped (a rebalance and its recovery) and counts on this
        seek, at the end of each recovery, to fetch it again; aiokafka seeks only partitions whose committed offset
        is above 0, so one taken over before anything on it was committed lost those records for good."""
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():
            if not offset and tp.topic in self.inputs:
                await self.seek(tp, 0)  # at once; a start past 0 (retention) is found by the reset to earliest
        return committed

    async def _drain_messages(self, fetcher: Any) -> None:  # noqa: C901 - Faust's loop, with batches
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                if not self.flow_active:
                    await self.wait(self.can_resume_flow)
                if not self._get_active_partitions():
                    # a recovery resumes the flow a moment before the partitions; _wait_next_records would sleep 1 s
                    await self.sleep(0.1)
                    continue
                records, active = await self._wait_next_records(timeout=1.0)
                generation = self.app.consumer_generation_id
                await self.sleep(0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:  # as Faust: what a fetch returned while stopped is fetched again
                    if records:
                        await self.perform_seek()
                    continue
                batch: dict[TP, Sequence[Any]] = {}
                for tp, fetched in records.items():
                    if not fetched or not (active is None or tp in active or tp in self._buffered_partitions):
                        continue
                    if tp.topic in self.inputs:
                        batch[tp] = fetched
                        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    elif not (self._into_recovery(tp, fetched, generation)
                              or await self._one_by_one(tp, fetched, generation)):
                        break
                if batch and self._current(generation):
                    self._in_flight = asyncio.ensure_future(self._handle(batch))
                    await asyncio.shield(self._in_flight)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:  # noqa: BLE001 - the fetch loop itself failed
            self.failed(exc)
            raise

    def _unchanged_since(self, generation: int) -> bool:
        """Whether the flow still runs in `generation`: what was fetched under it may be applied (changelogs)."""
        return self.flow_active and self.app.consumer_generation_id == generation

    def _current(self, generation: int) -> bool:
        """Whether input records fetched under `generation` may still be handled (no revocation holds them)."""
        return self._unchanged_since(generation) and not self._held

    async def _one_by_one(self, tp: TP, fetched: Sequence[Any], generation: int) -> bool:
        """Faust's own path for a changelog's records (recovery, standbys): the callback per message."""
        for record in fetched:
            if not self._unchanged_since(generation):
                return False
            offset, read = record.offset, self._read_offset[tp]
            if read is not None and offset < read:
                continue
            await self.wait_first(self.callback(self._to_message(tp, record)), self.suspend_flow.wait())
            self._read_offset[tp] = self._queued[tp] = offset
        return True

    def _into_recovery(self, tp: TP, fetched: Sequence[Any], generation: int) -> bool:
        """A changelog's records handed to Faust's Recovery as one list: what its `_slurp_changelogs` does per
        record (offsets, buffers flushed at the same sizes, recovery end, standbys ready), once per fetch.
        False (nothing done) where that loop would differ: a partition it does not track, a table with a changelog
        callback, events still in its queue or one of this partition's not yet applied (they come first)."""
        recovery = self.app.tables.recovery
        table = recovery.tp_to_table.get(tp)
        active = tp in recovery.active_tps
        if (table is None or table._on_changelog_event is not None or not (active or tp in recovery.standby_tps)
                or not self.app.tables.changelog_queue.empty()
                or not self._unchanged_since(generation)):
            return False
        offsets = recovery.active_offsets if active else recovery.standby_offsets
        queued = self._queued.get(tp)
        if queued is not None:
            seen = offsets.get(tp, None)
            if seen is None or seen < queued:
                return False
            del self._queued[tp]
        now = monotonic()
        bufsize = recovery.buffer_sizes.get(tp)
        if bufsize is None:
            bufsize = recovery.buffer_sizes[tp] = table.recovery_buffer_size if active else table.standby_buffer_size
            if not active:
                recovery._standby_events_received_at[tp] = now
        if active:
            recovery._active_events_received_at[tp] = now
        buffer = recovery.buffers[table]
        seen, read, applied = offsets.get(tp, None), self._read_offset[tp], 0
        for record in fetched:
            offset = record.offset
            if read is not None and offset < read:
                continue
            if seen is None or offset > seen:
                seen = offsets[tp] = offset
                applied += 1
                buffer.append(Applied(tp, record.partition, offset, record.key, record.value))
                if len(buffer) >= bufsize:
                    table.apply_changelog_batch(buffer)
                    buffer.clear()
                    recovery._last_flush_at = now
            read = self._read_offset[tp] = offset
        if active and applied:  # the samples of its remaining-time estimate: the fetch's time spread over its records
            done, last, samples = monotonic(), recovery._last_active_event_processed_at, recovery._processing_times
            if last is not None:
                samples.extend([(done - last) / applied] * min(applied, recovery.num_samples_required_for_estimate))
                while len(samples) > recovery.num_samples_required_for_estimate:
                    samples.popleft()
            recovery._last_active_event_processed_at = done
        if recovery.in_recovery and not recovery.need_recovery():
            recovery.flush_buffers()
            recovery._set_recovery_ended()
            if recovery._actives_span is not None:
                recovery._actives_span.set_tag("Actives-Ready", True)
            recovery.signal_recovery_end.set()
        if not (recovery._standbys_span is None and recovery.tables.standbys_ready) \
                and not recovery.standby_remaining_total():
            if recovery._standbys_span:
                finish_span(recovery._standbys_span)
                recovery._standbys_span = None
            recovery.tables.on_standbys_ready()
        return True

    async def _handle(self, batch: Records) -> None:
        active = self._get_active_partitions()
        fresh: dict[TP, Sequence[Any]] = {}
        for tp, fetched in batch.items():
            if tp not in active and tp not in self._buffered_partitions:
                continue  # paused since the fetch (a recovery began): fetched again after it
            read = self._read_offset[tp]
            fresh[tp] = fetched if read is None or fetched[0].offset >= read else [
                record for record in fetched if record.offset >= read]  # seen already (a seek back)
        fresh = {tp: fetched for tp, fetched in fresh.items() if fetched}
        if not fresh:
            return
        await self.handler(fresh)
        for tp, fetched in fresh.items():
            await self._enter_handled(tp, [record.offset for record in fetched])
        await self.commit(set(fresh))

    async def _enter_handled(self, tp: TP, offsets: list[int]) -> None:
        """The handled offsets, and the gaps between them (skipped by the fetch), as a Stream's acks enter them."""
        read = self._read_offset[tp]
        previous = read if read is not None else offsets[0]
        for offset in offsets:
            if offset - previous > 1:
                await self._add_gap(tp, previous + 1, offset - 1)
            previous = offset
        committed = self._committed_offset[tp]
        index, acked = self._acked_index[tp], self._acked[tp]
        new = [offset for offset in offsets if (committed is None or offset >= committed) and offset not in index]
        index.update(new)
        acked.extend(new)
        self._read_offset[tp] = offsets[-1]


def install(app: Any, inputs: Iterable[str], handler: Handler, failed: Callable[[Exception], None]) -> None:
    """Makes the app's consumer a BatchConsumer feeding `handler` (`failed` is told when its fetch loop fails),
    and subscribes it to the input topics."""
    consumer_class = type("DunningConsumer", (BatchConsumer,), {
        "handler": staticmethod(handler), "failed": staticmethod(failed), "inputs": frozenset(inputs)})
    app.transport.Consumer = consumer_class
    app.topics.add(app.topic(*inputs, key_serializer="raw", value_serializer="raw", acks=True))


@dataclass(slots=True)
class Applied:
    """A changelog record (one the broker acknowledged, or one fetched for the recovery), shaped as the store reads
    a changelog event (event.message.<field>)."""

    tp: TP
    partition: int
    offset: int
    key: bytes
    value: bytes

    @property
    def message(self) -> "Applied":
        return self


# The stores and the producer as streams.runtime.changelog writes and reads them: their private parts stay here.

def raw_producer(app: Any) -> Any:
    """aiokafka's producer under Faust's (its record batches: one per partition, not a send per key)."""
    return app.producer._ensure_producer()


def partition_db(store: Any, partition: int) -> Any:
    """The RocksDB handle of one partition's store (Faust opens it again after a revocation: look it up each time)."""
    return store._db_for_partition(partition)


def open_dbs(store: Any) -> list[Any]:
    """The RocksDB handles open now, one per partition, standby copies included."""
    return list(store._dbs.values())


def active_items(store: Any) -> Iterator[tuple[bytes, bytes]]:
    """Every raw (key, value) of the partitions the worker owns (active ones, not its standby copies)."""
    for db in store._dbs_for_actives():
        yield from store._visible_items(db)
