"""The worker's hot path without Kafka: same notices as the simulator, dead letters, one write per account."""
from __future__ import annotations

import base64
import hashlib
import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation, with_ticks
from schemas.events import parse_event
from streams.runtime.processor import Processor, Rejected, Source, account_header, dead_letter, partition_for
from streams.runtime.settings import TopicNames

REPO = Path(__file__).resolve().parents[3]
TOPICS = TopicNames()
PARTITIONS = 4


class Tables:
    """Dict-backed stand-ins for the two Faust tables; writes arrive through finish_batch, as in the agent."""

    def __init__(self):
        self.accounts: dict[str, bytes] = {}
        self.platforms: dict[str, bytes] = {}
        self.writes = 0

    def scan(self):
        return iter(list(self.accounts.items()))

    def apply(self, result) -> None:
        for key, (value, _) in result.accounts.items():
            self.accounts[key] = value
            self.writes += 1
        for key, (value, _) in result.platforms.items():
            self.platforms[key] = value


def engine() -> Engine:
    return Engine(load_ruleset(REPO / "rules" / "default.yaml"))


def messages(events, every: timedelta, until):
    """The events and ticks as the clock and producers would put them on partitions, in simulator order."""
    offsets: dict[tuple[str, int], int] = {}

    def source(topic: str, partition: int, key: bytes, value: bytes) -> Source:
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        return Source(topic, partition, offset, key, value)

    for event in with_ticks(events, every, until):
        value = event.model_dump_json().encode()
        if event.account_id == "*":
            for partition in range(PARTITIONS):
                yield source(TOPICS.clock, partition, b"*", value)
        else:
            yield source(TOPICS.for_event_type(event.type), partition_for(event.account_id, PARTITIONS),
                         event.account_id.encode(), value)


def run(processor: Processor, tables: Tables, sources, batch: int):
    notices, letters, pending = [], [], 0
    for source in sources:
        processor.process(source, tables.accounts, tables.platforms, tables.scan)
        pending += 1
        if pending == batch:
            result = processor.finish_batch()
            tables.apply(result)
            notices += result.notices
            letters += result.dead_letters
            pending = 0
    result = processor.finish_batch()
    tables.apply(result)
    return notices + result.notices, letters + result.dead_letters


def scenario_events():
    events = []
    for folder in ("01-stages-standard", "02-high-risk-limits", "09-promise-broken", "14-outage-grace",
                   "16-limits", "18-payment-failures"):
        lines = (REPO / "tests" / "scenarios" / folder / "events.jsonl").read_bytes().splitlines()
        events += [parse_event(line) for line in lines if line.strip()]
    return sorted(events, key=lambda e: e.occurred_at)


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_the_worker_path_gives_the_simulators_notices_whatever_the_batch_size(batch):
    events = scenario_events()
    until = events[-1].occurred_at + timedelta(days=100)
    simulation = Simulation(engine())
    simulation.run(events, timedelta(hours=1), until)
    expected = sorted(n.model_dump_json() for n in simulation.notices)
    notices, letters = run(Processor(engine(), TOPICS, PARTITIONS), Tables(),
                           messages(events, timedelta(hours=1), until), batch)
    assert letters == []
    assert sorted(n.model_dump_json() for n in notices) == expected
    assert len(expected) > 30


def test_a_new_worker_continues_from_the_tables_alone():
    events = scenario_events()
    until = events[-1].occurred_at + timedelta(days=30)
    sources = list(messages(events, timedelta(hours=1), until))
    tables = Tables()
    half = len(sources) // 2
    first, _ = run(Processor(engine(), TOPICS, PARTITIONS), tables, sources[:half], batch=len(sources))
    # A new worker (empty wakeup index, no cache) continues from the tables alone.
    second, _ = run(Processor(engine(), TOPICS, PARTITIONS), tables, sources[half:], batch=50)
    assert second  # the second worker had notices of its own to send
    simulation = Simulation(engine())
    simulation.run(events, timedelta(hours=1), until)
    assert sorted(n.notice_id for n in first + second) == sorted(n.notice_id for n in simulation.notices)


@pytest.mark.parametrize("cached_accounts, cached_stored_bytes", [(1, math.inf), (5, math.inf),
                                                                 (100_000, math.inf), (100_000, 3000)])
def test_states_kept_decoded_across_batches_change_no_notice_and_no_stored_byte(cached_accounts, cached_stored_bytes):
    events = scenario_events()
    until = events[-1].occurred_at + timedelta(days=100)
    sources = list(messages(events, timedelta(hours=1), until))
    plain, cached = Tables(), Tables()
    expected = run(Processor(engine(), TOPICS, PARTITIONS), plain, sources, batch=7)
    found = run(Processor(engine(), TOPICS, PARTITIONS, cached_accounts=cached_accounts,
                          cached_stored_bytes=cached_stored_bytes), cached, sources, batch=7)
    assert [n.model_dump_json() for n in found[0]] == [n.model_dump_json() for n in expected[0]]
    assert cached.accounts == plain.accounts and cached.writes == plain.writes


class CountedReads(dict):
    reads = 0

    def get(self, key, default=None):
        self.reads += 1
        return super().get(key, default)


def five_accounts_twice() -> list[Source]:
    return [Source(TOPICS.invoices, partition_for(f"A{n}", PARTITIONS), 0, f"A{n}".encode(),
                   json.dumps({**GOOD, "event_id": f"{time}{n}", "account_id": f"A{n}"}).encode())
            for time in ("e", "again-e") for n in range(5)]


def store_reads_of_the_second_batch(processor: Processor, sources: list[Source]) -> int:
    tables = Tables()
    tables.accounts = CountedReads()
    run(processor, tables, sources[:5], batch=5)
    tables.accounts.reads = 0
    run(processor, tables, sources[5:], batch=5)
    return tables.accounts.reads


@pytest.mark.parametrize("cached_accounts, read_again", [(0, 5), (3, 2), (5, 0)])
def test_a_batch_reads_from_the_store_only_the_accounts_the_bound_did_not_keep(cached_accounts, read_again):
    processor = Processor(engine(), TOPICS, PARTITIONS, cached_accounts=cached_accounts)
    assert store_reads_of_the_second_batch(processor, five_accounts_twice()) == read_again


@pytest.mark.parametrize("kept", [0, 2, 5])
def test_the_states_kept_stand_for_no_more_stored_bytes_than_their_bound(kept):
    """Large states fill the bound sooner: it keeps the latest accounts whose stored values fit in it."""
    sources = five_accounts_twice()
    stored = Tables()
    run(Processor(engine(), TOPICS, PARTITIONS), stored, sources[:5], batch=5)
    sizes = [len(stored.accounts[f"A{n}"]) for n in range(5)]  # A4 stepped last, so kept first
    budget = sum(sizes[5 - kept:]) + (sizes[4 - kept] - 1 if kept < 5 else 0)  # one byte short of one more
    processor = Processor(engine(), TOPICS, PARTITIONS, cached_accounts=100, cached_stored_bytes=budget)
    assert store_reads_of_the_second_batch(processor, sources) == 5 - kept


def test_after_a_rebalance_a_worker_reads_what_another_worker_stored_meanwhile():
    events = scenario_events()
    until = events[-1].occurred_at + timedelta(days=30)
    sources = list(messages(events, timedelta(hours=1), until))
    tables, third = Tables(), len(sources) // 3
    first = Processor(engine(), TOPICS, PARTITIONS, cached_accounts=100_000)
    before, _ = run(first, tables, sources[:third], batch=50)
    # Another worker held the partitions for a while (a rebalance and back): the first one's copies are stale.
    meanwhile, _ = run(Processor(engine(), TOPICS, PARTITIONS), tables, sources[third:2 * third], batch=50)
    first.forget_partitions()
    after, _ = run(first, tables, sources[2 * third:], batch=50)
    assert meanwhile and after
    simulation = Simulation(engine())
    simulation.run(events, timedelta(hours=1), until)
    assert sorted(n.notice_id for n in before + meanwhile + after) == sorted(n.notice_id for n in simulation.notices)


def test_one_batch_writes_each_account_once():
    events = scenario_events()[:12]
    sources = list(messages(events, timedelta(hours=1), events[-1].occurred_at + timedelta(days=3)))
    tables = Tables()
    run(Processor(engine(), TOPICS, PARTITIONS), tables, sources, batch=len(sources) + 1)
    assert tables.writes == len({e.account_id for e in events})
    for key, value in tables.accounts.items():
        assert account_header(value)[0] == partition_for(key, PARTITIONS)


def dead_letter_for(source: Source):
    processor = Processor(engine(), TOPICS, PARTITIONS)
    tables = Tables()
    processor.process(source, tables.accounts, tables.platforms, tables.scan)
    result = processor.finish_batch()
    assert result.notices == []
    [letter] = result.dead_letters
    [out] = result.outgoing
    assert out.topic == TOPICS.dead_letter and out.partition == source.partition
    assert json.loads(out.value).get("value_base64") == letter.value_base64
    assert letter.value_base64 is None if source.value is None else base64.b64decode(letter.value_base64) == source.value
    assert (letter.origin.topic, letter.origin.partition, letter.origin.offset) == (
        source.topic, source.partition, source.offset)
    return letter


GOOD = {"event_id": "e1", "type": "invoice.issued", "account_id": "A1", "occurred_at": "2026-10-01T10:00:00+08:00",
        "invoice_id": "I1", "amount": "10.00", "currency": "CNY", "due_date": "2026-10-10"}
HOME = partition_for("A1", PARTITIONS)


@pytest.mark.parametrize("topic, partition, key, value, reason, says", [
    (TOPICS.invoices, HOME, b"A1", b'{"event_id": "e1", "type": "invoice.iss', "malformed_json", "JSON"),
    (TOPICS.invoices, HOME, b"A1", b"[1, 2, 3]", "invalid_event", "event"),
    (TOPICS.invoices, HOME, b"A1", json.dumps({**GOOD, "type": "invoice.exploded"}).encode(), "invalid_event",
     "type"),
    (TOPICS.invoices, HOME, b"A1", json.dumps({**GOOD, "amount": 10.5}).encode(), "invalid_event", "amount"),
    (TOPICS.payments, HOME, b"A1", json.dumps(GOOD).encode(), "wrong_topic", TOPICS.invoices),
    (TOPICS.invoices, HOME, b"A2", json.dumps(GOOD).encode(), "key_mismatch", "A2"),
    (TOPICS.invoices, (HOME + 1) % PARTITIONS, b"A1", json.dumps(GOOD).encode(), "misrouted", "murmur2"),
    (TOPICS.invoices, HOME, b"A1", None, "empty", "NULL"),
    (TOPICS.invoices, HOME, b"A1", b"", "empty", "0 bytes"),
    (TOPICS.invoices, HOME, b"A1", b"\xff\xfe not text", "malformed_json", "JSON"),
])
def test_bad_messages_become_dead_letters_with_their_bytes_origin_and_reason(topic, partition, key, value, reason,
                                                                             says):
    letter = dead_letter_for(Source(topic, partition, 41, key, value, 1760000000000))
    assert letter.reason == reason
    assert says in letter.message + " ".join(letter.errors)


def test_the_hot_path_goes_on_after_a_dead_letter():
    processor, tables = Processor(engine(), TOPICS, PARTITIONS), Tables()
    processor.process(Source(TOPICS.invoices, HOME, 0, b"A1", b"{oops"), tables.accounts, tables.platforms,
                      tables.scan)
    processor.process(Source(TOPICS.invoices, HOME, 1, b"A1", json.dumps(GOOD).encode()), tables.accounts,
                      tables.platforms, tables.scan)
    result = processor.finish_batch()
    assert len(result.dead_letters) == 1 and "A1" in result.accounts


def test_a_null_value_and_an_empty_one_are_told_apart():
    null, empty = (dead_letter_for(Source(TOPICS.invoices, HOME, 41, b"A1", value)) for value in (None, b""))
    assert (null.value_base64, null.value_text, null.value_length, null.value_sha256) == (None, None, None, None)
    assert (empty.value_base64, empty.value_text, empty.value_length) == ("", "", 0)


LIMIT = 250_000
LARGE = [  # key, value: each would make a dead letter over LIMIT if kept whole
    (b"A1", json.dumps({**GOOD, "amount": "9" * 500_000}).encode()),  # its error line repeats the value
    (b"A1", bytes(range(256)) * 2_000),  # not text
    (b"A1", b"\x01\xc3\xa9" * 100_000),  # text whose every byte JSON escapes, cut inside a character
    (b"A1", json.dumps([{"bad": i} for i in range(50_000)]).encode()),
    (b"K" * 300_000, b"{}"),
]


@pytest.mark.parametrize("key, value", LARGE)
def test_a_dead_letter_always_fits_keeping_the_start_length_hash_and_origin(key, value):
    source = Source(TOPICS.invoices, HOME, 7, key, value, 1760000000000)
    processor = Processor(engine(), TOPICS, PARTITIONS, dead_letter_limit=LIMIT)
    processor.process(source, {}, {}, iter)
    [out] = processor.finish_batch().outgoing
    assert len(out.key) + len(out.value) <= LIMIT
    letter = json.loads(out.value)
    assert letter["truncated"] is True
    assert (letter["value_length"], letter["value_sha256"]) == (len(value), hashlib.sha256(value).hexdigest())
    assert letter["origin"] == {"topic": TOPICS.invoices, "partition": HOME, "offset": 7, "timestamp_ms": 1760000000000}
    start = base64.b64decode(letter["value_base64"])
    assert value.startswith(start) and len(start) == min(len(value), LIMIT // 20)
    assert key.startswith(base64.b64decode(letter["key_base64"])) and out.key == base64.b64decode(letter["key_base64"])
    if "value_text" in letter:
        assert start.decode(errors="ignore").startswith(letter["value_text"]) and len(letter["value_text"]) > 0


def test_a_dead_letter_under_the_bound_is_whole():
    value = b"x" * (LIMIT // 3)
    letter, key, encoded = dead_letter(Source(TOPICS.invoices, HOME, 0, b"A1", value),
                                       Rejected("malformed_json", "not JSON"), LIMIT)
    assert not letter.truncated and base64.b64decode(letter.value_base64) == value and key == b"A1"
    assert letter.value_text == value.decode() and len(encoded) < LIMIT


def test_an_experiment_and_a_switch_at_a_tick_give_the_simulators_notices_and_audit_across_a_restart():
    from rules.policy import PolicyEngine, Schedule, load_policy

    events = scenario_events()
    until = events[-1].occurred_at + timedelta(days=60)
    switch_at = datetime.fromisoformat("2026-10-12T10:30:00+08:00")  # notices before it and after

    def schedule() -> Schedule:
        seed = PolicyEngine(load_policy(REPO / "rules" / "default.yaml"))
        return Schedule(seed, [(switch_at, PolicyEngine(load_policy(REPO / "rules" / "examples" / "experiment.yaml")))])

    expected = schedule()
    simulation = Simulation(expected.seed, audit=[], schedule=expected)
    simulation.run(events, timedelta(hours=1), until)
    sources = list(messages(events, timedelta(hours=1), until))
    tables, notices, audit = Tables(), [], []
    for part in (sources[:len(sources) // 2], sources[len(sources) // 2:]):  # the second worker starts from tables
        processor = Processor(expected.seed, TOPICS, PARTITIONS)
        processor.schedule = schedule()
        for source in part:
            processor.process(source, tables.accounts, tables.platforms, tables.scan)
            result = processor.finish_batch()
            tables.apply(result)
            notices += result.notices
            audit += [o.value for o in result.outgoing if o.topic == TOPICS.audit]
    assert sorted(n.model_dump_json() for n in notices) == sorted(n.model_dump_json() for n in simulation.notices)
    assert sorted(audit) == sorted(record.to_json() for record in simulation.audit)
    variants = {(n.ruleset_version, n.variant) for n in notices}
    assert variants == {("2026.11-default", None), ("2026.11-default", "champion"),
                        ("2026.12-challenger", "challenger")}
