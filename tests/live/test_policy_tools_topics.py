"""`dunning backtest` without --events reads the time range from the real input topics, and `dunning report` without
--audit reads the audit topic: each says what it says on the same lines from a file."""
from __future__ import annotations

import asyncio
import subprocess
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from livekit import DUNNING, REPO, eventually

from schemas.events import parse_event
from streams.generators.generate import generate, to_jsonl_bytes
from streams.runtime.topics import ensure_topics

pytestmark = pytest.mark.broker

START = datetime.fromisoformat("2026-11-01T00:00:00+08:00")


async def readable(namespace, counts: dict[str, int]) -> bool:
    """Whether every topic reads back what was produced to it (new topics can answer empty at first)."""
    from streams.tools.audit_check import read_topic

    options = namespace.settings.kafka_client_options()
    try:
        found = {t: len(await asyncio.wait_for(read_topic(options, t), 10)) for t in counts}
    except asyncio.TimeoutError:
        return False
    return found == counts


def test_backtest_reads_the_input_topics(namespace, kcat, tmp_path):
    lines = to_jsonl_bytes(generate(80, 30, START, 7))
    batches = defaultdict(list)
    for line in lines:
        event = parse_event(line)
        batches[(namespace.topics.for_event_type(event.type), None)].append((event.account_id.encode(),
                                                                             line.strip()))
    asyncio.run(ensure_topics(namespace.settings))
    kcat.produce_many(batches)
    counts = {topic: len(records) for (topic, _), records in batches.items()}
    eventually(lambda: asyncio.run(readable(namespace, counts)), 60, "the new topics to read back", every=1)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(lines))
    # the range leaves out the first week: those events are not replayed
    command = [str(DUNNING), "backtest", "--from", (START + timedelta(days=7)).isoformat(), "--to",
               (START + timedelta(days=40)).isoformat(), "--rules", "rules/default.yaml", "--rules",
               "rules/examples/challenger-earlier.yaml"]
    env = namespace.env(tmp_path / "state", 6066)  # no worker: the web port is not used
    from_topics = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    from_file = subprocess.run([*command, "--events", str(events)], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=120)
    assert from_topics.returncode == 0 and from_file.returncode == 0, from_topics.stderr + from_file.stderr
    assert from_topics.stdout == from_file.stdout
    in_range = sum(1 for line in lines if START + timedelta(days=7) <= parse_event(line).occurred_at)
    assert f": {in_range} events, " in from_topics.stdout and in_range < len(lines)


def test_report_reads_the_audit_topic(namespace, kcat, tmp_path):
    from datetime import timedelta as days

    from rules.policy import PolicyEngine, load_policy
    from rules.simulator import Simulation

    simulation = Simulation(PolicyEngine(load_policy(REPO / "rules" / "examples" / "experiment.yaml")), audit=[])
    simulation.run([parse_event(line) for line in to_jsonl_bytes(generate(60, 30, START, 3))], days(hours=1),
                   START + days(days=50))
    records = [(record.account_id.encode(), record.to_json()) for record in simulation.audit]
    asyncio.run(ensure_topics(namespace.settings))
    kcat.produce_many({(namespace.topics.audit, None): records})
    eventually(lambda: asyncio.run(readable(namespace, {namespace.topics.audit: len(records)})), 60,
               "the audit topic to read back", every=1)
    audit = tmp_path / "audit.jsonl"
    audit.write_bytes(b"".join(value + b"\n" for _, value in records))
    env = namespace.env(tmp_path / "state", 6066)
    from_topic = subprocess.run([str(DUNNING), "report"], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=120)
    from_file = subprocess.run([str(DUNNING), "report", "--audit", str(audit)], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=120)
    assert from_topic.returncode == 0 and from_file.returncode == 0, from_topic.stderr + from_file.stderr
    assert from_topic.stdout == from_file.stdout
    assert "challenger" in from_topic.stdout and "champion" in from_topic.stdout
