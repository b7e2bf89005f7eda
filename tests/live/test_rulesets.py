"""A ruleset published to a running two-worker group (`dunning rules publish --at`) takes over at the first clock
tick at or after its time on every partition, whichever worker owns it, and so does an experiment published
after it; notices and audit trails are the simulator's replay of the same switches (`dunning simulate
--rules-at`), and no rule fires twice."""
from __future__ import annotations

import asyncio
import json
import subprocess
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from livekit import (
    DUNNING,
    REPO,
    WORKLOAD_START,
    compare_audit,
    compare_notices,
    generated,
    get,
    phases,
    schedule,
    wait_assignment,
)

from rules.policy import PolicyEngine, Schedule, load_policy
from rules.simulator import Simulation
from streams.tools.audit_check import check_broker
from streams.runtime.processor import partition_for

pytestmark = pytest.mark.broker

ACCOUNTS, DAYS, EXTRA_DAYS, SEED = 40, 30, 15, 7
EVERY = timedelta(hours=6)  # ticks at about 03:00, 09:00, 15:00 and 21:00 Shanghai time
OLD, NEW = REPO / "rules" / "default.yaml", REPO / "rules" / "examples" / "challenger-earlier.yaml"
EXPERIMENT = REPO / "rules" / "examples" / "experiment.yaml"
# 03:30: reminders decided at the 03:xx tick wait for the 08:00 contact window; those of rules the new file drops
# (overdue-day-3, high-risk-daily, first-time-every-other-day) are withdrawn at the switch, the 09:xx tick.
SWITCH = WORKLOAD_START + timedelta(days=22, hours=18, minutes=30)
# A week later the experiment takes over: half the accounts back on the default, half on the challenger.
EXPERIMENT_AT = SWITCH + timedelta(days=7)


def split_at(plan, when):
    """The phases before the first tick at or after `when`, the phases from it, and that tick's time."""
    def due(item) -> bool:
        return item.event.type == "clock.tick" and item.event.at >= when

    cut = next(n for n, phase in enumerate(plan) if any(due(item) for item in phase))
    first = next(i for i, item in enumerate(plan[cut]) if due(item))
    before, after = [*plan[:cut], plan[cut][:first]], [plan[cut][first:], *plan[cut + 1:]]
    return [p for p in before if p], [p for p in after if p], plan[cut][first].event.at


def publish(namespace, worker, path, at) -> None:
    published = subprocess.run([str(DUNNING), "rules", "publish", str(path), "--at", at.isoformat()], cwd=REPO,
                               env=namespace.env(worker.state_dir, worker.web_port), capture_output=True, text=True,
                               timeout=120)
    assert published.returncode == 0, published.stderr
    assert f"from its first clock tick at or after {at.isoformat()}" in published.stdout, published.stdout


@pytest.mark.live_namespace(commit_interval=0.1)
def test_a_published_ruleset_switches_every_partition_at_the_first_tick_after_it(namespace, workers, kcat, probe,
                                                                                 publisher):
    items = generated(ACCOUNTS, DAYS, SEED)
    until = WORKLOAD_START + timedelta(days=DAYS + EXTRA_DAYS)
    plan = phases(schedule(items, EVERY, until), namespace.topics)
    first, rest, first_tick_after = split_at(plan, SWITCH)
    second, third, experiment_tick = split_at(rest, EXPERIMENT_AT)
    assert SWITCH < first_tick_after < SWITCH + EVERY  # ticks run from the first event's time, every 6 hours

    seed = PolicyEngine(load_policy(OLD))
    replay = Simulation(seed, audit=[], schedule=Schedule(seed, [(SWITCH, PolicyEngine(load_policy(NEW))), (
        EXPERIMENT_AT, PolicyEngine(load_policy(EXPERIMENT)))]))
    replay.run([item.event for item in items], EVERY, until)

    a, b = workers("a", start=False), workers("b", start=False)
    a.start(wait=False), b.start(wait=False)
    a.wait_ready(), b.wait_ready()
    shares = wait_assignment(probe, [a, b])
    publisher.run(first, [a, b])
    publish(namespace, a, NEW, SWITCH)
    [(key, value)] = [line.split("\t", 1) for line in kcat.consume(namespace.topics.rulesets)]
    assert json.loads(value)["digest"] == key and json.loads(value)["effective_after"] == SWITCH.isoformat()
    publisher.run(second, [a, b])
    publish(namespace, b, EXPERIMENT, EXPERIMENT_AT)
    publisher.run(third, [a, b])

    live = kcat.notices()
    compare_notices(live, replay.notices, allow_repeats=True)
    compare_audit(kcat.audit(), replay)
    # `dunning audit-check` finds the same: its simulator follows the rulesets topic as the workers do
    checked = asyncio.run(check_broker(namespace.settings, simulate=True))
    assert checked.ok, checked.render()

    # Every partition, on whichever worker, switched at the same ticks: the old version before the first, the
    # challenger's from it, and from the second each account's variant (both variants on every partition).
    seen: dict[int, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for account, lines in kcat.audit().items():
        partition = partition_for(account, namespace.partitions)
        for line in map(json.loads, lines):
            at = datetime.fromisoformat(line["at"])
            period = "before" if at < first_tick_after else "challenger" if at < experiment_tick else "experiment"
            seen[partition][period].add((line["ruleset_version"], line.get("variant")))
    expected = {"before": {("2026.11-default", None)}, "challenger": {("2026.12-challenger", None)},
                "experiment": {("2026.11-default", "champion"), ("2026.12-challenger", "challenger")}}
    assert {p: dict(periods) for p, periods in seen.items()} == {
        p: expected for p in range(namespace.partitions)}, (dict(seen), shares)

    # A once-per-episode rule that fired under one file did not fire again under the next.
    once = {"overdue-day-1", "collector-early", "collector", "demand-letter", "final-notice", "agency"}
    fired = defaultdict(set)
    for notice in live:
        if notice.rule_id in once and notice.action != "recall":
            fired[(notice.account_id, notice.rule_id, notice.episode_id)].add(notice.notice_id)
    assert fired and all(len(ids) == 1 for ids in fired.values())
    assert any(n.rule_id == "collector-early" and n.ruleset_version == "2026.12-challenger" for n in live)
    withdrawn = [line for lines in kcat.audit().values() for line in map(json.loads, lines)
                 if line["what"] == "decision.withdrawn" and "reason" in line["detail"]]
    print(f"{len(live)} notices, {len(withdrawn)} waiting notices withdrawn at the switches; split {shares}")
    assert withdrawn and datetime.fromisoformat(withdrawn[0]["at"]) == first_tick_after
    for worker in (a, b):
        status, body = get(f"http://127.0.0.1:{worker.web_port}/metrics")
        assert status == 200 and b'dunning_ruleset_info{version="contact-earlier-2026-12(' in body, worker.name
    account = next(n.account_id for n in live if n.variant == "challenger")
    status, body = get(f"http://127.0.0.1:{a.web_port}/accounts/{account}")  # forwarded to its owner
    assert status == 200 and (json.loads(body)["ruleset_version"], json.loads(body)["variant"]) == (
        "2026.12-challenger", "challenger")
