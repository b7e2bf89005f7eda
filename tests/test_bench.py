"""The benchmarks measure the product's own work: the core bench's loop decides what the simulator decides."""
from __future__ import annotations

import collections
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from schemas.events import parse_event

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def core():
    sys.path.insert(0, str(BENCH))
    try:
        import core
    finally:
        sys.path.remove(str(BENCH))
    return core


@pytest.fixture(scope="module")
def lines(core) -> list[bytes]:
    # 400 accounts replayed from a 100-account template, as the full-size run replays 25,000.
    lines, meta = core.build_lines(6000, 400, 100, 3, timedelta(hours=1), lambda message: None)
    assert meta["input_events"] == 6000 and meta["replicas"] == 4
    return lines


def test_replicated_accounts_have_their_own_ids(lines):
    invoices = collections.Counter()
    for raw in lines:
        event = json.loads(raw)
        if event["type"] == "invoice.issued":
            invoices[event["invoice_id"]] += 1
    assert invoices and max(invoices.values()) == 1


def test_core_loop_issues_the_notices_the_simulator_issues(core, lines):
    rules = load_ruleset(core.ROOT / "rules" / "default.yaml")
    measured = core.run(lines, Engine(rules))
    simulation = Simulation(Engine(rules))
    for raw in lines:
        simulation.feed(parse_event(raw))
    expected = collections.Counter(notice.kind for notice in simulation.notices)
    assert sum(expected.values()) > 500
    assert measured["notices"] == dict(expected)
    assert measured["input_events"] == 6000
    assert measured["accounts"] == len(simulation.accounts) == 400


def test_ceiling_reports_both_loops():
    finished = subprocess.run(
        [sys.executable, str(BENCH / "ceiling.py"), "--events", "2000", "--accounts", "200",
         "--template-accounts", "100"], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert result["input_events"] == 2000
    assert result["decode_events_per_s"] > 0 and result["bookkeeping_events_per_s"] > 0
    assert "left of 10 us per event" in finished.stdout
