"""The batch intake (streams/runtime/intake.py): proven Faust, the order a batch is applied in, offsets past gaps."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from rules.simulator import Simulation
from streams.runtime import intake
from streams.runtime.intake import BatchConsumer, in_order
from streams.runtime.processor import Processor
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
