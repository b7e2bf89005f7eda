"""Properties over random event histories: at-least-once delivery and the tick schedule change nothing."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from rules.state import REDELIVERY_WINDOW, ZERO
from schemas.events import input_event_adapter, tick

START = datetime.fromisoformat("2026-10-01T00:00:00+08:00")
DAYS = 60
UNTIL = START + timedelta(days=DAYS)
REPO = Path(__file__).resolve().parents[2]
ENGINE = Engine(load_ruleset(REPO / "rules" / "default.yaml"))
# Two offer stages, the second due while the first may still stand (scenario 33), in a contact window.
OFFERS = Engine(load_ruleset(REPO / "tests" / "scenarios" / "33-second-offer-waits" / "rules.yaml"))
# Restrictions applied and lifted (rules/examples/credit-line.yaml), over the same histories.
CREDIT_LINE = Engine(load_ruleset(REPO / "rules" / "examples" / "credit-line.yaml"))
ENGINES = pytest.mark.parametrize("engine", [ENGINE, OFFERS, CREDIT_LINE],
                                  ids=["default", "two-offers", "credit-line"])
FLAGS = ("breathing_space", "hardship", "vulnerable", "deceased", "bankruptcy", "fraud", "do_not_dun")
ACCOUNTS = ("A", "B")
INVOICES = ("I1", "I2", "I3")
money = st.integers(min_value=1, max_value=12000).map(lambda cents: f"{cents // 100}.{cents % 100:02d}")
day = st.integers(min_value=-10, max_value=50).map(lambda d: (START + timedelta(days=d)).date().isoformat())


def _event(kind: str, draw, occurred: datetime) -> dict:
    invoice = draw(st.sampled_from(INVOICES))
    if kind in ("account.flagged", "account.unflagged"):
        until = draw(st.one_of(st.none(), st.integers(0, 20))) if kind == "account.flagged" else None
        return {"flag": draw(st.sampled_from(FLAGS)),
                **({"until": (occurred + timedelta(days=until)).date().isoformat()} if until is not None else {})}
    if kind == "account.statement":  # billing's view, as of up to three days before it is sent
        as_of = occurred - timedelta(hours=draw(st.integers(0, 72)))
        lines = [{"invoice_id": name, "amount_due": draw(money), "currency": "CNY", "due_date": draw(day)}
                 for name in draw(st.lists(st.sampled_from(INVOICES), unique=True, max_size=3))]
        return {"as_of": as_of.isoformat(), "invoices": lines,
                **draw(st.sampled_from([{}, {"credit": {}}, {"credit": {"CNY": "5.00"}}]))}
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


def _settlement_story(draw, account: str, minute: int) -> list[tuple[int, str, str, dict]]:
    """An invoice under a settlement that a credit note, a cancellation or a payment closes (or not) while the
    settlement stands (issue 16): (minute, type, account, fields)."""
    by_date = (START + timedelta(minutes=minute) + timedelta(days=draw(st.integers(1, 12)))).date().isoformat()
    later = [minute + draw(st.integers(60, 5 * 24 * 60)) for _ in range(2)]
    story = [(minute, "invoice.issued", account, {"invoice_id": "S1", "amount": "100.00", "currency": "CNY",
                                                  "due_date": (START + timedelta(minutes=minute - 14 * 24 * 60)
                                                               ).date().isoformat()}),
             (minute + 30, "arrangement.agreed", account, {"arrangement_id": "SA", "kind": "settlement",
                                                           "amount": draw(st.sampled_from(["80.00", "120.00"])),
                                                           "by_date": by_date, "invoice_ids": ["S1"]})]
    for at in sorted(later):
        kind = draw(st.sampled_from(["invoice.adjusted", "invoice.cancelled", "payment.received"]))
        fields = {"invoice_id": "S1"}
        if kind == "invoice.adjusted":
            fields["amount"] = draw(st.sampled_from(["50.00", "0.00"]))
        elif kind == "payment.received":
            fields = {"payment_id": f"SP{at}", "amount": draw(st.sampled_from(["50.00", "80.00", "100.00"])),
                      "currency": "CNY"}
        story.append((at, kind, account, fields))
    return story


def _late_import(draw, account: str, day: int) -> list[tuple[int, str, str, dict]]:
    """An invoice imported in the evening of its tenth day past due: with two offer stages (days 10 and 11) both
    wait for the morning's contact window, and only one can stand (issue 16)."""
    minute = day * 24 * 60 + draw(st.integers(20 * 60, 24 * 60 - 1))
    due = (START + timedelta(days=day - 10)).date().isoformat()
    return [(minute, "invoice.issued", account, {"invoice_id": "L1", "amount": "1000.00", "currency": "CNY",
                                                 "due_date": due})]


@st.composite
def histories(draw, quiet_redeliveries: bool = False):
    """Random events of two accounts over 50 days, perhaps with a settlement story and a late import; with
    `quiet_redeliveries`, some events re-sent after a week in which their account received nothing."""
    kinds = ["invoice.issued"] * 4 + ["payment.received"] * 3 + [
        "payment.failed", "dispute.opened", "dispute.resolved", "invoice.adjusted", "invoice.cancelled",
        "account.updated", "arrangement.agreed", "debt.written_off", "account.flagged", "account.unflagged",
        "account.statement"]
    count = draw(st.integers(min_value=1, max_value=18))
    minutes = draw(st.lists(st.integers(0, 50 * 24 * 60), min_size=count, max_size=count))
    raw = []
    for minute in minutes:
        kind = draw(st.sampled_from(kinds))
        raw.append((minute, kind, draw(st.sampled_from(ACCOUNTS)),
                    _event(kind, draw, START + timedelta(minutes=minute))))
    if draw(st.booleans()):
        raw += _settlement_story(draw, draw(st.sampled_from(ACCOUNTS)), draw(st.integers(0, 40 * 24 * 60)))
    if draw(st.booleans()):
        raw += _late_import(draw, draw(st.sampled_from(ACCOUNTS)), draw(st.integers(0, 40)))
    raw.sort(key=lambda entry: entry[0])
    events = [input_event_adapter.validate_python({
        "event_id": f"e{number}", "type": kind, "account_id": account,
        "occurred_at": (START + timedelta(minutes=minute)).isoformat(), **fields})
        for number, (minute, kind, account, fields) in enumerate(raw)]
    if quiet_redeliveries:
        resent = draw(st.lists(st.sampled_from(events), max_size=3))
        if resent:
            # Another account's event moves the clock a week past every event here; then the repeats arrive.
            quiet = events[-1].occurred_at + timedelta(days=7, minutes=draw(st.integers(1, 2 * 24 * 60)))
            events = events + [input_event_adapter.validate_python({
                "event_id": "clock", "type": "account.updated", "account_id": "C", "occurred_at": quiet.isoformat(),
                "risk_tier": "high"})] + resent
    return events


def notices_of(simulation: Simulation) -> list[str]:
    return [n.model_dump_json() for n in simulation.sorted_notices()]


def simulate(events, *, skip_idle: bool = True, engine: Engine = ENGINE) -> Simulation:
    simulation = Simulation(engine, skip_idle=skip_idle, audit=[])
    simulation.run(events, timedelta(hours=1), UNTIL)
    return simulation


PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ENGINES
@PROPERTY
@given(histories(), st.data())
def test_redelivered_events_change_nothing(engine, events, data):
    """A redelivery arrives within the window an account remembers event ids for (README: Delivery)."""
    baseline = notices_of(simulate(events, engine=engine))
    with_duplicates = list(events)
    for original in data.draw(st.lists(st.sampled_from(events), max_size=8)):
        start = with_duplicates.index(original) + 1
        end = start
        while end < len(with_duplicates) and \
                with_duplicates[end].occurred_at <= original.occurred_at + REDELIVERY_WINDOW:
            end += 1
        with_duplicates.insert(data.draw(st.integers(start, end)), original)
    assert notices_of(simulate(with_duplicates, engine=engine)) == baseline


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


def interleave(events, tick_times: list[datetime], engine: Engine = ENGINE) -> Simulation:
    """Feeds events and ticks the way the simulator does: ticks at or before an event's time come first."""
    simulation, pending = Simulation(engine), list(events)
    for moment in tick_times:
        while pending and pending[0].occurred_at < moment:
            simulation.feed(pending.pop(0))
        simulation.feed(tick(moment))
    for event in pending:
        simulation.feed(event)
    return simulation


@ENGINES
@PROPERTY
@given(histories(quiet_redeliveries=True), st.data())
def test_extra_or_repeated_ticks_between_events_change_nothing(engine, events, data):
    """The hourly schedule split by extra ticks in hours where no event arrived, some ticks sent twice."""
    hours = range(DAYS * 24)
    hourly = [START + timedelta(hours=hour) for hour in hours]
    busy_hours = {int((e.occurred_at - START).total_seconds() // 3600) for e in events}
    extra = data.draw(st.sets(st.integers(0, DAYS * 24 * 60 - 1).filter(lambda m: m // 60 not in busy_hours),
                              max_size=40))
    repeated = data.draw(st.lists(st.sampled_from(hourly), max_size=20))
    split = sorted(hourly + repeated + [START + timedelta(minutes=m) for m in extra])
    assert notices_of(interleave(events, split, engine)) == notices_of(interleave(events, hourly, engine))


@ENGINES
@PROPERTY
@given(histories(quiet_redeliveries=True))
def test_skipping_idle_accounts_at_ticks_is_invisible(engine, events):
    skipping, ticking_all = simulate(events, engine=engine), simulate(events, skip_idle=False, engine=engine)
    assert notices_of(skipping) == notices_of(ticking_all)
    assert skipping.trails() == ticking_all.trails()  # each account's audit trail, line for line


@PROPERTY
@given(histories(quiet_redeliveries=True))
def test_every_event_delivered_has_its_audit_line_applied_or_ignored(events):
    audit = simulate(events).audit
    delivered = Counter((e.account_id, e.type, e.event_id) for e in events)
    lines = Counter((r.account_id, r.what, r.id) for r in audit if (r.account_id, r.what, r.id) in delivered)
    assert lines == delivered


@PROPERTY
@given(histories())
def test_a_restriction_is_never_left_applied_with_nothing_overdue(events):
    """After every step: an applied restriction has overdue debt to stand for (or unrecovered written-off debt, for
    one kept after a write-off); and each is applied once and lifted once."""
    simulation, pending = Simulation(CREDIT_LINE), list(events)
    for hour in range(DAYS * 24):
        moment = START + timedelta(hours=hour)
        while pending and pending[0].occurred_at < moment:
            simulation.feed(pending.pop(0))
            _restrictions_hold(simulation)
        simulation.feed(tick(moment))
        _restrictions_hold(simulation)
    changes = [(n.notice_id, n.restriction.state) for n in simulation.notices if n.kind == "restriction"]
    assert len(changes) == len(set(changes))
    applied = {n.notice_id for n in simulation.notices if n.kind == "restriction" and n.restriction.state == "applied"}
    lifted = [n.restriction.applied_notice_id for n in simulation.notices
              if n.kind == "restriction" and n.restriction.state == "lifted"]
    assert len(lifted) == len(set(lifted)) and set(lifted) <= applied


def _restrictions_hold(simulation: Simulation) -> None:
    for state in simulation.accounts.values():
        if not state.restrictions:
            continue
        clock = simulation.platform.clock or max(r.applied_at for r in state.restrictions.values())
        at = max(clock, state.evaluated_until or clock)
        overdue = CREDIT_LINE.calendar.moment(state, simulation.platform, at).overdue
        unrecovered = any(amount > ZERO for amount in state.written_off.values())
        for restriction in state.restrictions.values():
            assert overdue or (restriction.keep_written_off and unrecovered), (state.account_id, restriction)
