"""A worker killed with SIGKILL in the middle of a run and restarted on the same state directory: every notice
of the simulator is there (read_committed), and any notice sent twice is the same notice both times."""
from __future__ import annotations

from datetime import timedelta

import pytest
from livekit import (
    WORKLOAD_START,
    generated,
    compare_notices,
    compare_states,
    eventually,
    notices_by_phase,
    phases,
    schedule,
    simulate,
    split_ticks,
    stored_accounts,
)


pytestmark = pytest.mark.broker

START = WORKLOAD_START
ACCOUNTS, DAYS, EXTRA_DAYS, SEED = 30, 10, 25, 11
EVERY = timedelta(days=1)


@pytest.mark.live_namespace(commit_interval=0.5)  # commits rarely enough that a kill lands before one
def test_sigkill_mid_run_loses_no_notice(namespace, workers, kcat, probe, publisher):
    items = generated(ACCOUNTS, DAYS, SEED)
    until = START + timedelta(days=DAYS + EXTRA_DAYS)
    plan = split_ticks(phases(schedule(items, EVERY, until), namespace.topics), 6)
    simulation = simulate(items, EVERY, until)
    expected = simulation.notices
    per_phase = [len(released) for released in notices_by_phase(plan)]
    assert sum(per_phase) == len(expected)
    # kill while the worker is sending the notices of the two busiest phases
    kill_at = set(sorted(range(len(plan)), key=per_phase.__getitem__)[-2:])
    assert all(per_phase[k] >= 10 for k in kill_at), per_phase

    notice_topics = (namespace.topics.reminders, namespace.topics.urgent_notices, namespace.topics.handoffs)
    worker = workers("w1")
    kills: list[dict] = []

    for number, phase in enumerate(plan):
        before = probe.end_offsets(notice_topics) if number in kill_at else 0
        publisher.publish_phase(phase)
        if number in kill_at:
            eventually(lambda: probe.end_offsets(notice_topics) > before, 30, f"the first notices of phase {number}",
                       every=0)
            worker.kill()
            kills.append({"phase": number, "uncommitted": not probe.caught_up(),
                          "sent": probe.end_offsets(notice_topics) - before, "of": per_phase[number]})
            worker.start()  # same state directory; the group waits for the dead member's session to time out
        probe.wait_caught_up(60, [worker])

    live = kcat.notices()
    counts = compare_notices(live, expected, allow_repeats=True)
    repeated = sum(c - 1 for c in counts.values())
    print(f"kills: {kills}; {len(live)} notices read, {len(expected)} distinct expected, {repeated} repeats")
    assert len(kills) == 2 and worker.starts == 3
    # at least one kill hit work the group had not committed yet: a replay really happened
    assert any(kill["uncommitted"] for kill in kills), kills
    compare_states(stored_accounts(kcat, namespace), simulation.accounts)  # the replays changed no state
