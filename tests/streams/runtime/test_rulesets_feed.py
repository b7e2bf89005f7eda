"""Published policy records as the worker and audit-check read them: a usable record is a switch at its time, a
republished policy the same engine, a bad one logged and skipped; audit-check's oracle follows the switches."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from rules.policy import PolicyEngine, Schedule, load_policy
from rules.simulator import Simulation, with_ticks
from schemas.events import parse_event
from streams.tools.audit_check import Message, simulated_notices
from streams.generators.generate import generate, to_jsonl_bytes
from streams.runtime.rulesets import record_of, switch_of

REPO = Path(__file__).resolve().parents[3]
START = datetime.fromisoformat("2026-11-01T00:00:00+08:00")
CHALLENGER = REPO / "rules" / "examples" / "challenger-earlier.yaml"


def record(path: Path, at: datetime) -> bytes:
    return record_of(load_policy(path), at, START).to_json()


def test_a_record_is_a_switch_and_a_republished_policy_the_same_engine():
    engines: dict = {}
    first = switch_of(record(CHALLENGER, START), "at offset 0", engines)
    again = switch_of(record(CHALLENGER, START + timedelta(days=3)), "at offset 1", engines)
    assert first[0] == START and again[0] == START + timedelta(days=3)
    assert first[1] is again[1] and first[1].version == "2026.12-challenger"


def test_a_record_that_cannot_be_used_is_logged_and_skipped(caplog):
    published = record_of(load_policy(CHALLENGER), START, START)
    broken = published.model_copy(update={"sources": {published.main: "version: 3\n"}}).to_json()
    with caplog.at_level(logging.ERROR, logger="dunning.rulesets"):
        assert switch_of(broken, "at offset 7", {}) is None
        assert switch_of(b"not json", "at offset 8", {}) is None
        assert switch_of(None, "at offset 9", {}) is None  # a tombstone, nothing to say
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "ruleset record at offset 7 is not usable, ignored", "ruleset record at offset 8 is not usable, ignored"]


def test_audit_checks_oracle_switches_where_the_workers_do():
    events = [parse_event(line) for line in to_jsonl_bytes(generate(60, 30, START, 4))]
    at = START + timedelta(days=20)
    published = [Message("dunning.rulesets", 0, 0, b"k", record(CHALLENGER, at))]
    seed = PolicyEngine(load_policy(REPO / "rules" / "default.yaml"))
    simulation = Simulation(seed, schedule=Schedule(seed, [(at, PolicyEngine(load_policy(CHALLENGER)))]))
    simulation.run(events, timedelta(hours=1), START + timedelta(days=40))
    ordered = with_ticks(events, timedelta(hours=1), START + timedelta(days=40))
    notices = simulated_notices(ordered, REPO / "rules" / "default.yaml", published)
    assert sorted(n.notice_id for n in notices) == sorted(n.notice_id for n in simulation.notices)
    assert {n.ruleset_version for n in notices} == {"2026.11-default", "2026.12-challenger"}

