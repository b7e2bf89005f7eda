"""A ruleset published to a running two-worker group (`dunning rules publish --at`) takes over at the first clock
tick at or after its time on every partition, whichever worker owns it; notices and audit trails are the
simulator's replay of the same switch (`dunning simulate --rules-at`), and no rule fires twice."""
from __future__ import annotations

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
from streams.processor import partition_for

pytestmark = pytest.mark.broker

ACCOUNTS, DAYS, EXTRA_DAYS, SEED = 40, 30, 15, 7
EVERY = timedelta(hours=6)  # ticks at about 03:00, 09:00, 15:00 and 21:00 Shanghai time
OLD, NEW = REPO / "rules" / "default.yaml", REPO / "rules" / "examples" / "challenger-earlier.yaml"
# 03:30: reminders decided at the 03:xx tick wait for the 08:00 contact window; those of rules the new file drops
# (overdue-day-3, high-risk-daily, first-time-every-other-day) are withdrawn at the switch, the 09:xx tick.
SWITCH = WORKLOAD_START + timedelta(days=22, hours=18, minutes=30)


@pytest.mark.live_namespace(commit_interval=0.1)
def test_a_published_ruleset_switches_every_partition_at_the_first_tick_after_it(namespace, workers, kcat, probe,
                                                                                 publisher):
    items = generated(ACCOUNTS, DAYS, SEED)
    until = WORKLOAD_START + timedelta(days=DAYS + EXTRA_DAYS)
    plan = phases(schedule(items, EVERY, until), namespace.topics)
    def after_switch(item) -> bool:
        return item.event.type == "clock.tick" and item.event.at >= SWITCH

    cut = next(n for n, phase in enumerate(plan) if any(after_switch(item) for item in phase))
    before = plan[:cut]
    ticks = plan[cut]
    first_after = next(i for i, item in enumerate(ticks) if after_switch(item))
    first_tick_after = ticks[first_after].event.at  # ticks run from the first event's time, every 6 hours
    assert SWITCH < first_tick_after < SWITCH + EVERY
    segments = [*before, ticks[:first_after]], [ticks[first_after:], *plan[cut + 1:]]
    segments = [[phase for phase in segment if phase] for segment in segments]

    seed = PolicyEngine(load_policy(OLD))
    replay = Simulation(seed, audit=[], schedule=Schedule(seed, [(SWITCH, PolicyEngine(load_policy(NEW)))]))
    replay.run([item.event for item in items], EVERY, until)

    a, b = workers("a", start=False), workers("b", start=False)
    a.start(wait=False), b.start(wait=False)
    a.wait_ready(), b.wait_ready()
    shares = wait_assignment(probe, [a, b])
    publisher.run(segments[0], [a, b])

    published = subprocess.run([str(DUNNING), "rules", "publish", str(NEW), "--at", SWITCH.isoformat()], cwd=REPO,
                               env=namespace.env(a.state_dir, a.web_port), capture_output=True, text=True,
                               timeout=120)
    assert published.returncode == 0, published.stderr
    assert "2026.12-challenger" in published.stdout and SWITCH.isoformat() in published.stdout, published.stdout
    [(key, value)] = [line.split("\t", 1) for line in kcat.consume(namespace.topics.rulesets)]
    assert json.loads(value)["digest"] == key and json.loads(value)["effective_after"] == SWITCH.isoformat()

    publisher.run(segments[1], [a, b])

    live = kcat.notices()
    compare_notices(live, replay.notices, allow_repeats=True)
    compare_audit(kcat.audit(), replay)

    # Every partition, on whichever worker, switched at the same tick: its audit lines before it carry the old
    # version, from it the new one.
    versions: dict[int, dict[str, set[str]]] = defaultdict(lambda: {"before": set(), "from": set()})
    for account, lines in kcat.audit().items():
        partition = partition_for(account, namespace.partitions)
        for line in map(json.loads, lines):
            when = "before" if datetime.fromisoformat(line["at"]) < first_tick_after else "from"
            versions[partition][when].add(line["ruleset_version"])
    assert dict(versions) == {p: {"before": {"2026.11-default"}, "from": {"2026.12-challenger"}}
                              for p in range(namespace.partitions)}, (dict(versions), shares)

    # A once-per-episode rule that fired under the old file did not fire again under the new one.
    once = {"overdue-day-1", "collector-early", "collector", "demand-letter", "final-notice", "agency"}
    fired = defaultdict(set)
    for notice in live:
        if notice.rule_id in once and notice.action != "recall":
            fired[(notice.account_id, notice.rule_id, notice.episode_id)].add(notice.notice_id)
    assert fired and all(len(ids) == 1 for ids in fired.values())
    across = [k for k, ids in fired.items() if k[1] == "overdue-day-1"]
    assert any(n.rule_id == "collector-early" and n.ruleset_version == "2026.12-challenger" for n in live)
    withdrawn = [line for lines in kcat.audit().values() for line in map(json.loads, lines)
                 if line["what"] == "decision.withdrawn" and "reason" in line["detail"]]
    print(f"{len(live)} notices, {len(across)} day-1 episodes, {len(withdrawn)} waiting notices withdrawn at the "
          f"switch; split {shares}")
    assert withdrawn and {datetime.fromisoformat(line["at"]) for line in withdrawn} == {first_tick_after}
    for worker in (a, b):
        status, body = get(f"http://127.0.0.1:{worker.web_port}/metrics")
        assert status == 200 and b'dunning_ruleset_info{version="2026.12-challenger"} 1.0' in body, worker.name
    status, body = get(f"http://127.0.0.1:{a.web_port}/accounts/{live[0].account_id}")  # forwarded to its owner
    assert status == 200 and (json.loads(body)["ruleset_version"], json.loads(body)["variant"]) == (
        "2026.12-challenger", None)
