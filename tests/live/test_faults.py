"""Faults against real workers, each at several kill points (more under `make reliability`), each ending with the
accounting invariant (audit-check: every input message applied or dead-lettered, no notice twin differs, the
notices are the simulator's) and the test's own claim:

- a worker killed while the group rebalances: the survivor takes over, nothing is lost;
- the broker stopped for 30 s while the workers run: they recover without a restart;
- a worker restarted with its state directory deleted: the state comes back from the changelog, same notices;
- the ruleset changed between runs: notices already sent are not sent again, a rule keeps its identity by id.

(A worker stopped mid-batch is tests/live/test_crash.py; a send the broker refuses, test_large_messages.py.)"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from livekit import (
    DUNNING,
    WORKLOAD_START,
    Item,
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
    wait_assignment,
)

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from schemas.notices import Notice
from streams.runtime.settings import DEFAULT_RULES

pytestmark = pytest.mark.broker

START = WORKLOAD_START
ACCOUNTS, DAYS, EXTRA_DAYS = 30, 10, 25
EVERY = timedelta(days=1)
UNTIL = START + timedelta(days=DAYS + EXTRA_DAYS)
BROKER_DOWN = 30.0  # seconds


@dataclass
class Workload:
    items: list[Item]
    plan: list[list[Item]]
    released: list[list[Notice]]  # the simulator's notices, by the phase that releases them
    simulation: Simulation

    @property
    def expected(self) -> list[Notice]:
        return self.simulation.notices

    def busiest(self, count: int, after: int = 0) -> list[int]:
        """The phases from `after` on that release the most notices, in order."""
        ranked = sorted(range(after, len(self.plan)), key=lambda n: len(self.released[n]))[-count:]
        assert all(len(self.released[n]) >= 5 for n in ranked), [len(r) for r in self.released]
        return sorted(ranked)


def workload(namespace, seed: int, tick_phase: int = 4) -> Workload:
    items = generated(ACCOUNTS, DAYS, seed)
    plan = split_ticks(phases(schedule(items, EVERY, UNTIL), namespace.topics), tick_phase)
    return Workload(items, plan, notices_by_phase(plan), simulate(items, EVERY, UNTIL))


def notice_count(probe, namespace) -> int:
    return probe.end_offsets(namespace.topics.notices)


def wait_for_notices(probe, namespace, before: int, count: float) -> None:
    eventually(lambda: notice_count(probe, namespace) - before >= count, 60, f"{count:.0f} new notices", every=0)


# --------------------------------------------------------------------------------------------- rebalance

REBALANCE_DELAY = {"joined": 0.0, "assigning": 1.0, "recovering": 3.0}  # seconds after the group left Stable


@pytest.mark.live_namespace(commit_interval=0.5)
@pytest.mark.kill_points(quick=["joined"], more=["assigning", "recovering"])
def test_a_worker_killed_during_a_rebalance(namespace, workers, kcat, probe, publisher, reliability, kill_point):
    run = workload(namespace, seed=21)
    [fault_phase] = run.busiest(1, after=len(run.plan) // 3)
    a = workers("a")
    b = workers("b", start=False)
    publisher.run(run.plan[:fault_phase], [a])

    # b joins; while the group rebalances a gets the phase, and dies after the kill point's delay
    b.start(wait=False)
    eventually(lambda: probe.group_state() != "Stable", 60, "the group to start rebalancing", every=0.02,
               on_timeout=b.tail)
    publisher.publish_phase(run.plan[fault_phase])
    time.sleep(REBALANCE_DELAY[kill_point])
    state = probe.group_state()
    uncommitted = not probe.caught_up()
    a.kill()
    b.wait_ready()
    assert wait_assignment(probe, [b], timeout=90) == {"b": set(range(namespace.partitions))}
    probe.wait_caught_up(60, [b])

    a.start()  # back: the partitions are split again and the run goes on with both
    wait_assignment(probe, [a, b], timeout=90)
    publisher.run(run.plan[fault_phase + 1:], [a, b])

    counts = compare_notices(kcat.notices(), run.expected, allow_repeats=True)
    print(f"{kill_point}: killed a in group state {state}, uncommitted: {uncommitted}; "
          f"{sum(counts.values()) - len(counts)} repeats")
    compare_states(stored_accounts(kcat, namespace), run.simulation.accounts)
    reliability("killed during a rebalance", audit_check(namespace, run.expected), group_state=state,
                uncommitted=uncommitted)


# --------------------------------------------------------------------------------------------- broker outage

@pytest.mark.live_namespace(commit_interval=0.5, private_broker=True, session_timeout=10.0)
@pytest.mark.kill_points(quick=["mid-batch"], more=["idle"])
def test_the_broker_stopped_for_30_s_while_workers_run(namespace, workers, kcat, probe, publisher, reliability,
                                                       kill_point):
    run = workload(namespace, seed=23)
    [fault_phase] = run.busiest(1, after=len(run.plan) // 3)
    a, b = workers("a", start=False), workers("b", start=False)
    a.start(wait=False), b.start(wait=False)
    a.wait_ready(), b.wait_ready()
    wait_assignment(probe, [a, b])
    publisher.run(run.plan[:fault_phase], [a, b])

    if kill_point == "mid-batch":  # the workers are sending the phase's notices when the broker goes
        before = notice_count(probe, namespace)
        publisher.publish_phase(run.plan[fault_phase])
        wait_for_notices(probe, namespace, before, 1)
        namespace.broker.stop()
    else:
        namespace.broker.stop()
    stopped = time.monotonic()
    time.sleep(BROKER_DOWN)
    assert a.alive and b.alive, "a worker exited while the broker was away\n" + a.tail(30) + b.tail(30)
    namespace.broker.start()
    print(f"broker back after {time.monotonic() - stopped:.0f} s")
    if kill_point == "idle":
        publisher.publish_phase(run.plan[fault_phase])
    probe.wait_caught_up(180, [a, b])  # the workers reconnect by themselves
    publisher.run(run.plan[fault_phase + 1:], [a, b], timeout=120)

    assert a.alive and b.alive and a.starts == b.starts == 1  # recovered without a restart
    compare_notices(kcat.notices(), run.expected, allow_repeats=True)
    compare_states(stored_accounts(kcat, namespace), run.simulation.accounts)
    reliability("broker stopped 30 s", audit_check(namespace, run.expected))


# --------------------------------------------------------------------------------------------- state lost

@pytest.mark.live_namespace(commit_interval=0.5)
@pytest.mark.kill_points(quick=["TERM@idle"], more=["KILL@mid-batch", "TERM@mid-batch"])
def test_a_worker_restarted_without_its_state_directory(namespace, workers, kcat, probe, publisher, reliability,
                                                        kill_point):
    signal_name, moment = kill_point.split("@")
    run = workload(namespace, seed=25)
    [fault_phase] = run.busiest(1, after=len(run.plan) // 3)
    worker = workers("w1")
    publisher.run(run.plan[:fault_phase], [worker])
    if moment == "mid-batch":
        before = notice_count(probe, namespace)
        publisher.publish_phase(run.plan[fault_phase])
        wait_for_notices(probe, namespace, before, 1)
    worker.stop(signal_name)
    shutil.rmtree(worker.state_dir)

    worker.start()  # every account's state restored from the changelog
    if moment == "idle":
        publisher.publish_phase(run.plan[fault_phase])
    probe.wait_caught_up(60, [worker])
    publisher.run(run.plan[fault_phase + 1:], [worker])

    # accounts whose invoices came before the loss got their later notices: their state came back
    later = {n.account_id for phase in run.released[fault_phase + 1:] for n in phase}
    assert later, "the run after the restart should release notices"
    # after a clean stop between batches nothing is repeated: the restored state knows what was sent
    compare_notices(kcat.notices(), run.expected, allow_repeats=moment != "idle")
    compare_states(stored_accounts(kcat, namespace), run.simulation.accounts)
    reliability("state directory deleted", audit_check(namespace, run.expected))
    # the command does the same from the environment alone, the simulator fed the inputs in time order
    command = subprocess.run([str(DUNNING), "audit-check"], env=namespace.env(worker.state_dir, worker.web_port),
                             capture_output=True, text=True, timeout=300)
    assert command.returncode == 0 and "OK: every input message" in command.stdout, command.stdout + command.stderr


# --------------------------------------------------------------------------------------------- ruleset change

def changed_ruleset(path: Path) -> Path:
    """The default ruleset, changed as a team would: a new version, a rule's channel and template changed, one
    rule dropped, one added, and the rules in another order. The unchanged ids keep their identity. (Edited as
    text: the loader reads YAML 1.2, where `on:` is a key, not a boolean.)"""
    header, *blocks = DEFAULT_RULES.read_text().split("\n  - id: ")
    rules = {block.split("\n", 1)[0]: block for block in blocks}
    header = header.replace('version: "', 'version: "changed-', 1)
    day_one = rules["overdue-day-1"]
    rules["overdue-day-1"] = day_one.replace("channel: [sms, email], template: overdue}",
                                             "channel: email, template: overdue_v2}")
    assert rules["overdue-day-1"] != day_one
    del rules["overdue-day-3"]
    rules["overdue-day-10"] = ("overdue-day-10\n    when: {days_past_due: 10}\n"
                               "    emit: {kind: reminder, channel: email, template: overdue}\n")
    path.write_text("\n  - id: ".join([header, *reversed([block.rstrip("\n") + "\n" for block in rules.values()])]))
    shutil.copytree(DEFAULT_RULES.parent / "calendars", path.parent / "calendars")  # its blackout, beside it
    return path


@pytest.mark.live_namespace(commit_interval=0.5)
@pytest.mark.kill_points(quick=["TERM"], more=["KILL"])
def test_the_ruleset_changed_between_runs(namespace, workers, kcat, probe, publisher, reliability, kill_point,
                                          tmp_path):
    """Between runs: the worker stops (SIGTERM, or SIGKILL once the group has committed) after a phase."""
    changed = changed_ruleset(tmp_path / "changed.yaml")
    run = workload(namespace, seed=27)
    [switch] = run.busiest(1, after=len(run.plan) // 3)
    # the simulator: the default ruleset up to the switch, the changed one after it, on the same states
    simulation = Simulation(Engine(load_ruleset(DEFAULT_RULES)))
    for phase in run.plan[:switch + 1]:
        for item in phase:
            simulation.feed(item.event)
    first_run = list(simulation.notices)
    simulation.engine = Engine(load_ruleset(changed))
    for phase in run.plan[switch + 1:]:
        for item in phase:
            simulation.feed(item.event)

    worker = workers("w1")
    publisher.run(run.plan[:switch + 1], [worker])
    worker.stop(kill_point)
    worker.env["DUNNING_RULES"] = str(changed)
    worker.start()
    publisher.run(run.plan[switch + 1:], [worker])

    live = kcat.notices()
    counts = compare_notices(live, simulation.notices)  # nothing sent twice
    sent_before = {n.notice_id for n in first_run}
    resent = [n for n in live if n.notice_id in sent_before and n.ruleset_version.startswith("changed-")]
    assert not resent, f"{len(resent)} notices of the first run sent again under the changed ruleset"
    # the changed overdue-day-1 rule did not fire again for the episodes it had already reminded
    day_one_before = {(n.account_id, n.episode_id) for n in first_run if n.rule_id == "overdue-day-1"}
    again = [n for n in live if n.rule_id == "overdue-day-1" and n.template == "overdue_v2"
             and (n.account_id, n.episode_id) in day_one_before]
    assert day_one_before and not again, again
    assert any(n.rule_id == "overdue-day-10" for n in live), "the added rule should fire after the change"
    print(f"{kill_point}: {len(counts)} notices, {len(sent_before)} before the change")
    reliability("ruleset changed", audit_check(namespace, simulation.notices))
