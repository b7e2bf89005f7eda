"""Customers who answer to contacts: a generated billing stream (streams/generators/generate.py) run through a policy, where each
reminder, urgent notice or offer makes the customer pay what it names with a chosen probability, some hours later.

The payments are part of the stream that comes out, so `dunning simulate` with the same policy replays it
exactly, and `dunning report` can see whether a challenger that contacts earlier or more cures more. Each
response is drawn from a random number seeded by (seed, notice_id): the stream is reproducible.

    python -m streams.generators.respond --rules rules/examples/experiment.yaml --accounts 3000 --days 90 --chance 0.15 \\
        --seed 7 > events.jsonl
"""
from __future__ import annotations

import argparse
import heapq
import random
import sys
from datetime import datetime, timedelta
from typing import Iterable

from rules.policy import PolicyEngine, load_policy
from rules.report import CONTACT_KINDS
from rules.simulator import Simulation
from schemas.events import InputEvent, input_event_adapter, parse_event, tick
from schemas.notices import Notice
from streams.generators.generate import generate, to_jsonl_bytes

# A customer who answers pays between one hour and two days after the contact.
DELAY = (timedelta(hours=1), timedelta(days=2))


def respond(events: Iterable[InputEvent], engine: PolicyEngine, every: timedelta, until: datetime,
            chance: float, seed: int) -> list[InputEvent]:
    """The events, in time order, with the payments the customers made in answer to the policy's contacts."""
    simulation = Simulation(engine)
    queue = [(event.occurred_at, order, event) for order, event in enumerate(events)]
    heapq.heapify(queue)
    order, answered, result = len(queue), set(), []
    next_tick = queue[0][0] if queue else until + every
    while queue or next_tick <= until:
        if not queue or next_tick <= queue[0][0]:  # ticks at or before an event come first, as in with_ticks
            released = simulation.feed(tick(next_tick))
            next_tick += every
        else:
            _, _, event = heapq.heappop(queue)
            result.append(event)
            released = simulation.feed(event)
        for notice in released:
            for payment in _answer(notice, chance, seed, answered):
                heapq.heappush(queue, (payment.occurred_at, order, payment))
                order += 1
    return result


def _answer(notice: Notice, chance: float, seed: int, answered: set[str]) -> list[InputEvent]:
    """The payments a contacted customer makes, if they answer: each invoice the notice names, once."""
    if notice.kind not in CONTACT_KINDS:
        return []
    rng = random.Random(f"respond/{seed}/{notice.notice_id}")
    if rng.random() >= chance:
        return []
    at = notice.issued_at + DELAY[0] + (DELAY[1] - DELAY[0]) * rng.random()
    payments = []
    for invoice in notice.invoices:
        if invoice.invoice_id in answered or invoice.amount_due <= 0:
            continue
        answered.add(invoice.invoice_id)
        payments.append(input_event_adapter.validate_python({
            "event_id": f"answer-{notice.notice_id}-{invoice.invoice_id}", "type": "payment.received",
            "account_id": notice.account_id, "occurred_at": at.isoformat(),
            "payment_id": f"answer-{invoice.invoice_id}", "amount": str(invoice.amount_due),
            "currency": invoice.currency, "invoice_id": invoice.invoice_id,
        }))
    return payments


def main(argv: list[str] | None = None) -> int:
    from streams.tools.args import aware_time, duration

    parser = argparse.ArgumentParser(prog="python -m streams.generators.respond", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", required=True, help="the policy the customers are contacted by (a ruleset or "
                                                       "an experiment)")
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--start", type=aware_time, default=aware_time("2026-11-01T00:00:00+08:00"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chance", type=float, default=0.15, help="probability that a contact is answered by a "
                                                                   "payment (default 0.15)")
    parser.add_argument("--tick", type=duration, default=timedelta(hours=1))
    parser.add_argument("--until", type=aware_time, help="tick up to this time (default: start + days + 60 days)")
    args = parser.parse_args(argv)
    until = args.until or args.start + timedelta(days=args.days + 60)
    base = [parse_event(line) for line in to_jsonl_bytes(generate(args.accounts, args.days, args.start, args.seed))]
    events = respond(base, PolicyEngine(load_policy(args.rules)), args.tick, until, args.chance, args.seed)
    sys.stdout.buffer.writelines(event.model_dump_json(exclude_none=True).encode() + b"\n" for event in events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
