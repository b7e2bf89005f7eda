"""(e) the clock sweep and (i) the restore, of bench/live.py: a fresh worker restores N accounts from its
changelog, then ticks that each find a given share of them due.

The accounts are the simulator's, after the event file with hourly ticks (states.simulate), replicated with
renamed ids (core.renamed) up to N, and written to the changelog of a fresh app id as the worker writes them
(encode_account), one record per account, as a compacted changelog holds them; the platform table gets the
simulator's clock and outages. A worker with an empty state dir and that app id then restores them.

Which accounts a tick finds due is set through the wakeup in each stored value, which the worker's tick index
reads: the accounts really due at the earliest instant C by which enough of them are, shuffled, get the sweep's
ticks (C + 1 min, C + 2 min, ...) as their wakeups, a share per tick; any other account that would fall due
during the sweep waits until a day after it. So every account a tick evaluates is really due, and no other is.
"""
from __future__ import annotations

import asyncio
import math
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from aiokafka import TopicPartition

from broker import TABLES, Broker, Run, changelog, wait_until
from core import renamed
from procs import (RECOVERY_STARTED, STREAMS_RESUMED, WORKER_READY, cpu_clocks, local_broker_pid, start_worker,
                   stop_spy)
from rules.simulator import Simulation
from rules.state import dump_platform
from schemas.events import tick
from states import stored, wakeup
from streams.runtime.processor import partition_for
from streams.runtime.settings import Settings
from streams.runtime.topics import ensure_topics

DAY = 86_400


class Plan:
    """Who is due at which tick, for `replicas` copies of the simulation's accounts."""

    def __init__(self, simulation: Simulation, replicas: int, share: float, ticks: int, seed: int):
        self.simulation, self.replicas = simulation, replicas
        self.base = sorted(simulation.accounts)
        self.stride = max(int(account.rsplit("-", 1)[1]) for account in self.base) + 1
        self.wake = {account: wakeup(simulation, account) for account in self.base}
        self.accounts = len(self.base) * replicas
        self.per_tick = max(1, round(self.accounts * share))
        times = sorted(at.timestamp() for at in self.wake.values() if at is not None)
        due_at = times[math.ceil(self.per_tick * ticks / replicas) - 1]  # C
        assert due_at > simulation.platform.clock.timestamp(), "the sweep must come after the simulator's clock"
        self.ticks = [due_at + 60 * (n + 1) for n in range(ticks)]
        pool = [(replica, account) for replica in range(replicas) for account in self.base
                if self.wake[account] is not None and self.wake[account].timestamp() <= due_at]
        random.Random(seed).shuffle(pool)
        self.slot = {member: self.ticks[n // self.per_tick] for n, member in enumerate(pool[:self.per_tick * ticks])}

    def header_wakeup(self, replica: int, account: str) -> datetime | None:
        at = self.slot.get((replica, account))
        real = self.wake[account]
        if at is None and real is not None and real.timestamp() <= self.ticks[-1]:
            at = self.ticks[-1] + DAY  # due during the sweep but not in a slot: after it
        return real if at is None else datetime.fromtimestamp(at, timezone.utc)

    def records(self, topic: str, partitions: int) -> Iterator[tuple[str, int, bytes, bytes]]:
        for replica in range(self.replicas):
            for account in self.base:
                index = int(account.rsplit("-", 1)[1])
                target = replica * self.stride + index
                key = renamed(account.encode(), index, target)
                partition = partition_for(key.decode(), partitions)
                value = stored(self.simulation, account, partition, self.header_wakeup(replica, account))
                yield topic, partition, key, renamed(value, index, target)


async def prepare(broker: Broker, settings: Settings, plan: Plan) -> tuple[int, int]:
    """The topics of `settings`, and its tables' changelogs holding the plan's accounts and platform state, as a
    worker would have written them; returns the account records and their bytes."""
    partitions = settings.partitions
    await ensure_topics(settings)
    accounts_log, platform_log = (changelog(settings, table) for table in TABLES)
    await broker.create_topics((accounts_log, platform_log), partitions, {"cleanup.policy": "compact"})
    restored, restored_bytes = await broker.send_all(plan.records(accounts_log, partitions))
    platform = dump_platform(plan.simulation.platform)
    await broker.send_all((platform_log, p, str(p).encode(), platform) for p in range(partitions))
    return restored, restored_bytes


async def run_sweep(broker: Broker, run: Run, plan: Plan, workdir: Path, name: str,
                    profile: Path | None = None) -> dict:
    """With `profile` (a path stem), py-spy samples the worker's restore into <stem>-restore.pyspy.txt and its
    ticks into <stem>-tick.pyspy.txt."""
    settings = run.settings(name, name)
    restored, restored_bytes = await prepare(broker, settings, plan)

    broker_pid = local_broker_pid(settings.bootstrap_servers)
    worker = start_worker(settings, workdir, name)
    clocks = cpu_clocks([worker], broker_pid)
    spy = worker.spy(profile.with_name(f"{profile.name}-restore.pyspy.txt")) if profile else None
    try:
        await worker.wait_logged(WORKER_READY, timeout=900)
        ready_rss = worker.memory_mb()
        if spy:
            stop_spy(spy)
            spy = worker.spy(profile.with_name(f"{profile.name}-tick.pyspy.txt"))
        # restore is the figure the machine's other work moves most: say how much CPU there was for it
        cores = {who: round((seconds - clocks[who]) / (time.time() - worker.started), 2)
                 for who, seconds in cpu_clocks([worker], broker_pid).items()}
        began = worker.logged(RECOVERY_STARTED)[0]
        restore_s = next(at for at in worker.logged(STREAMS_RESUMED) if at >= began) - began
        ticks = [await _tick(broker, settings, at) for at in plan.ticks]
        if spy:
            stop_spy(spy)
            spy = None
        ticked_rss = worker.memory_mb()
    finally:
        if spy:
            stop_spy(spy)
        worker.stop()
    steady = [t["seconds"] for t in ticks[1:]]
    return {
        "accounts": plan.accounts, "due_per_tick": plan.per_tick,
        "restore": {"records": restored, "bytes": restored_bytes, "seconds": round(restore_s, 3),
                    "start_to_ready_s": round(worker.logged(WORKER_READY)[0] - worker.started, 3),
                    "cpu_cores_to_ready": cores},
        "ticks": ticks,
        "first_tick_s": ticks[0]["seconds"],
        "tick_s": round(sorted(steady)[len(steady) // 2], 3) if steady else None,
        "rss_mb": {"ready": ready_rss, "after_ticks": ticked_rss},
        "peak_rss_mb": worker.peak_rss_mb,
    }


async def _tick(broker: Broker, settings, at: float) -> dict:
    """One tick to every clock partition, timed until the worker has stored the platform state it leads to
    on every partition (it writes that after the states of the accounts the tick evaluated)."""
    partitions = range(settings.partitions)
    accounts_log, platform_log = (changelog(settings, table) for table in TABLES)
    accounts_tps = [TopicPartition(accounts_log, p) for p in partitions]
    platform_tps = [TopicPartition(platform_log, p) for p in partitions]
    clock_tps = [TopicPartition(settings.topic.clock, p) for p in partitions]
    written = sum((await broker.end_offsets(accounts_tps)).values())
    platform_before = await broker.end_offsets(platform_tps)
    value = tick(datetime.fromtimestamp(at, timezone.utc)).model_dump_json(exclude_none=True).encode()
    started = time.perf_counter()
    await broker.send_all((settings.topic.clock, p, b"*", value) for p in partitions)

    async def stored_platform() -> bool:
        now = await broker.end_offsets(platform_tps)
        return all(now[tp] > platform_before[tp] for tp in platform_tps)

    await wait_until(stored_platform, 120, f"the tick at {at} to be evaluated", every=0.01)
    seconds = time.perf_counter() - started

    async def committed() -> bool:  # then every write of the tick has been acknowledged
        ends, done = await asyncio.gather(broker.end_offsets(clock_tps), broker.committed(settings.app_id, clock_tps))
        return all(done[tp] >= ends[tp] for tp in clock_tps)

    await wait_until(committed, 60, f"the tick at {at} to be committed")
    evaluated = sum((await broker.end_offsets(accounts_tps)).values()) - written
    return {"at": datetime.fromtimestamp(at, timezone.utc).isoformat(), "seconds": round(seconds, 3),
            "evaluated": evaluated}
