"""A soak: generated billing with 5% bad messages of every kind through one worker (20,000 messages in make test,
1,000,000 under make reliability). Every message is applied or dead-lettered (audit-check), each bad one with the
reason its kind deserves, no notice twin differs, and the worker's resident memory stays flat.

The messages go out as fast as the producer can send them, not in the simulator's settled order, so the notices
are not compared with the simulator's here (the fault tests and test_end_to_end.py do that)."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from livekit import WORKLOAD_START, audit_check, eventually, get

from rules.simulator import with_ticks
from schemas.events import parse_event
from streams.generators.generate import generate, to_jsonl_bytes
from streams.runtime.processor import partition_for

pytestmark = pytest.mark.broker

DAYS = 210
EVENTS_PER_ACCOUNT_DAY = 0.16  # what the generator makes, on average
# A tick wakes nearly every account of this workload: weekly ticks keep the account steps near the event count
# (daily ones made them six times it, a 30-minute run)
TICK_EVERY = timedelta(days=7)
BAD_EVERY = 20  # one bad message in twenty: 5%
OVERSIZE_EVERY = 1_000  # of the bad ones, one is a 600 KB invalid event (its dead letter is truncated)


def bad_message(number: int, topics, partitions: int, good: bytes) -> tuple[str, str, int | None, bytes, bytes | None]:
    """The number-th bad message, shaped after a valid one: (kind, topic, partition, key, value); partition None
    means the key's (murmur2)."""
    event = json.loads(good)
    account = event["account_id"]
    key, topic = account.encode(), topics.for_event_type(event["type"])
    if number % OVERSIZE_EVERY == OVERSIZE_EVERY - 1:
        return "invalid_event", topic, None, key, json.dumps({**event, "type": "invoice.exploded",
                                                              "padding": "x" * 600_000}).encode()
    kinds = [
        ("malformed_json", good[: len(good) // 2]),  # cut short
        ("malformed_json", b"\xff\xfe not JSON, not even UTF-8"),
        ("invalid_event", json.dumps({**event, "type": "invoice.exploded"}).encode()),  # unknown type
        ("invalid_event", json.dumps([event["type"], account]).encode()),  # not an object
        ("invalid_event", json.dumps({**event, "occurred_at": "yesterday"}).encode()),  # wrong type of value
        ("invalid_event", json.dumps({k: v for k, v in event.items() if k != "event_id"}).encode()),  # missing
        ("invalid_event", json.dumps({**event, "account_id": ""}).encode()),  # empty id
        ("empty", None),  # NULL (a tombstone)
        ("empty", b""),
        ("wrong_topic", good),
        ("key_mismatch", good),
        ("misrouted", good),
    ]
    kind, value = kinds[number % len(kinds)]
    if kind == "wrong_topic":
        topic = next(t for t in (topics.invoices, topics.payments) if t != topic)
    elif kind == "key_mismatch":
        key = b"not-" + key
    elif kind == "misrouted":
        return kind, topic, (partition_for(account, partitions) + 1) % partitions, key, value
    return kind, topic, None, key, value


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def memory_breakdown(worker) -> dict[str, float]:
    """What the worker's /metrics says its memory holds: RocksDB's, by kind (MiB, both tables), and the blocks
    Python's allocator holds live."""
    status, body = get(f"http://127.0.0.1:{worker.web_port}/metrics")
    assert status == 200
    found: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("dunning_rocksdb_memory_bytes{"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            found[f"rocksdb_{kind}_mib"] = found.get(f"rocksdb_{kind}_mib", 0.0) + float(line.rsplit(" ", 1)[1]) / 2**20
        elif line.startswith("dunning_python_allocated_blocks "):
            found["python_blocks"] = float(line.rsplit(" ", 1)[1])
    return {key: round(value, 1) for key, value in found.items()}


async def publish(namespace, lines: list[bytes]) -> Counter:
    """The lines (and a bad message after every 19 good ones) as fast as the producer goes; returns the bad
    kinds sent. Ticks go to every clock partition."""
    from aiokafka import AIOKafkaProducer

    topics, partitions = namespace.topics, namespace.partitions
    producer = AIOKafkaProducer(**namespace.settings.kafka_client_options(), acks="all", linger_ms=20,
                                max_batch_size=512 * 1024, max_request_size=1_000_000, compression_type="lz4")
    await producer.start()
    sent: Counter = Counter()
    pending = []
    try:
        for number, line in enumerate(lines):
            event = json.loads(line)
            if event["account_id"] == "*":
                pending += [await producer.send(topics.clock, line, key=b"*", partition=p) for p in range(partitions)]
                continue
            pending.append(await producer.send(topics.for_event_type(event["type"]), line,
                                               key=event["account_id"].encode()))
            if number % (BAD_EVERY - 1) == 0:
                kind, topic, partition, key, value = bad_message(sum(sent.values()), topics, partitions, line)
                pending.append(await producer.send(topic, value, key=key, partition=partition))
                sent[kind] += 1
            if len(pending) > 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


@pytest.mark.live_namespace(commit_interval=1.0)
def test_soak(namespace, workers, probe, reliability, request):
    total = request.config.getoption("soak_messages") or (
        1_000_000 if request.config.getoption("reliability") else 20_000)
    checkpoints = sorted({total // 10, total})
    good = total - total // BAD_EVERY
    accounts = int(good / (EVENTS_PER_ACCOUNT_DAY * DAYS) * 1.1)
    events = [parse_event(line) for line in to_jsonl_bytes(generate(accounts, DAYS, WORKLOAD_START, 31))][:good]
    lines = [event.model_dump_json(exclude_none=True).encode() for event in with_ticks(events, TICK_EVERY, None)]
    worker = workers("w1", start=False)
    if total < 100_000:  # small batches: a tick wakes more accounts than one holds, so batches flush midway
        worker.env["DUNNING_BATCH_SIZE"] = "200"
    worker.start()
    inputs = namespace.topics.inputs
    started = time.monotonic()
    sent_box: dict[str, Counter] = {}  # the producer runs beside the checkpoints below
    thread = threading.Thread(target=lambda: sent_box.update(sent=asyncio.run(publish(namespace, lines))))
    thread.start()
    rss: dict[int, int] = {}
    memory: dict[int, dict[str, float]] = {}
    for checkpoint in checkpoints:
        eventually(lambda: probe.committed(inputs) >= checkpoint, 3600, f"{checkpoint} messages committed",
                   every=1.0, on_timeout=worker.tail)
        rss[checkpoint] = rss_bytes(worker.proc.pid)
        memory[checkpoint] = memory_breakdown(worker)
    thread.join(timeout=600)
    probe.wait_caught_up(600, [worker])
    elapsed = time.monotonic() - started
    sent = sent_box["sent"]
    messages = probe.end_offsets(inputs)

    report = audit_check(namespace, None)
    assert report.inputs == messages and report.lost == 0
    assert report.reasons == sent, (report.reasons, sent)  # each bad message with the reason of its kind
    assert 0.04 < sum(sent.values()) / messages < 0.06
    growth = rss[checkpoints[-1]] / rss[checkpoints[0]]
    print(f"soak: {messages} messages ({sum(sent.values())} bad: {dict(sent)}) in {elapsed:.0f} s, "
          f"{messages / elapsed:.0f}/s; RSS {', '.join(f'{k}: {v / 2**20:.0f} MiB' for k, v in rss.items())}; "
          f"memory {memory}")
    reliability("soak", report, events=messages, bad=sum(sent.values()), reasons=dict(sorted(sent.items())),
                rss_mib={str(k): round(v / 2**20, 1) for k, v in rss.items()}, rss_growth=round(growth, 3),
                memory={str(k): v for k, v in memory.items()},
                seconds=round(elapsed, 1), throughput=round(messages / elapsed))
    assert worker.alive and worker.starts == 1
