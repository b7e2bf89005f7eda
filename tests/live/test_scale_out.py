"""Two workers in one group split the partitions; when one stops (SIGTERM) or dies (SIGKILL), the other takes its
partitions over with their state restored from the changelog (or its standby copy), and the notices are still the
simulator's."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from livekit import (
    WORKLOAD_START,
    generated,
    compare_notices,
    compare_states,
    notices_by_phase,
    phases,
    schedule,
    simulate,
    split_ticks,
    stored_accounts,
    tick_item,
    wait_assignment,
)

from streams.runtime.processor import partition_for

pytestmark = pytest.mark.broker

START = WORKLOAD_START
ACCOUNTS, DAYS, EXTRA_DAYS, SEED = 30, 10, 25, 13
EVERY = timedelta(days=1)


@pytest.mark.live_namespace(commit_interval=0.1)
def test_two_workers_split_the_partitions_and_take_over(namespace, workers, kcat, probe, publisher):
    items = generated(ACCOUNTS, DAYS, SEED)
    plan = split_ticks(phases(schedule(items, EVERY, START + timedelta(days=DAYS + EXTRA_DAYS)), namespace.topics), 4)
    released = notices_by_phase(plan)
    # the last account event comes before the ticks that release most notices: cut the run there
    last_event = max(n for n, phase in enumerate(plan) if not phase[0].platform)
    cuts = [0, last_event + 2, last_event + 4, last_event + 6, len(plan)]
    segments = [plan[a:b] for a, b in zip(cuts, cuts[1:])]
    expected = [notice for phase in released for notice in phase]
    after = [[n for phase in released[a:b] for n in phase] for a, b in zip(cuts, cuts[1:])]
    assert all(len(notices) >= 10 for notices in after[1:]), [len(notices) for notices in after]

    def assert_sent(due, taken_over: set[int]) -> None:
        """The segment's notices for accounts on the partitions taken over are on the notice topics."""
        wanted = {n.notice_id for n in due if partition_for(n.account_id, namespace.partitions) in taken_over}
        assert wanted, "the segment should release notices on the partitions taken over"
        assert wanted <= {n.notice_id for n in kcat.notices()}

    a, b = workers("a", start=False), workers("b", start=False)
    a.start(wait=False), b.start(wait=False)
    a.wait_ready()
    b.wait_ready()
    shares = wait_assignment(probe, [a, b])
    print("split:", shares)
    publisher.run(segments[0], [a, b])

    # SIGTERM: b leaves the group at once; a gets b's partitions and restores their state from the changelog
    b.terminate()
    started = time.monotonic()
    assert wait_assignment(probe, [a]) == {"a": set(range(namespace.partitions))}
    print(f"a took over b's partitions {sorted(shares['b'])} after SIGTERM in {time.monotonic() - started:.1f} s")
    publisher.run(segments[1], [a])
    # a now issues notices for accounts whose invoices b processed: b's stored state reached a
    assert_sent(after[1], shares["b"])

    b.start()  # back with its old state dir: the partitions are split again
    shares = wait_assignment(probe, [a, b])
    print("split again:", shares)
    publisher.run(segments[2], [a, b])

    # SIGKILL: a neither commits nor leaves; b takes a's partitions when a's session (6 s) times out
    a.kill()
    started = time.monotonic()
    assert wait_assignment(probe, [b]) == {"b": set(range(namespace.partitions))}
    print(f"b took over a's partitions {sorted(shares['a'])} after SIGKILL in {time.monotonic() - started:.1f} s")
    publisher.run(segments[3], [b])
    assert_sent(after[3], shares["a"])

    live = kcat.notices()
    counts = compare_notices(live, expected, allow_repeats=True)
    print(f"{len(live)} notices read, {len(counts)} distinct, {len(expected)} expected")
    until = START + timedelta(days=DAYS + EXTRA_DAYS)
    compare_states(stored_accounts(kcat, namespace), simulate(items, EVERY, until).accounts)


@pytest.mark.parametrize("standbys", [0, 1])
def test_ticks_published_before_a_takeover_reach_the_dead_workers_partitions(standbys, namespace, workers, kcat,
                                                                            probe, publisher):
    """The first ticks ever, published between a SIGKILL and the rebalance: nothing was committed on the clock
    topic yet, and the survivor sends what they release on the dead worker's partitions (issue 19: it never did)."""
    items = [item for item in generated(ACCOUNTS, DAYS, SEED) if not item.platform]  # an outage is on the clock topic
    last = max(item.event.occurred_at for item in items)
    ticks = [tick_item(last + n * EVERY) for n in range(1, EXTRA_DAYS)]
    plan = [*phases(items, namespace.topics), ticks]
    expected = [notice for phase in notices_by_phase(plan) for notice in phase]

    a, b = workers("a", start=False), workers("b", start=False)
    for worker in (a, b):
        worker.env["DUNNING_STANDBY_REPLICAS"] = str(standbys)
        worker.start(wait=False)
    a.wait_ready()
    b.wait_ready()
    shares = wait_assignment(probe, [a, b])
    publisher.run(plan[:-1], [a, b])
    b.kill()
    publisher.publish_phase(ticks)
    assert wait_assignment(probe, [a]) == {"a": set(range(namespace.partitions))}
    probe.wait_caught_up(60, workers=[a])
    assert {n.notice_id for n in expected if partition_for(n.account_id, namespace.partitions) in shares["b"]}
    compare_notices(kcat.notices(), expected, allow_repeats=True)
