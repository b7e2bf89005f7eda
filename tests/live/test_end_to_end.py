"""End to end against the real broker: events in with kcat, notices out with kcat, equal to the simulator's."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest
from livekit import (
    WORKLOAD_START,
    generated,
    Item,
    compare_audit,
    compare_notices,
    compare_states,
    phases,
    schedule,
    simulate,
    simulate_in_order,
    stored_accounts,
    tick_item,
)

from schemas.events import parse_event
from streams.runtime.processor import partition_for

pytestmark = pytest.mark.broker

START = WORKLOAD_START
# 30 accounts for 40 days, then 10 more days: 1200 hourly ticks in ~300 phases. Each phase waits for the group
# to commit, so the worker commits every 0.1 s here (1 s by default).
ACCOUNTS, DAYS, EXTRA_DAYS, SEED = 30, 40, 10, 7
EVERY = timedelta(hours=1)


@pytest.mark.live_namespace(commit_interval=0.1)
def test_generated_workload_gives_the_simulators_notices(namespace, workers, kcat, probe, publisher):
    items = generated(ACCOUNTS, DAYS, SEED)
    until = START + timedelta(days=DAYS + EXTRA_DAYS)
    plan = phases(schedule(items, EVERY, until), namespace.topics)
    simulation = simulate(items, EVERY, until)
    expected = simulation.notices
    # billing's write-offs and collectors' settlements are in the stream; offers come on day 60, after it
    assert len(expected) > 100 and {"reminder", "urgent_notice", "handoff", "write_off", "settlement"} <= {
        n.kind for n in expected}
    assert any(item.event.type == "platform.outage" for item in items)

    worker = workers("w1")
    started = time.monotonic()
    publisher.run(plan, [worker])
    live = kcat.notices()
    print(f"{len(items)} events, {len(plan)} phases in {time.monotonic() - started:.1f} s; "
          f"{len(live)} notices")

    compare_notices(live, expected)
    assert kcat.consume(namespace.topics.dead_letter) == []
    # each notice is on the partition of its account (the worker writes where the input came from)
    for line in kcat.consume(namespace.topics.reminders, fmt="%p\t%k\n"):
        partition, key = line.split("\t")
        assert int(partition) == partition_for(key, namespace.partitions), line
    # and every account ends in the simulator's state (balances, arrangements, pending notices, journal)
    compare_states(stored_accounts(kcat, namespace), simulation.accounts)


def _event(n: int, type_: str, account: str, at: str, **fields: str) -> Item:
    raw = json.dumps({"event_id": f"cross-{n}", "type": type_, "account_id": account, "occurred_at": at, **fields},
                     separators=(",", ":")).encode()
    return Item(parse_event(raw), raw)


def _hours(first: datetime, last: datetime) -> list[Item]:
    ticks, at = [], first
    while at <= last:
        ticks.append(tick_item(at))
        at += timedelta(hours=1)
    return ticks


@pytest.mark.live_namespace(commit_interval=0.1)
def test_payment_crossing_a_tick(namespace, workers, kcat, probe, publisher):
    """Payments made before local midnight arrive after the midnight tick that made their debt overdue.

    X pays on its due day (23:30); the day-1 reminder the midnight tick queued (held for the 08:00 contact
    window) must not go out. Y pays at 23:30 on day 6; the day-7 tick has already opened a collector handoff,
    which the payment must recall. Both end with nothing owed, as in the simulator fed the same crossed order, and
    with its audit trail (the withdrawn reminder, the recall)."""
    invoices = [
        _event(1, "invoice.issued", "X", "2026-10-01T10:00:00+08:00", invoice_id="X-1", amount="500.00",
               currency="CNY", due_date="2026-10-10"),
        _event(2, "invoice.issued", "Y", "2026-10-01T10:00:00+08:00", invoice_id="Y-1", amount="800.00",
               currency="CNY", due_date="2026-10-10"),
    ]
    pay_x = _event(3, "payment.received", "X", "2026-10-10T23:30:00+08:00", payment_id="X-P", amount="500.00",
                   currency="CNY", invoice_id="X-1")
    pay_y = _event(4, "payment.received", "Y", "2026-10-16T23:30:00+08:00", payment_id="Y-P", amount="800.00",
                   currency="CNY", invoice_id="Y-1")
    at = datetime.fromisoformat
    crossed = [
        invoices,
        _hours(at("2026-10-01T10:00:00+08:00"), at("2026-10-11T00:00:00+08:00")),  # the tick before X's payment
        [pay_x],
        _hours(at("2026-10-11T01:00:00+08:00"), at("2026-10-17T00:00:00+08:00")),  # the tick before Y's payment
        [pay_y],
        _hours(at("2026-10-17T01:00:00+08:00"), at("2026-10-20T00:00:00+08:00")),
    ]
    oracle = simulate_in_order([item for phase in crossed for item in phase])
    worker = workers("w1")
    publisher.run(crossed, [worker])
    live = kcat.notices()
    compare_notices(live, oracle.notices)

    x = [n for n in live if n.account_id == "X"]
    assert [n.rule_id for n in x] == ["due-soon"], x  # the reminder before the due date, none after it
    y = sorted((n for n in live if n.account_id == "Y"), key=lambda n: n.issued_at)
    handoffs = [(n.to, n.action) for n in y if n.kind == "handoff"]
    assert handoffs == [("collector", "open"), ("collector", "recall")], handoffs
    assert not [n for n in y if n.kind != "handoff" and n.issued_at >= at("2026-10-17T00:00:00+08:00")]

    stored = stored_accounts(kcat, namespace)
    for account, invoice in (("X", "X-1"), ("Y", "Y-1")):
        state = stored[account]
        assert state.invoices[invoice].balance == 0 and state.invoices[invoice].status != "open", state
        assert not state.credit or not any(state.credit.values()), state.credit
    compare_states(stored, oracle.accounts)  # the whole state, as the simulator fed the same crossed order has it
    compare_audit(kcat.audit(), oracle)

