"""A worker stopped in the middle of a batch, at several points of it, and restarted on the same state directory:
every input message was applied or dead-lettered (audit-check), every notice of the simulator is there
(read_committed), any notice sent twice is the same notice both times, and the stored states are the simulator's.

A kill point is the signal (KILL: no shutdown, no commit; TERM: Faust's shutdown, which commits what was acked)
and how much of the phase's notices had reached the broker when it came: none yet, the first, half, or all."""
from __future__ import annotations

from datetime import timedelta

import pytest
from livekit import (
    WORKLOAD_START,
    audit_check,
    compare_notices,
    compare_states,
    eventually,
    generated,
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
SENT_SHARE = {"none": 0.0, "first": 1e-9, "half": 0.5, "all": 1.0}  # of the phase's notices on the broker


@pytest.mark.live_namespace(commit_interval=0.5)  # commits rarely enough that a kill lands before one
@pytest.mark.kill_points(quick=["KILL@first", "TERM@half"], more=["KILL@none", "KILL@half", "KILL@all", "TERM@first",
                                                                  "TERM@all"])
def test_a_worker_stopped_mid_batch_loses_nothing(namespace, workers, kcat, probe, publisher, reliability,
                                                  kill_point):
    signal_name, moment = kill_point.split("@")
    items = generated(ACCOUNTS, DAYS, SEED)
    until = START + timedelta(days=DAYS + EXTRA_DAYS)
    plan = split_ticks(phases(schedule(items, EVERY, until), namespace.topics), 6)
    simulation = simulate(items, EVERY, until)
    expected = simulation.notices
    per_phase = [len(released) for released in notices_by_phase(plan)]
    assert sum(per_phase) == len(expected)
    # stop while the worker is sending the notices of the two busiest phases
    kill_at = set(sorted(range(len(plan)), key=per_phase.__getitem__)[-2:])
    assert all(per_phase[k] >= 10 for k in kill_at), per_phase

    notice_topics = (namespace.topics.reminders, namespace.topics.urgent_notices, namespace.topics.handoffs)
    worker = workers("w1")
    kills: list[dict] = []

    for number, phase in enumerate(plan):
        before = probe.end_offsets(notice_topics) if number in kill_at else 0
        publisher.publish_phase(phase)
        if number in kill_at:
            wanted = SENT_SHARE[moment] * per_phase[number]
            eventually(lambda: probe.end_offsets(notice_topics) - before >= wanted, 30,
                       f"{wanted:.0f} notices of phase {number}", every=0)
            worker.stop(signal_name)
            kills.append({"phase": number, "uncommitted": not probe.caught_up(),
                          "sent": probe.end_offsets(notice_topics) - before, "of": per_phase[number],
                          "exit": worker.proc.returncode})
            worker.start()  # same state directory; after a KILL the group waits for the dead member's session
        probe.wait_caught_up(60, [worker])

    live = kcat.notices()
    counts = compare_notices(live, expected, allow_repeats=True)
    repeated = sum(c - 1 for c in counts.values())
    print(f"{kill_point}: {kills}; {len(live)} notices read, {len(expected)} distinct expected, {repeated} repeats")
    assert len(kills) == 2 and worker.starts == 3
    if signal_name == "KILL" and moment != "all":
        # the kill hit work the group had not committed yet: a replay really happened
        assert any(kill["uncommitted"] for kill in kills), kills
    compare_states(stored_accounts(kcat, namespace), simulation.accounts)  # the replays changed no state
    reliability("stopped mid-batch", audit_check(namespace, expected), kills=kills)
