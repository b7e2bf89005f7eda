"""Core throughput: decode + validate + step on one core, the way the live worker would drive the engine.

    .venv/bin/python bench/core.py                      # 1M input events over 100k accounts
    .venv/bin/python bench/core.py --events 200000 --accounts 20000 --profile

Untimed set-up: a realistic stream from streams.generators.generate (a template of --template-accounts accounts over enough
days to give --events/--accounts events per account, replicated across the remaining accounts with renamed
ids), serialised to JSON lines, with an hourly platform clock tick ("*") inserted as the runtime's clock does.

Timed loop, for each raw line: parse_event(raw); then
  * an input event: look up the account state (None: step creates it), engine.apply_platform, engine.step,
    then push the outcome's wakeup on a heap (the scheduling the runtime needs to skip idle accounts);
  * a clock tick: engine.apply_platform, pop every account whose wakeup <= tick.at from the heap (as
    rules/simulator.py and streams/runtime/processor.py do; keyed on epoch seconds like the latter),
    engine.step(account, tick) for each, and reschedule it;
  * a platform outage: engine.apply_platform and reschedule every account (engine.wakeup).

Reported: (a) input events/s over decode+validate+apply_platform+step only (step works out the account's next
wakeup too); (b) everything (input events, their scheduling, ticks and the account-tick evaluations they cause)
per wall second; (c) account-tick evaluations/s over the tick handling time. A one-line JSON result ends the
output.
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import heapq
import io
import json
import math
import platform as host
import pstats
import resource
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout (or a scratch copy) without installing it

from rules.engine import Engine  # noqa: E402
from rules.loader import load_ruleset  # noqa: E402
from rules.state import PlatformState  # noqa: E402
from schemas.events import PLATFORM_ACCOUNT, ClockTick, PlatformOutage, parse_event  # noqa: E402
from streams.generators.generate import generate, to_jsonl_bytes  # noqa: E402

START = datetime.fromisoformat("2026-11-01T00:00:00+08:00")
_UNSCHEDULED = object()


# ---------------------------------------------------------------------------------------------- the input


def _template(accounts: int, per_account: float, seed: int, log) -> tuple[list[dict], int]:
    """Generates `accounts` accounts over enough days to average `per_account` events each."""
    pilot_accounts = min(accounts, 2000)
    pilot = generate(pilot_accounts, 30, START, seed)
    rate = max(len(pilot) / max(pilot_accounts, 1) / 30, 1e-3)  # events per account per day
    days = max(1, math.ceil(per_account / rate * 1.05))
    while True:
        events = generate(accounts, days, START, seed)
        if len(events) >= per_account * accounts or days > 3650:
            log(f"template: {accounts} accounts x {days} days -> {len(events)} events")
            return events, days
        days = math.ceil(days * 1.2)


def build_lines(total: int, accounts: int, template_accounts: int, seed: int, tick_every: timedelta,
                log) -> tuple[list[bytes], dict]:
    """The raw lines the timed loop reads: input events (replicated template) with clock ticks between them."""
    template_accounts = max(1, min(template_accounts, accounts))
    replicas = math.ceil(accounts / template_accounts)
    events, days = _template(template_accounts, total / accounts, seed, log)
    lines_of = to_jsonl_bytes(events)
    out: list[bytes] = []
    inputs = ticks = outages = 0
    next_tick: datetime | None = None
    last_at: datetime | None = None
    for event, line in zip(events, lines_of):
        if inputs >= total:
            break
        at = datetime.fromisoformat(event["occurred_at"])
        if next_tick is None:
            next_tick = at
        while next_tick <= at:  # ticks at or before an event come first, as in Simulation.run
            out.append(_tick_line(next_tick))
            ticks += 1
            next_tick += tick_every
        last_at = at
        if event["account_id"] == PLATFORM_ACCOUNT:  # a platform outage: once, not per replica, not counted
            out.append(line)
            outages += 1
            continue
        index = int(event["account_id"].rsplit("-", 1)[1])
        for replica in range(replicas):
            target = replica * template_accounts + index
            if target >= accounts or inputs >= total:
                continue
            out.append(renamed(line, index, target))
            inputs += 1
    meta = {"input_events": inputs, "ticks": ticks, "tick_minutes": tick_every.total_seconds() / 60,
            "outages": outages, "days_generated": days, "template_accounts": template_accounts, "replicas": replicas,
            "stream_start": START.isoformat(), "stream_end": last_at.isoformat() if last_at else None}
    return out, meta


def renamed(raw: bytes, index: int, target: int) -> bytes:
    """An event line or stored state of template account `index`, rewritten for account `target`: every id
    derived from an account carries "-<6-digit index>", and the rewrite keeps lengths (binary codecs stay valid)."""
    return raw if index == target else raw.replace(b"-%06d" % index, b"-%06d" % target)


def _tick_line(at: datetime) -> bytes:
    stamp = at.isoformat()
    return json.dumps({"event_id": f"tick:{stamp}", "type": "clock.tick", "account_id": PLATFORM_ACCOUNT,
                       "occurred_at": stamp, "at": stamp}, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------- the loop


def run(lines: list[bytes], engine: Engine) -> dict:
    clock = time.perf_counter
    parse = parse_event
    apply_platform = engine.apply_platform
    step = engine.step
    wakeup = engine.wakeup
    platform = PlatformState()
    accounts: dict = {}
    wake: dict = {}
    heap: list = []
    notices = collections.Counter()
    t_input = t_schedule = t_tick = t_other = 0.0
    n_input = n_ticks = n_other = evaluations = 0

    def schedule(account_id: str, when: datetime | None) -> None:
        # Keyed on epoch seconds, as streams/runtime/processor.py keys its wakeup index; stale entries are skipped.
        key = None if when is None else when.timestamp()
        if wake.get(account_id, _UNSCHEDULED) != key:
            wake[account_id] = key
            if key is not None:
                heapq.heappush(heap, (key, account_id))

    collecting = {"since": 0.0, "seconds": 0.0}

    def time_collections(phase: str, info: dict) -> None:
        if phase == "start":
            collecting["since"] = clock()
        else:
            collecting["seconds"] += clock() - collecting["since"]

    gc.callbacks.append(time_collections)
    started = clock()
    cpu_started = time.process_time()
    for raw in lines:
        t0 = clock()
        event = parse(raw)
        kind = type(event)
        if kind is ClockTick and event.account_id == PLATFORM_ACCOUNT:
            if not apply_platform(platform, event):
                n_ticks += 1  # a repeated or late tick changes nothing
                t_tick += clock() - t0
                continue
            at = event.at.timestamp()
            due = []
            while heap and heap[0][0] <= at:
                when, account_id = heapq.heappop(heap)
                if wake.get(account_id) == when:
                    del wake[account_id]
                    due.append(account_id)
            due.sort()
            for account_id in due:
                outcome = step(accounts[account_id], event, platform)
                for notice in outcome.notices:
                    notices[notice.kind] += 1
                schedule(account_id, outcome.wakeup)
            evaluations += len(due)
            n_ticks += 1
            t_tick += clock() - t0
        elif kind is PlatformOutage:
            apply_platform(platform, event)
            for account_id, state in accounts.items():
                schedule(account_id, wakeup(state, platform))
            n_other += 1
            t_other += clock() - t0
        else:
            account_id = event.account_id
            apply_platform(platform, event)
            outcome = step(accounts.get(account_id), event, platform)
            accounts[account_id] = outcome.state
            for notice in outcome.notices:
                notices[notice.kind] += 1
            t1 = clock()
            t_input += t1 - t0
            schedule(account_id, outcome.wakeup)
            t_schedule += clock() - t1
            n_input += 1
    wall = clock() - started
    cpu = time.process_time() - cpu_started
    gc.callbacks.remove(time_collections)
    return {
        "input_events": n_input, "ticks": n_ticks, "outages": n_other, "accounts": len(accounts),
        "seconds": wall, "cpu_seconds": cpu, "input_seconds": t_input, "schedule_seconds": t_schedule,
        "tick_seconds": t_tick, "outage_seconds": t_other, "tick_evaluations": evaluations,
        "gc_seconds": collecting["seconds"],
        "notices": dict(sorted(notices.items())),
    }


# ---------------------------------------------------------------------------------------------- reporting


def summarise(result: dict, meta: dict, profiled: bool) -> dict:
    wall = result["seconds"]
    lines = result["input_events"] + result["ticks"] + result["outages"]
    summary = {
        "bench": "core",
        "date": date.today().isoformat(),
        "python": host.python_version(),
        "cpu": cpu_name(),
        "profiled": profiled,
        "gc_threshold": list(gc.get_threshold()),
        "input_events": result["input_events"],
        "clock_ticks": result["ticks"],
        "outages": result["outages"],
        "accounts": result["accounts"],
        "seconds": round(wall, 3),
        "cpu_seconds": round(result["cpu_seconds"], 3),
        "a_input_events_per_s": _rate(result["input_events"], result["input_seconds"]),
        "b_input_events_per_wall_s": _rate(result["input_events"], wall),
        "b_lines_per_wall_s": _rate(lines, wall),
        "tick_evaluations": result["tick_evaluations"],
        "c_tick_evaluations_per_s": _rate(result["tick_evaluations"], result["tick_seconds"]),
        "seconds_split": {name: round(result[f"{name}_seconds"], 3) for name in ("input", "schedule", "tick", "outage")},
        "notices": result["notices"],
        "gc_seconds": round(result["gc_seconds"], 3),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "stream": meta,
    }
    return summary


def _rate(count: int, seconds: float) -> int | None:
    return round(count / seconds) if seconds else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return host.processor() or "unknown"


def print_summary(s: dict, out) -> None:
    target = 100_000
    a = s["a_input_events_per_s"] or 0
    split = s["seconds_split"]
    print("", file=out)
    print(f"core bench  {s['date']}  Python {s['python']}  {s['cpu']}  gc threshold {tuple(s['gc_threshold'])}"
          f"{'  (under cProfile)' if s['profiled'] else ''}", file=out)
    print(f"  input events      {s['input_events']:>12,}   over {s['accounts']:,} accounts", file=out)
    print(f"  clock ticks       {s['clock_ticks']:>12,}   every {s['stream']['tick_minutes']:g} min, account '*';"
          f" platform outages {s['outages']}", file=out)
    print(f"  account-tick evals{s['tick_evaluations']:>12,}", file=out)
    print(f"  wall seconds      {s['seconds']:>12,.2f}   (input {split['input']:.2f},"
          f" scheduling {split['schedule']:.2f},"
          f" ticks {split['tick']:.2f}, outages {split['outage']:.2f})", file=out)
    if s["cpu_seconds"] < 0.95 * s["seconds"]:
        print(f"  note: the process had the CPU only {s['cpu_seconds'] / s['seconds']:.0%} of the wall time "
              f"(a busy machine); the rates below are per wall second", file=out)
    print(f"  (a) input events/s, decode+validate+step   {a:>10,}   target {target:,}: "
          f"{'met' if a >= target else 'NOT met'}", file=out)
    print(f"  (b) input events/s, everything incl. ticks {s['b_input_events_per_wall_s'] or 0:>10,}"
          f"   ({s['b_lines_per_wall_s'] or 0:,} lines/s)", file=out)
    print(f"  (c) account-tick evaluations/s             {s['c_tick_evaluations_per_s'] or 0:>10,}", file=out)
    print(f"  notices           {sum(s['notices'].values()):>12,}   {s['notices']}", file=out)
    print(f"  garbage collection{s['gc_seconds']:>12,.2f} s of the wall seconds, in whichever phase it struck",
          file=out)
    print(f"  max RSS           {s['max_rss_mb']:>9,} MB", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="input events (ticks come on top)")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--template-accounts", type=int, default=25_000,
                        help="accounts actually generated; the rest replicate them with renamed ids")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tick-minutes", type=int, default=60, help="clock tick interval (default 60)")
    parser.add_argument("--rules", default=str(ROOT / "rules" / "default.yaml"))
    parser.add_argument("--gc-threshold", metavar="G0[,G1[,G2]]",
                        help="gc.set_threshold for the timed loop, e.g. 700,10,10 for Python's own "
                             "(default: the worker's, streams.runtime.worker.WORKER_GC_THRESHOLD)")
    parser.add_argument("--profile", action="store_true", help="run under cProfile; print the top 25 by tottime")
    args = parser.parse_args(argv)
    if args.events < 1 or args.accounts < 1:
        parser.error("--events and --accounts must be positive")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    lines, meta = build_lines(args.events, args.accounts, args.template_accounts, args.seed,
                              timedelta(minutes=args.tick_minutes), log)
    log(f"set-up: {len(lines):,} lines ({meta['input_events']:,} events + {meta['ticks']:,} ticks) "
        f"in {time.perf_counter() - started:.1f}s (not timed)")
    engine = Engine(load_ruleset(args.rules))
    gc.collect()
    if args.gc_threshold:
        gc.set_threshold(*(int(part) for part in args.gc_threshold.split(",")))
    else:
        from streams.runtime.worker import WORKER_GC_THRESHOLD

        gc.set_threshold(*WORKER_GC_THRESHOLD)
    if args.profile:
        profiler = cProfile.Profile()
        result = profiler.runcall(run, lines, engine)
    else:
        result = run(lines, engine)
    summary = summarise(result, meta, args.profile)
    print_summary(summary, sys.stdout)
    if args.profile:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue())
    print(json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
