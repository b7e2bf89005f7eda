"""`make bench`: the live path end to end on the local broker, every figure of issue #8 in one run.

    .venv/bin/python bench/live.py                 # full size, about 10 minutes here
    .venv/bin/python bench/live.py --quick         # small sizes, a smoke test (tests/live/test_bench_live.py)

One broker, one generated event file (streams.generators.generate, 10,000 accounts over 60 days, seed 5) pre-filled on 4
partitions of the input topics (murmur2, as `dunning publish` sends), and then, in this order: (a) the raw
aiokafka ceiling, (b) the engine in a plain aiokafka loop, (c) a naive Faust agent, (d) `dunning worker`, one
process and then two in one group; (g) the bytes (d)'s single worker wrote to its accounts changelog; (e) the
clock sweep and (i) the restore at 10k and 100k accounts; (j) failover at 100k, one of two workers killed,
with and without standbys; (f) peak RSS along the way; (h) state bytes per
account after 180 days, offline. bench/README.md says how each figure is measured. Writes
bench/results/<UTC date>.json and .png and prints the targets, met or not. Every topic it makes is deleted at the
end; the logs of a failed run are kept (their folder is printed).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core import START, cpu_name  # first: core puts the repository on sys.path
import loops
import report
from broker import TABLES, Broker, Run, changelog
from failover import run_failover
from procs import hold_until_joined, start_naive_agent, start_worker, timed
from states import simulate, state_sizes
from streams.generators.generate import generate, to_jsonl_bytes
from streams.runtime.settings import Settings
from streams.runtime.topics import ensure_topics
from streams.runtime.worker import WORKER_GC_THRESHOLD
from sweep import Plan, run_sweep

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    accounts: int = 10_000
    days: int = 60
    seed: int = 5
    partitions: int = 4
    sweep_replicas: tuple[int, ...] = (1, 10)  # clock sweep and restore at accounts x each
    due_share: float = 0.01
    ticks: int = 6  # per sweep: the first after start (it builds the tick index), then the steady ones
    state_accounts: int = 3_000
    state_days: int = 180
    timeout: float = 600  # per contender


FULL = Sizes()
MILLION = Sizes(sweep_replicas=(1, 100))  # --million: 10,000 and 1,000,000 accounts
QUICK = Sizes(accounts=500, days=20, sweep_replicas=(1, 3), ticks=3, state_accounts=200, state_days=40, timeout=180)


def log(message: str, since: float) -> None:
    print(f"[{time.perf_counter() - since:6.0f} s] {message}", file=sys.stderr, flush=True)


async def measure(sizes: Sizes, bootstrap: str, workdir: Path, began: float, profile: Path | None,
                  throughput_only: bool = False) -> dict:
    run = Run(bootstrap, sizes.partitions)
    lines = to_jsonl_bytes(generate(sizes.accounts, sizes.days, START, sizes.seed))
    (workdir / "events.jsonl").write_bytes(b"".join(lines))
    result: dict = {"workload": {"accounts": sizes.accounts, "days": sizes.days, "seed": sizes.seed,
                                 "partitions": sizes.partitions, "lines": len(lines), "topics_prefix": run.prefix,
                                 "input_mean_bytes": round(sum(len(line) - 1 for line in lines) / len(lines), 1)},
                    "throughput": {}, "peak_rss_mb": {}}
    async with Broker(bootstrap) as broker:
        try:
            inputs = run.settings("input", "prefill")
            partitions = run.input_partitions(inputs)
            await ensure_topics(inputs)
            await broker.prefill(inputs, lines)
            total = sum((await broker.end_offsets(partitions)).values())
            result["workload"]["input_messages"] = total
            log(f"{total:,} input messages on {len(partitions)} partitions ({run.prefix})", began)

            def contender(app: str) -> Settings:
                return run.settings("input", app)

            throughput = result["throughput"]
            for name, handler in (("a_raw_aiokafka", loops.raw_ceiling), ("b_engine_loop", loops.engine_loop)):
                gc.collect()
                throughput[name] = await loops.consume(broker, contender(name), partitions, handler())
                log(f"{name}: {throughput[name]['events_per_s']:,} events/s", began)

            for name, empty in (("c0_empty_faust", True), ("c_naive_faust", False)):
                faust_app = contender(name.replace("_", "-"))
                throughput[name] = await timed(broker, faust_app, partitions, [start_naive_agent(
                    faust_app, workdir, name, empty)], sizes.timeout)
                log(f"{name}: {throughput[name]['events_per_s']:,} events/s", began)

            one = contender("d1-worker")
            # created here without compaction, so that the broker cannot shrink what (g) counts
            await broker.create_topics([changelog(one, TABLES[0])], sizes.partitions, {"cleanup.policy": "delete"})
            throughput["d1_worker"] = await timed(broker, one, partitions, [start_worker(one, workdir, "d1-worker")],
                                                  sizes.timeout, profile)
            log(f"d1_worker: {throughput['d1_worker']['events_per_s']:,} events/s", began)
            two = contender("d2-workers")
            # both in the group before there is anything to read: the input again, after its first copy
            await broker.commit_empty_group(two.app_id, await broker.end_offsets(partitions))
            pair = [start_worker(two, workdir, f"d2-worker-{n}", DUNNING_SESSION_TIMEOUT="60") for n in (1, 2)]
            opened = await hold_until_joined(two, pair, lambda: broker.prefill(inputs, lines), sizes.timeout)
            throughput["d2_workers"] = await timed(broker, two, partitions, pair, sizes.timeout, opened_at=opened)
            log(f"d2_workers: {throughput['d2_workers']['events_per_s']:,} events/s", began)
            for name in ("c0_empty_faust", "c_naive_faust", "d1_worker", "d2_workers"):
                result["peak_rss_mb"][name] = throughput[name].pop("peak_rss_mb")

            records, size = await broker.topic_bytes(changelog(one, TABLES[0]), sizes.partitions)
            result["changelog"] = {
                "records": records, "bytes": size, "bytes_per_event": round(size / total),
                "input_mean_bytes": result["workload"]["input_mean_bytes"],
                "ratio": round(size / total / result["workload"]["input_mean_bytes"], 2)}
            log(f"changelog: {size / 1e6:,.1f} MB in {records:,} records", began)
            if throughput_only:
                return result

            plan = await sweeps(broker, run, sizes, lines, workdir, began, result)
            result["failover"] = []
            for standbys in (0, 1):  # the plan of the last (largest) sweep
                failover = await run_failover(broker, run, plan, workdir, standbys)
                result["failover"].append(failover)
                log(f"failover, {standbys} standbys: first notice {failover['first_notice_s']} s after the kill, "
                    f"{failover['first_notice_after_rebalance_s']} s after the rebalance", began)
        finally:
            log(f"deleted {await broker.delete_run_topics(run.prefix)} topics of {run.prefix}", began)
    result["state"] = state_sizes(sizes.state_accounts, sizes.state_days, sizes.seed, sizes.partitions)
    log(f"state sizes: mean {result['state']['mean_bytes']:,} bytes", began)
    return result


async def sweeps(broker: Broker, run: Run, sizes: Sizes, lines: list[bytes], workdir: Path, began: float,
                 result: dict, profile: Path | None = None) -> Plan:
    """(e) and (i) at each size of sizes.sweep_replicas, into result["clock_sweep"] and result["peak_rss_mb"];
    returns the plan of the last (largest) size."""
    simulation = simulate(lines, START + timedelta(days=sizes.days))
    log(f"simulated {len(simulation.accounts):,} accounts with hourly ticks", began)
    result["clock_sweep"] = []
    for replicas in sizes.sweep_replicas:
        plan = Plan(simulation, replicas, sizes.due_share, sizes.ticks, sizes.seed)
        name = f"sweep-{plan.accounts}"
        sweep = await run_sweep(broker, run, plan, workdir, name,
                                profile.with_name(f"{profile.name}-{plan.accounts}") if profile else None)
        result["peak_rss_mb"][name] = sweep.pop("peak_rss_mb")
        result["clock_sweep"].append(sweep)
        log(f"{name}: restore {sweep['restore']['seconds']} s, {sweep['tick_s']} s per tick", began)
    return plan


async def measure_million(sizes: Sizes, bootstrap: str, workdir: Path, began: float, profile: Path | None) -> dict:
    """--million: the clock sweep and restore alone, at the event file's accounts and at 100 times them (1M)."""
    run = Run(bootstrap, sizes.partitions)
    lines = to_jsonl_bytes(generate(sizes.accounts, sizes.days, START, sizes.seed))
    result: dict = {"workload": {"accounts": sizes.accounts, "days": sizes.days, "seed": sizes.seed,
                                 "partitions": sizes.partitions, "lines": len(lines), "topics_prefix": run.prefix},
                    "peak_rss_mb": {}}
    async with Broker(bootstrap) as broker:
        try:
            await sweeps(broker, run, sizes, lines, workdir, began, result, profile)
        finally:
            log(f"deleted {await broker.delete_run_topics(run.prefix)} topics of {run.prefix}", began)
    small, large = result["clock_sweep"][0], result["clock_sweep"][-1]
    # what one more account held costs the worker: the difference between the two sizes, after their ticks
    result["rss_kib_per_account"] = round((large["rss_mb"]["after_ticks"] - small["rss_mb"]["after_ticks"]) * 1024
                                          / (large["accounts"] - small["accounts"]), 3)
    return result


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks that everything runs")
    parser.add_argument("--bootstrap", default=Settings().bootstrap_servers,
                        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:19092)")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results", help="where the JSON and PNG go")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy samples the single worker (d) into <results>/<date>-worker.pyspy.txt")
    parser.add_argument("--million", action="store_true",
                        help="only the clock sweep and restore, at 10k and 1M accounts (about 15 minutes): "
                             "<results>/<date>-million.json; with --profile, py-spy on each worker's restore and ticks")
    parser.add_argument("--throughput", action="store_true",
                        help="only (a)-(d) and (g), full size (about 3 minutes): <results>/<date>-throughput.json")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else MILLION if args.million else FULL
    gc.set_threshold(*WORKER_GC_THRESHOLD)  # the worker's, for (a) and (b) in this process
    # aiokafka logs its retries as errors (a new topic not yet in the metadata, its leader not yet elected);
    # what does fail raises in the harness
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    began, now = time.perf_counter(), datetime.now(timezone.utc)
    workdir = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    load = os.getloadavg()[0]
    stem = args.results / f"{now:%Y-%m-%d}{'-million' if args.million else '-throughput' if args.throughput else ''}"
    args.results.mkdir(parents=True, exist_ok=True)
    try:
        if args.million:
            result = asyncio.run(measure_million(sizes, args.bootstrap, workdir, began,
                                                 stem if args.profile else None))
        else:
            result = asyncio.run(measure(sizes, args.bootstrap, workdir, began,
                                         stem.with_name(f"{stem.name}-worker.pyspy.txt") if args.profile else None,
                                         args.throughput))
    except BaseException:
        print(f"bench: failed; the logs are in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir)
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "rules", "schemas", "streams")
    mode = "quick" if args.quick else "million" if args.million else "throughput" if args.throughput else "full"
    result = {"bench": "live", "mode": mode, "utc": now.isoformat(timespec="seconds"),
              "commit": git("rev-parse", "--short", "HEAD") + ("+changes" if changed else ""),
              "python": platform.python_version(), "cpu": cpu_name(), "cores": os.cpu_count(),
              "load": [round(load, 2), round(os.getloadavg()[0], 2)], "sizes": asdict(sizes), **result,
              "seconds": round(time.perf_counter() - began)}
    if args.million:
        result["targets"] = report.million_targets(result)
        stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        print(report.million_summary(result))
        print(f"\nwrote {stem}.json")
        return 0
    result["targets"] = report.targets(result)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    if args.throughput:
        print(report.summary(result))
        print(f"\nwrote {stem}.json")
        return 0
    report.chart(result, stem.with_suffix(".png"))
    print(report.summary(result))
    print(f"\nwrote {stem}.json and {stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
