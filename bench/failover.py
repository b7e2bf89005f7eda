"""(j) failover, of bench/live.py: two workers share N accounts; one is killed (SIGKILL) and a tick is published;
how long until the survivor sends the first notice on the dead worker's partitions, with and without standbys.

The accounts are the clock sweep's (sweep.Plan, its changelog written as the worker writes it). Two `dunning
worker` processes with DUNNING_STANDBY_REPLICAS=0 or 1 restore them and share the partitions; once both have
been idle (under 0.15 cores) for 3 s, so that a standby copy has read the other's changelog, one is killed and
the plan's first tick goes to every clock partition at once. It makes the sweep's share of each partition's
accounts due; the partitions where that releases notices (the simulation's engine says which: not every evaluation
sends one, and at 1,500 accounts one partition in four gets any) send them as soon as a worker evaluates them: the
survivor's own at once, the dead worker's once the group has noticed (DUNNING_SESSION_TIMEOUT, 10 s), given them to
the survivor and it has restored them. The survivor's log says when the assignment arrived (`rebalanced_s`) and when its streams resumed
after the recovery (`resumed_s`); the first notice's time is its record timestamp (the worker's producer stamps
it). Every figure is in seconds after the kill.
"""
from __future__ import annotations

import asyncio
import re
import signal
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from broker import TABLES, Broker, Run, changelog, wait_until
from procs import STREAMS_RESUMED, WORKER_READY, Proc, process_cpu_seconds, start_worker
from schemas.events import tick
from sweep import Plan, prepare

ASSIGNED = b"Executing _on_partitions_assigned"
_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
_ROW = re.compile(r"^\| (\S+)\s+\| (\d+)\s+\| (-?\d+)\s+\|$")


def recovery_tables(log: str, title: str, since: float) -> list[dict[tuple[str, int], int]]:
    """Faust's recovery tables of `title` ("Highwater for active changelog partitions", "active offsets at start of
    reading") logged after `since`: {(changelog topic, partition): offset}, oldest first."""
    tables: list[dict[tuple[str, int], int]] = []
    current: dict[tuple[str, int], int] | None = None
    topic = ""
    for line in log.splitlines():
        stamp = _TIME.match(line)
        if stamp:
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            current = {} if title in line and at > since else None
            if current is not None:
                tables.append(current)
        elif current is not None and (row := _ROW.match(line.strip())):
            topic = topic if row.group(1) == "\u3003" else row.group(1)
            current[(topic, int(row.group(2)))] = int(row.group(3))
    return tables


async def idle(procs: list[Proc], below: float = 0.15, window: float = 3.0, timeout: float = 600) -> None:
    """Until every process has kept under `below` cores busy for `window` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = [process_cpu_seconds(proc.proc.pid) for proc in procs]
        await asyncio.sleep(window)
        for proc in procs:
            proc.check_alive()
        if all(process_cpu_seconds(p.proc.pid) - b < below * window for p, b in zip(procs, before)):
            return
    raise TimeoutError("the workers did not go idle")


def owned(proc: Proc, clock_topic: str) -> set[int]:
    """The clock partitions a worker owns, from its /metrics (a lag series per owned input partition)."""
    # the first /metrics builds the portfolio gauges from every account held: seconds at 100k under load
    text = urllib.request.urlopen(f"http://127.0.0.1:{proc.web_port}/metrics", timeout=300).read().decode()
    return {int(found) for found in re.findall(
        r'dunning_consumer_lag\{partition="(\d+)",topic="%s"\}' % re.escape(clock_topic), text)}


async def first_notices(bootstrap: str, after: dict[TopicPartition, int], wanted: set[int],
                        timeout: float) -> dict[int, float]:
    """The record timestamp (s) of the first notice past `after` on each partition, waiting up to `timeout` for one
    on each of the `wanted` partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[int, float] = {}
    try:
        consumer.assign(list(after))
        for tp, offset in after.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while not wanted <= set(found) and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                stamp = min(record.timestamp for record in records) / 1000
                found[tp.partition] = min(found.get(tp.partition, stamp), stamp)
    finally:
        await consumer.stop()
    return found


async def run_failover(broker: Broker, run: Run, plan: Plan, workdir: Path, standbys: int) -> dict:
    name = f"failover-{plan.accounts}-standby{standbys}"
    settings = run.settings(name, name)
    await prepare(broker, settings, plan)
    workers = [start_worker(settings, workdir, f"{name}-{n}", DUNNING_STANDBY_REPLICAS=str(standbys))
               for n in (1, 2)]
    try:
        for worker in workers:
            await worker.wait_logged(WORKER_READY, timeout=600)
        await idle(workers)
        everything = set(range(settings.partitions))
        of_first = await asyncio.to_thread(owned, workers[0], settings.topic.clock)
        assert of_first and of_first != everything, "the two workers did not share the partitions"
        due = plan.notices_released(plan.ticks[0], settings.partitions)
        # the one killed is the second, unless only the first owns partitions on which the tick releases notices
        survivor, victim = workers if any(due[p] for p in everything - of_first) else workers[::-1]
        theirs = everything - of_first if survivor is workers[0] else of_first
        wanted = {p for p in theirs if due[p]}
        after = await broker.end_offsets([TopicPartition(topic, p) for topic in settings.topic.notices
                                          for p in theirs])
        victim.proc.send_signal(signal.SIGKILL)
        killed = time.time()
        victim.proc.wait()
        value = tick(datetime.fromtimestamp(plan.ticks[0], timezone.utc)).model_dump_json(exclude_none=True).encode()
        await broker.send_all((settings.topic.clock, p, b"*", value) for p in range(settings.partitions))
        notices = await first_notices(settings.bootstrap_servers, after, wanted, timeout=120)

        async def resumed_since() -> bool:
            return survivor.logged(STREAMS_RESUMED)[-1] > killed

        await wait_until(resumed_since, 60, "the survivor to resume")
    finally:
        for worker in workers:
            worker.stop()
    rebalanced = min(at for at in survivor.logged(ASSIGNED) if at > killed)
    resumed = min(at for at in survivor.logged(STREAMS_RESUMED) if at > killed)
    first = min(notices.values()) if notices else None
    log = survivor.log_path.read_text(errors="replace")
    highwaters = (recovery_tables(log, "Highwater for active changelog partitions", killed) or [{}])[-1]
    starts = (recovery_tables(log, "active offsets at start of reading", killed) or [{}])[-1]
    accounts_log = changelog(settings, TABLES[0])
    taken = [(accounts_log, p) for p in theirs]
    read = (sum(highwaters[tp] - max(0, starts.get(tp, 0)) for tp in taken)
            if all(tp in highwaters for tp in taken) else None)  # None: the survivor logged no such recovery
    return {
        "accounts": plan.accounts, "standby_replicas": standbys, "partitions_taken_over": sorted(theirs),
        # the partitions taken over on which the tick releases notices (the simulator's), and how many
        "partitions_with_notices_due": sorted(wanted), "notices_due": sum(due[p] for p in theirs),
        # what the survivor read of the taken-over partitions' accounts changelog to restore them
        "changelog_records_read": read,
        "rebalanced_s": round(rebalanced - killed, 3), "resumed_s": round(resumed - killed, 3),
        "first_notice_s": None if first is None else round(first - killed, 3),
        "all_partitions_noticed_s": round(max(notices[p] for p in wanted) - killed, 3) if wanted and wanted <= set(
            notices) else None,  # on every partition with notices due
        "first_notice_after_rebalance_s": None if first is None else round(first - rebalanced, 3),
    }
