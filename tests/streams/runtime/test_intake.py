"""The batch intake (streams/runtime/intake.py): proven Faust, the order a batch is applied in, offsets past gaps."""
from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

from aiokafka.structs import ConsumerRecord
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from rules.simulator import Simulation
from streams.runtime import intake
from streams.runtime.intake import BatchConsumer, in_order
from streams.runtime.app import create_app
from streams.runtime.processor import Processor
from streams.runtime.settings import Settings
from tests.streams.runtime.test_processor import PARTITIONS, TOPICS, Tables, engine, messages, scenario_events

INPUTS = (TOPICS.clock, *(topic for topic in TOPICS.inputs if topic != TOPICS.clock))  # as streams/runtime/app.py


@dataclass(frozen=True)
class Record:  # the fields of an aiokafka ConsumerRecord the intake reads
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None


def test_the_installed_faust_is_the_one_the_intake_was_proven_on():
    assert intake.mismatches() == [], (
        "streams/runtime/intake.py stands on private Faust methods; read it against the installed versions, then update "
        "PINNED and FAUST_SOURCES (and pyproject.toml)")


def test_a_changed_faust_method_is_named(monkeypatch):
    name = "faust.transport.consumer:Consumer._new_offset"
    monkeypatch.setitem(intake.FAUST_SOURCES, name, "0" * 16)
    assert [line.split(" ")[0] for line in intake.mismatches()] == [name]


def test_the_pins_in_pyproject_are_the_intakes():
    text = (intake.__file__.rsplit("/streams/", 1)[0] + "/pyproject.toml")
    pinned = open(text).read()
    for name, version in intake.PINNED.items():
        assert f'"{name}=={version}"' in pinned


def record(topic: str, partition: int, offset: int, timestamp: int) -> Record:
    return Record(topic, partition, offset, b"k", b"v", timestamp)


def test_a_batch_is_applied_partition_by_partition_merged_by_timestamp_the_clock_first_on_a_tie():
    invoices, payments, clock = TOPICS.invoices, TOPICS.payments, TOPICS.clock
    batch = {
        TP(payments, 1): [record(payments, 1, 7, 100)],
        TP(invoices, 1): [record(invoices, 1, 3, 50), record(invoices, 1, 4, 150)],
        TP(invoices, 0): [record(invoices, 0, 10, 20), record(invoices, 0, 11, 10)],  # a timestamp going back
        TP(clock, 0): [record(clock, 0, 5, 20), record(clock, 0, 6, 30)],
    }
    order = [(source.topic, source.partition, source.offset, source.timestamp_ms)
             for source in in_order(batch, INPUTS)]
    assert order == [
        (clock, 0, 5, 20), (invoices, 0, 10, 20),  # a tie: the clock first
        (invoices, 0, 11, 10), (clock, 0, 6, 30),  # after 10 although stamped earlier: a partition's order kept
        (invoices, 1, 3, 50), (payments, 1, 7, 100), (invoices, 1, 4, 150),
    ]


def fetches(sources, size: int):
    """The stream as a consumer fetches it: up to `size` records at a time, grouped per topic partition, each
    record stamped (ms) in the order it was published."""
    chunk: dict[TP, list[Record]] = {}
    for stamp, source in enumerate(sources):
        chunk.setdefault(TP(source.topic, source.partition), []).append(
            Record(source.topic, source.partition, source.offset, source.key, source.value, 1_000 + stamp))
        if stamp % size == size - 1:
            yield chunk
            chunk = {}
    if chunk:
        yield chunk


def test_batches_grouped_per_partition_give_the_simulators_notices():
    events = scenario_events()
    until = events[-1].occurred_at + timedelta(days=100)
    simulation = Simulation(engine())
    simulation.run(events, timedelta(hours=1), until)
    processor, tables, notices = Processor(engine(), TOPICS, PARTITIONS), Tables(), []
    for batch in fetches(messages(events, timedelta(hours=1), until), size=300):
        for source in in_order(batch, INPUTS):
            processor.process(source, tables.accounts, tables.platforms, tables.scan)
        result = processor.finish_batch()
        tables.apply(result)
        notices += result.notices
    assert sorted(n.model_dump_json() for n in notices) == sorted(n.model_dump_json() for n in simulation.notices)
    assert len(notices) > 30


def bookkeeping(committed: int | None = None, read: int | None = None) -> SimpleNamespace:
    """The part of Faust's consumer that a Stream's acks and the commit work on."""
    books = SimpleNamespace(_gap=defaultdict(IntervalTree), _acked=defaultdict(list), _acked_index=defaultdict(set),
                            _read_offset=defaultdict(lambda: None), _committed_offset=defaultdict(lambda: None))
    books._add_gap = lambda *args: Consumer._add_gap(books, *args)
    tp = TP("dunning.invoices", 0)
    books._committed_offset[tp], books._read_offset[tp] = committed, read
    return books


def test_offsets_a_fetch_skipped_do_not_hold_the_commit():
    tp = TP("dunning.invoices", 0)
    books = bookkeeping()
    asyncio.run(BatchConsumer._enter_handled(books, tp, [0, 1, 2, 5, 6, 9]))  # 3, 4, 7, 8: compacted, markers
    assert Consumer._new_offset(books, tp) == 10
    # after a rebalance Faust seeks back to the committed offset: the next batch starts past another gap
    books = bookkeeping(committed=10, read=10)
    asyncio.run(BatchConsumer._enter_handled(books, tp, [12, 13]))
    assert Consumer._new_offset(books, tp) == 14


def test_offsets_not_handled_hold_the_commit():
    tp = TP("dunning.invoices", 0)
    books = bookkeeping(committed=10, read=10)
    asyncio.run(BatchConsumer._enter_handled(books, tp, [10, 11]))
    assert Consumer._new_offset(books, tp) == 12
    assert Consumer._new_offset(books, tp) is None  # nothing handled since


def test_the_recoverys_seek_takes_input_partitions_nothing_was_committed_on_back_to_their_start():
    """Faust drops what a fetch returns while a rebalance has the flow stopped, and the seek to the committed
    offsets that ends the recovery is what fetches it again: an input partition without a committed offset (a
    takeover's first ticks) must be sought too, or those records are never handled (issue 19)."""
    clock, fresh, read, changelog = (TP(TOPICS.clock, 0), TP(TOPICS.invoices, 1), TP(TOPICS.invoices, 2),
                                     TP("app-dunning-accounts-changelog", 0))
    sought: dict[TP, int] = {}

    async def seek_to_committed():  # aiokafka's: seeks only the partitions committed above 0
        sought.update({read: 7})
        return {clock: None, fresh: 0, read: 7, changelog: None}

    consumer = BatchConsumer.__new__(BatchConsumer)
    consumer.inputs = frozenset(INPUTS)
    consumer._thread = SimpleNamespace(seek_to_committed=seek_to_committed, seek=sought.__setitem__)
    consumer._read_offset, consumer.log = defaultdict(lambda: None), SimpleNamespace(dev=lambda *args: None)
    committed = asyncio.run(consumer.seek_to_committed())
    assert committed[read] == 7
    assert sought == {clock: 0, fresh: 0, read: 7}  # the changelog's position is the recovery's own


def changelog(partition: int, count: int, seed: int) -> list[ConsumerRecord]:
    """A table changelog as a fetch returns it: keys written again and deleted, offsets skipped (compaction)."""
    rng, offset, records = random.Random(seed), -1, []
    for _ in range(count):
        offset += rng.choice((1, 1, 1, 2, 7))
        key = f"account-{rng.randrange(count // 3)}".encode()
        value = None if rng.random() < 0.05 else rng.randbytes(rng.randrange(1, 80))
        records.append(ConsumerRecord(CHANGELOG, partition, offset, 1_000 + offset, 0, key, value, None,
                                      len(key), len(value or b""), []))
    return records


CHANGELOG = "restore-test-dunning-accounts-changelog"
ACTIVE, STANDBY = TP(CHANGELOG, 0), TP(CHANGELOG, 1)


async def restore(state_dir, fetches: list[tuple[TP, list[ConsumerRecord]]], batched: bool):
    """A recovery of partition 0 (active) and a standby copy of partition 1 of the worker's accounts table, from
    `fetches`: through Faust's changelog queue and Recovery's loop, or handed to it per fetch (`batched`). Returns
    every key and value of both stores (the persisted offsets with them), and Recovery's bookkeeping."""
    app = create_app(Settings(app_id="restore-test", state_dir=state_dir, partitions=2), engine())
    app.consumer_generation_id = 1
    table, recovery = app.tables["dunning-accounts"], app.tables.recovery
    for tp, role in ((ACTIVE, "active"), (STANDBY, "standby")):
        recovery.tp_to_table[tp] = table
        getattr(recovery, f"{role}_tps").add(tp)
        getattr(recovery, f"{role}_offsets")[tp] = -1  # as Recovery._build_offsets for an empty store
        getattr(recovery, f"{role}_highwaters")[tp] = max(r.offset for t, fetched in fetches if t == tp
                                                          for r in fetched)
    recovery._set_recovery_started()
    app.flow_control.resume()  # as Recovery does before the changelogs are read
    queue, channel = app.tables.changelog_queue, table.changelog_topic.clone_using_queue(app.tables.changelog_queue)

    async def conductor(message):  # what Faust's Conductor does with a changelog message: decode it, queue it
        await queue.put(await channel.decode(message, propagate=True))

    async def first(awaitable, _suspended):
        await awaitable

    consumer = SimpleNamespace(app=app, flow_active=True, _read_offset=defaultdict(lambda: None), _queued={},
                               callback=conductor, wait_first=first, suspend_flow=SimpleNamespace(wait=lambda: None))
    consumer._to_message = lambda tp, record: BatchConsumer._to_message(consumer, tp, record)
    consumer._unchanged_since = lambda generation: BatchConsumer._unchanged_since(consumer, generation)
    slurp = asyncio.ensure_future(type(recovery)._slurp_changelogs(recovery))
    for tp, fetched in fetches:
        if batched:
            assert BatchConsumer._into_recovery(consumer, tp, fetched, 1)
        else:
            assert await BatchConsumer._one_by_one(consumer, tp, fetched, 1)
    while not queue.empty() or recovery.in_recovery:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    slurp.cancel()
    stores = {partition: list(table.data._db_for_partition(partition).items()) for partition in (0, 1)}
    buffered = [(event.message.tp, event.message.offset) for event in recovery.buffers[table]]
    return stores, (dict(recovery.active_offsets), dict(recovery.standby_offsets), buffered,
                    recovery.in_recovery, app.tables.standbys_ready)


def test_a_restore_handed_to_faust_per_fetch_ends_as_faust_restores_record_by_record(tmp_path):
    active, standby = changelog(0, 3_500, seed=1), changelog(1, 730, seed=2)
    fetches = [(ACTIVE, active[:900]), (STANDBY, standby[:300]), (ACTIVE, active[850:2_100]),  # some seen again
               (ACTIVE, active[2_100:]), (STANDBY, standby[300:])]  # the standby's end after the recovery's
    by_faust = asyncio.run(restore(tmp_path / "faust", fetches, batched=False))
    batched = asyncio.run(restore(tmp_path / "batched", fetches, batched=True))
    assert batched == by_faust
    stores, (active_offsets, standby_offsets, buffered, in_recovery, standbys_ready) = batched
    assert active_offsets[ACTIVE] == active[-1].offset and standby_offsets[STANDBY] == standby[-1].offset
    assert not in_recovery and standbys_ready
    assert len(stores[0]) > 900 and len(stores[1]) > 100
    assert len(buffered) == 30  # the standby's last records wait for a full write batch (standby_buffer_size 100)


def test_a_changelog_partition_whose_records_went_to_faust_s_queue_stays_on_it_until_recovery_has_them():
    recovery = SimpleNamespace(tp_to_table={ACTIVE: SimpleNamespace(_on_changelog_event=None)},
                               active_tps={ACTIVE}, standby_tps=set(), active_offsets={ACTIVE: 41})
    app = SimpleNamespace(tables=SimpleNamespace(recovery=recovery, changelog_queue=asyncio.Queue()),
                          consumer_generation_id=1)
    consumer = SimpleNamespace(app=app, flow_active=True, _queued={ACTIVE: 42})
    consumer._unchanged_since = lambda generation: BatchConsumer._unchanged_since(consumer, generation)
    assert not BatchConsumer._into_recovery(consumer, ACTIVE, changelog(0, 10, seed=3), 1)
