"""Offline parts of bench/live.py: the simulator run with the worker's hourly clock, the account states it ends
with as the worker stores them (streams.runtime.processor.encode_account), and (h) their sizes."""
from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta

from core import START  # first: core puts the repository on sys.path
from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from schemas.events import parse_event
from streams.generators.generate import generate, to_jsonl_bytes
from streams.runtime.processor import encode_account, partition_for
from streams.runtime.settings import DEFAULT_RULES

TICK = timedelta(hours=1)  # the worker's default clock (DUNNING_TICK_INTERVAL)


def simulate(lines: list[bytes], until: datetime) -> Simulation:
    """The event file through the simulator, with a tick every hour from the first event up to `until`."""
    simulation = Simulation(Engine(load_ruleset(DEFAULT_RULES)))
    simulation.run([parse_event(line) for line in lines], TICK, until)
    return simulation


def wakeup(simulation: Simulation, account_id: str) -> datetime | None:
    """When the account next needs a tick, as the worker's index has it."""
    return simulation.engine.wakeup(simulation.accounts[account_id], simulation.platform)


def stored(simulation: Simulation, account_id: str, partition: int, wake: datetime | None) -> bytes:
    """The account's value in the worker's accounts table (and so in its changelog)."""
    return encode_account(simulation.accounts[account_id], partition, wake)


def state_sizes(accounts: int, days: int, seed: int, partitions: int) -> dict:
    """(h) Stored bytes per account after `days` generated days on `accounts` accounts."""
    simulation = simulate(to_jsonl_bytes(generate(accounts, days, START, seed)), START + timedelta(days=days))
    sizes = sorted(len(stored(simulation, account, partition_for(account, partitions), wakeup(simulation, account)))
                   for account in simulation.accounts)
    return {"accounts": len(sizes), "days": days, "mean_bytes": round(statistics.fmean(sizes)),
            "p99_bytes": sizes[math.ceil(0.99 * len(sizes)) - 1], "max_bytes": sizes[-1]}
