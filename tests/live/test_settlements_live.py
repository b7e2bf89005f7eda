"""Settlements, write-offs and recoveries against the real broker: the scenario files 23-29 published together with
hourly ticks to one worker give, on dunning.offers and dunning.decisions as on the other notice topics, the
simulator's notices, audit trail and states; and the simulator's are the scenario files' expected lines."""
from __future__ import annotations

import sys
from datetime import datetime, timedelta

import pytest
import yaml
from livekit import (
    REPO,
    compare_audit,
    compare_notices,
    compare_states,
    items_from_lines,
    phases,
    schedule,
    simulate,
    stored_accounts,
)

pytestmark = pytest.mark.broker

SCENARIOS = REPO / "tests" / "scenarios"
FOLDERS = ("23-offer-accepted", "24-offer-lapsed", "25-settlement-paid", "26-settlement-missed",
           "27-write-off-by-event", "28-write-off-by-rule", "29-recovery-after-write-off")
sys.path.insert(0, str(SCENARIOS))
from test_scenarios import describe, expected_lines  # noqa: E402


@pytest.mark.live_namespace(commit_interval=0.1)
def test_the_end_of_the_road_scenarios_live(namespace, workers, kcat, probe, publisher):
    lines, until = [], {}
    for folder in FOLDERS:
        events = items_from_lines((SCENARIOS / folder / "events.jsonl").read_bytes().splitlines())
        until[events[0].event.account_id] = datetime.fromisoformat(
            str(yaml.safe_load((SCENARIOS / folder / "scenario.yaml").read_text())["until"]))
        lines += events
    # Every scenario's first event is at 2026-05-01 10:00 (+08:00), so the hourly ticks fall as in each one alone.
    items = sorted(lines, key=lambda item: item.event.occurred_at)
    last = max(until.values())
    oracle = simulate(items, timedelta(hours=1), last)
    for folder in FOLDERS:  # the oracle is each scenario's own simulation, up to its end
        account = items_from_lines((SCENARIOS / folder / "events.jsonl").read_bytes().splitlines())[0].event.account_id
        mine = [describe(n) for n in oracle.sorted_notices()
                if n.account_id == account and n.issued_at <= until[account]]
        assert mine == expected_lines(SCENARIOS / folder), folder

    plan = phases(schedule(items, timedelta(hours=1), last), namespace.topics)
    publisher.run(plan, [workers("w1")])
    live = kcat.notices()  # each on the topic of its kind: offers and decisions on their own
    compare_notices(live, oracle.notices)
    assert {"offer", "settlement", "write_off", "recovery"} <= {n.kind for n in live}
    assert kcat.consume(namespace.topics.dead_letter) == []
    compare_audit(kcat.audit(), oracle)
    compare_states(stored_accounts(kcat, namespace), oracle.accounts)
