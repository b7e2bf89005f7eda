"""`make demo`: a month of generated billing for a few hundred accounts through a live worker.

Starts a worker on the local broker under a fresh topic namespace, prints notices as they arrive while the
events and hourly-or-coarser ticks are published in the simulator's order, then checks the live notices and
audit trail against `dunning simulate` on the same input and says where to look next.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

from aiokafka.structs import ConsumerRecord

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from schemas.events import parse_event
from schemas.notices import Notice
from streams.tools.args import duration
from streams.generators.generate import generate, to_jsonl_bytes
from streams.tools.live import publish, reader, tail, trail_differences, trails
from streams.runtime.settings import Settings, TopicNames

REPO = Path(__file__).resolve().parents[2]


def namespaced_env(run_id: str, web_port: int) -> dict[str, str]:
    """Environment for a worker whose topics and consumer group belong to this demo run only."""
    env = {"DUNNING_APP_ID": f"dunning-demo-{run_id}", "DUNNING_STATE_DIR": str(REPO / "var" / "demo" / run_id),
           "DUNNING_CLOCK_ENABLED": "false", "DUNNING_WEB_PORT": str(web_port), "DUNNING_PARTITIONS": "4",
           "DUNNING_COMMIT_INTERVAL": "0.1"}
    for field, default in TopicNames().model_dump().items():
        env[f"DUNNING_TOPIC__{field.upper()}"] = f"demo-{run_id}.{default}"
    return env


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = log_path.open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "streams.tools.cli", "worker"], env={**os.environ, **env},
                              stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 90
    while b"Worker]: Ready" not in log_path.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            sys.stdout.write(log_path.read_text(errors="replace")[-3000:])
            raise SystemExit("the worker did not start; its log is above")
        time.sleep(0.2)
    return worker


async def run(args: argparse.Namespace) -> int:
    run_id = datetime.now().strftime("%Y%m%d%H%M%S")
    workdir = REPO / "var" / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    start = datetime.fromisoformat(args.start)
    events_path = workdir / f"events-{run_id}.jsonl"
    lines = to_jsonl_bytes(generate(args.accounts, args.days, start, args.seed))
    events_path.write_bytes(b"".join(lines))  # for `dunning simulate --explain` afterwards
    events = [parse_event(line) for line in lines]
    until = start + timedelta(days=args.days)
    every = duration(args.tick)
    print(f"demo: {len(events)} billing events for {args.accounts} accounts over {args.days} days "
          f"({events_path.relative_to(REPO)}), ticks every {args.tick}")

    env = namespaced_env(run_id, args.web_port)
    os.environ.update(env)
    settings = Settings()
    log_path = workdir / f"worker-{run_id}.log"
    worker = start_worker(env, log_path)
    print(f"demo: worker ready (log {log_path.relative_to(REPO)}); notices as they arrive:\n")
    try:
        printer = asyncio.create_task(tail(settings, from_beginning=True, limit=None, idle_seconds=None))
        began = time.monotonic()
        await publish(settings, events, every, until, settle=True, out=open(os.devnull, "w"))
        await asyncio.sleep(2)  # the last notices reach the printer
        printer.cancel()
        elapsed = time.monotonic() - began
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    simulation = Simulation(Engine(load_ruleset(settings.rules)), audit=[])
    simulation.run(events, every, until)
    expected = {n.notice_id: n for n in simulation.notices}
    topics = settings.topic
    notices = await collect(settings, topics.notices)
    live = {n.notice_id: n for n in (Notice.model_validate_json(record.value) for record in notices)}
    audit = trails((record.key.decode(), record.value) for record in await collect(settings, [topics.audit]))
    audit_differences = trail_differences(audit, trails((r.account_id, r.to_json()) for r in simulation.audit))
    kinds = Counter(n.kind for n in simulation.notices)
    print(f"\ndemo: published {len(events)} events and their ticks in {elapsed:.0f} s")
    decisions = kinds["settlement"] + kinds["write_off"] + kinds["recovery"]
    print(f"demo: notices: {kinds['reminder']} reminders, {kinds['urgent_notice']} urgent notices, "
          f"{kinds['handoff']} handoffs, {kinds['offer']} settlement offers, {decisions} decisions to billing "
          "(settlements, write-offs, recoveries)")
    missing, extra = set(expected) - set(live), set(live) - set(expected)
    verdict = "the same notices" if not missing and not extra else f"{len(missing)} missing, {len(extra)} extra"
    print(f"demo: live worker vs `dunning simulate` on the same input: {verdict}")
    lines = sum(map(len, audit.values()))
    audit_verdict = (f"the same lines, account by account ({lines} lines, {len(audit)} accounts)"
                     if not audit_differences
                     else "{} accounts differ, first {}: {}".format(len(audit_differences),
                                                                    *next(iter(audit_differences.items()))))
    print(f"demo: live {topics.audit} vs `dunning simulate --audit`: {audit_verdict}")
    print(f"demo: try `dunning simulate --rules rules/default.yaml --events {events_path.relative_to(REPO)} "
          f"--tick {args.tick} --until {until.isoformat()} --explain | less`")
    print(f"demo: the worker served its web endpoints on http://127.0.0.1:{args.web_port}/ while it ran; "
          "Prometheus metrics at /metrics on that port; `make broker-stop` stops the broker")
    return 0 if not missing and not extra and not audit_differences else 1


async def collect(settings: Settings, topics: Sequence[str]) -> list[ConsumerRecord]:
    """Every record on these topics so far, each partition's in order."""
    consumer = reader(settings, topics, from_beginning=True)
    await consumer.start()
    found: list[ConsumerRecord] = []
    try:
        while batch := await consumer.getmany(timeout_ms=2000):
            for records in batch.values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.generators.demo", description=__doc__)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", default="2026-11-01T00:00:00+08:00")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tick", default="3h", help="simulated time between ticks (default 3h)")
    parser.add_argument("--web-port", type=int, default=6066)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
