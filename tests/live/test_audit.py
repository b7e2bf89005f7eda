"""The audit trail end to end: what one worker writes to dunning.audit, read back with kcat, is the simulator's
trail on the same schedule, account by account and line by line."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from livekit import WORKLOAD_START, compare_audit, generated, phases, schedule, simulate

pytestmark = pytest.mark.broker

# 60 accounts for 30 days and 5 more, ticks every 6 h: about 500 audit lines of every kind in ~210 phases.
ACCOUNTS, DAYS, EXTRA_DAYS, SEED = 60, 30, 5, 11
EVERY = timedelta(hours=6)


@pytest.mark.live_namespace(commit_interval=0.1)
def test_audit_topic_holds_the_simulators_trail(namespace, workers, kcat, publisher):
    items = generated(ACCOUNTS, DAYS, SEED)
    until = WORKLOAD_START + timedelta(days=DAYS + EXTRA_DAYS)
    simulation = simulate(items, EVERY, until)
    whats = {record.what for record in simulation.audit}
    # only worth comparing with notices, skipped, withdrawn and suppressed decisions, arrangements and episodes
    assert {"notice.handoff", "decision.skipped", "decision.withdrawn", "decision.suppressed",
            "decision.arrangement_kept", "decision.arrangement_broken", "episode.started", "episode.ended"} <= whats
    assert any(item.event.type == "platform.outage" for item in items)

    worker = workers("w1")
    started = time.monotonic()
    publisher.run(phases(schedule(items, EVERY, until), namespace.topics), [worker])
    live = kcat.audit()
    print(f"{len(items)} events in {time.monotonic() - started:.1f} s; "
          f"{sum(map(len, live.values()))} audit lines of {len(live)} accounts")
    compare_audit(live, simulation)
