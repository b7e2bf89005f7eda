"""How fast the core loop could be at best: the part of core.py's (a) that no engine can skip, on the same stream.

    .venv/bin/python bench/ceiling.py                     # 1M input events over 100k accounts, as core.py
    .venv/bin/python bench/ceiling.py --events 100000 --accounts 10000

Two loops over the input events only (ticks and outages left out), one core:
  decode       parse_event(raw), the result dropped;
  bookkeeping  parse_event(raw), then what every correct engine must do with each event before deciding
               anything: find or create the account's state, drop a redelivered event_id, remember the id, and
               append the event to the account's audit trail. The states stay in memory, as in core.py.
The engine's decisions (balances, days past due, episodes, rules, notices) come on top of the second figure, so
1e6 / (bookkeeping events/s) is what is left of a 10 us budget per event (100k/s) for them.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from datetime import timedelta

from core import build_lines  # first: core puts the repository on sys.path
from rules.engine.retention import remember
from rules.state import AccountState, JournalEntry
from schemas.events import PLATFORM_ACCOUNT, parse_event


def decode(lines: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in lines:
        parse_event(raw)
    return time.perf_counter() - started


def bookkeeping(lines: list[bytes]) -> float:
    accounts: dict[str, AccountState] = {}
    started = time.perf_counter()
    for raw in lines:
        event = parse_event(raw)
        state = accounts.get(event.account_id)
        if state is None:
            state = accounts[event.account_id] = AccountState(event.account_id)
        if not remember(state, event.event_id, event.occurred_at):
            continue
        state.case_events.append(JournalEntry(event.occurred_at, event.type, event.event_id, {}))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--template-accounts", type=int, default=25_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    lines, _ = build_lines(args.events, args.accounts, args.template_accounts, args.seed, timedelta(hours=1),
                           lambda message: print(message, file=sys.stderr))
    platform_wide = b'"account_id":"%s"' % PLATFORM_ACCOUNT.encode()  # clock ticks and outages
    inputs = [raw for raw in lines if platform_wide not in raw]
    from streams.runtime.worker import WORKER_GC_THRESHOLD

    result = {"bench": "ceiling", "input_events": len(inputs)}
    for name, loop in (("decode", decode), ("bookkeeping", bookkeeping)):
        gc.collect()
        gc.set_threshold(*WORKER_GC_THRESHOLD)
        seconds = loop(inputs)
        result[f"{name}_events_per_s"] = round(len(inputs) / seconds)
        result[f"{name}_us_per_event"] = round(seconds / len(inputs) * 1e6, 2)
        print(f"  {name:<12} {result[f'{name}_events_per_s']:>10,} events/s   "
              f"{result[f'{name}_us_per_event']:5.2f} us per event")
    left = 10 - result["bookkeeping_us_per_event"]
    print(f"  left of 10 us per event (100k/s) for the engine's decisions: {left:.2f} us")
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
