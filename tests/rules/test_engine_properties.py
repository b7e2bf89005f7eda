"""Properties over random event histories: at-least-once delivery and the tick schedule change nothing."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from rules.state import REDELIVERY_WINDOW
from schemas.events import input_event_adapter, tick

START = datetime.fromisoformat("2026-10-01T00:00:00+08:00")
DAYS = 60
UNTIL = START + timedelta(days=DAYS)
ENGINE = Engine(load_ruleset(Path(__file__).resolve().parents[2] / "rules" / "default.yaml"))
ACCOUNTS = ("A", "B")
INVOICES = ("I1", "I2", "I3")
money = st.integers(min_value=1, max_value=12000).map(lambda cents: f"{cents // 100}.{cents % 100:02d}")
day = st.integers(min_value=-10, max_value=50).map(lambda d: (START + timedelta(days=d)).date().isoformat())


def _event(kind: str, draw) -> dict:
    invoice = draw(st.sampled_from(INVOICES))
    if kind == "invoice.issued":
        return {"invoice_id": invoice, "amount": draw(money), "currency": "CNY", "due_date": draw(day)}
    if kind == "payment.received":
        named = draw(st.one_of(st.none(), st.just(invoice)))
        return {"payment_id": f"P{draw(st.integers(0, 5))}", "amount": draw(money), "currency": "CNY",
                **({"invoice_id": named} if named else {})}
    if kind == "payment.failed":
        return {"payment_id": "F", "amount": draw(money), "currency": "CNY",
                "reason": draw(st.sampled_from(["insufficient_funds", "invalid_payment_method", "system_error"]))}
    if kind in ("dispute.opened", "dispute.resolved", "invoice.cancelled"):
        return {"invoice_id": invoice}
    if kind == "invoice.adjusted":
        return {"invoice_id": invoice, "amount": draw(money)}
    if kind == "debt.written_off":
        return draw(st.sampled_from([{"reason": "uncollectible"}, {"invoice_ids": [invoice], "reason": "fraud"}]))
    if kind == "account.updated":
        return draw(st.sampled_from([{"risk_tier": "high"}, {"risk_tier": "standard"},
                                     {"timezone": "America/New_York"}, {"opted_out_channels": ["sms"]}]))
    arrangement = {"arrangement_id": f"AR{draw(st.integers(0, 2))}"}
    shape = draw(st.sampled_from(["promise_to_pay", "extension", "installments", "settlement"]))
    if shape == "settlement":
        return {**arrangement, "kind": shape, "by_date": draw(day), "amount": draw(money)}
    if shape == "promise_to_pay":
        return {**arrangement, "kind": shape, "promised_date": draw(day), "amount": draw(money)}
    if shape == "extension":
        return {**arrangement, "kind": shape, "new_due_date": draw(day)}
    first = draw(st.integers(0, 40))
    return {**arrangement, "kind": shape, "schedule": [
        {"due_date": (START + timedelta(days=first)).date().isoformat(), "amount": draw(money)},
        {"due_date": (START + timedelta(days=first + 10)).date().isoformat(), "amount": draw(money)}]}


@st.composite
def histories(draw):
    kinds = ["invoice.issued"] * 4 + ["payment.received"] * 3 + [
        "payment.failed", "dispute.opened", "dispute.resolved", "invoice.adjusted", "invoice.cancelled",
        "account.updated", "arrangement.agreed", "debt.written_off"]
    count = draw(st.integers(min_value=1, max_value=18))
    minutes = sorted(draw(st.lists(st.integers(0, 50 * 24 * 60), min_size=count, max_size=count)))
    events = []
    for number, minute in enumerate(minutes):
        kind = draw(st.sampled_from(kinds))
        events.append(input_event_adapter.validate_python({
            "event_id": f"e{number}", "type": kind, "account_id": draw(st.sampled_from(ACCOUNTS)),
            "occurred_at": (START + timedelta(minutes=minute)).isoformat(), **_event(kind, draw)}))
    return events


def notices_of(simulation: Simulation) -> list[str]:
    return [n.model_dump_json() for n in simulation.sorted_notices()]


def simulate(events, *, skip_idle: bool = True) -> Simulation:
    simulation = Simulation(ENGINE, skip_idle=skip_idle)
    simulation.run(events, timedelta(hours=1), UNTIL)
    return simulation


PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(histories(), st.data())
def test_redelivered_events_change_nothing(events, data):
    """A redelivery arrives within the window an account remembers event ids for (README: Delivery)."""
    baseline = notices_of(simulate(events))
    with_duplicates = list(events)
    for original in data.draw(st.lists(st.sampled_from(events), max_size=8)):
        start = with_duplicates.index(original) + 1
        end = start
        while end < len(with_duplicates) and \
                with_duplicates[end].occurred_at <= original.occurred_at + REDELIVERY_WINDOW:
            end += 1
        with_duplicates.insert(data.draw(st.integers(start, end)), original)
    assert notices_of(simulate(with_duplicates)) == baseline


@PROPERTY
@given(histories())
def test_replaying_the_redelivery_window_changes_nothing(events):
    simulation = Simulation(ENGINE)
    simulation.run(events, timedelta(hours=1))
    before = notices_of(simulation)
    last = events[-1].occurred_at
    for event in events:
        if event.occurred_at >= last - REDELIVERY_WINDOW:
            simulation.feed(event)
    assert notices_of(simulation) == before


def interleave(events, tick_times: list[datetime]) -> Simulation:
    """Feeds events and ticks the way the simulator does: ticks at or before an event's time come first."""
    simulation, pending = Simulation(ENGINE), list(events)
    for moment in tick_times:
        while pending and pending[0].occurred_at < moment:
            simulation.feed(pending.pop(0))
        simulation.feed(tick(moment))
    for event in pending:
        simulation.feed(event)
    return simulation


@PROPERTY
@given(histories(), st.data())
def test_extra_or_repeated_ticks_between_events_change_nothing(events, data):
    """The hourly schedule split by extra ticks in hours where no event arrived, some ticks sent twice."""
    hours = range(DAYS * 24)
    hourly = [START + timedelta(hours=hour) for hour in hours]
    busy_hours = {int((e.occurred_at - START).total_seconds() // 3600) for e in events}
    extra = data.draw(st.sets(st.integers(0, DAYS * 24 * 60 - 1).filter(lambda m: m // 60 not in busy_hours),
                              max_size=40))
    repeated = data.draw(st.lists(st.sampled_from(hourly), max_size=20))
    split = sorted(hourly + repeated + [START + timedelta(minutes=m) for m in extra])
    assert notices_of(interleave(events, split)) == notices_of(interleave(events, hourly))


@PROPERTY
@given(histories())
def test_skipping_idle_accounts_at_ticks_is_invisible(events):
    assert notices_of(simulate(events, skip_idle=True)) == notices_of(simulate(events, skip_idle=False))
