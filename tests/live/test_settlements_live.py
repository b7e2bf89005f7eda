"""Settlements, write-offs, recoveries and the engine semantics of issue 16 against the real broker: the scenario
files 23-34, each ruleset's folders published together with hourly ticks to one worker running that ruleset, give,
on dunning.offers and dunning.decisions as on the other notice topics, the simulator's notices, audit trail and
states; and the simulator's are the scenario files' expected lines (and audit.txt's)."""
from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from livekit import (
    REPO,
    SCENARIOS,
    Item,
    ScenarioFile,
    check_oracle,
    compare_with_oracle,
    phases,
    schedule,
    simulate,
)

pytestmark = pytest.mark.broker

# By the ruleset their scenario.yaml names: one worker per ruleset.
GROUPS = {
    "default": ("23-offer-accepted", "24-offer-lapsed", "25-settlement-paid", "26-settlement-missed",
                "27-write-off-by-event", "28-write-off-by-rule", "29-recovery-after-write-off",
                "30-settlement-paid-off-otherwise", "32-late-payment-settles", "34-redelivery-after-a-quiet-week"),
    "event-facts": ("31-event-facts",),
    "second-offer": ("33-second-offer-waits",),
}


def rules_of(folder: str) -> Path:
    named = yaml.safe_load((SCENARIOS / folder / "scenario.yaml").read_text())["rules"]
    return SCENARIOS / folder / named if (SCENARIOS / folder / named).exists() else REPO / named


def arrivals(items: list[Item]) -> list[tuple[datetime, Item]]:
    """Each event of a file with the time it arrives: the latest occurred_at so far, so that a late payment or a
    redelivery keeps its place in the file (after the ticks it crossed)."""
    result, latest = [], None
    for item in items:
        latest = item.event.occurred_at if latest is None or item.event.occurred_at > latest else latest
        result.append((latest, item))
    return result


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.live_namespace(commit_interval=0.1)
def test_the_end_of_the_road_scenarios_live(group, namespace, workers, kcat, probe, publisher):
    files = [ScenarioFile.read(folder) for folder in GROUPS[group]]
    rules = {rules_of(file.folder) for file in files}
    assert len(rules) == 1, rules
    rules_path = rules.pop()
    # A group's scenarios all start at one time (the default group's at 2026-05-01 10:00 +08:00), so the hourly ticks
    # fall as in each one alone.
    items = [item for _, item in heapq.merge(*(arrivals(file.items) for file in files), key=lambda pair: pair[0])]
    last = max(file.until for file in files)
    oracle = simulate(items, timedelta(hours=1), last, rules=rules_path)
    check_oracle(oracle, files)

    plan = phases(schedule(items, timedelta(hours=1), last), namespace.topics)
    worker = workers("w1", start=False)
    worker.env["DUNNING_RULES"] = str(rules_path)
    publisher.run(plan, [worker.start()])
    live = compare_with_oracle(kcat, namespace, oracle)
    if group == "default":
        assert {"offer", "settlement", "write_off", "recovery"} <= {n.kind for n in live}
