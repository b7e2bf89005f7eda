"""An account's state holds what decisions need, not its history: it stays small however old the account is."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from rules.engine import Engine
from rules.state import CASE_FILE_LIMIT, REDELIVERY_FLOOR, AccountState, dump_account, load_account
from schemas.events import tick
from tests.rules.conftest import Harness, at, default_before_blackout, simulate_scenarios


def _monthly_customer(harness: Harness, months: int) -> list[int]:
    """An invoice each month, paid a few days before it falls due, hourly-ish ticks; the state's size each month."""
    sizes = []
    first = date(2021, 1, 1)
    for month in range(months):
        issued = first + timedelta(days=30 * month)
        due = issued + timedelta(days=14)
        harness.invoice(f"{issued} 10:00", f"INV-{month:03d}", "89.90", due.isoformat())
        harness.pay(f"{due - timedelta(days=2)} 09:00", f"PAY-{month:03d}", "89.90", invoice_id=f"INV-{month:03d}")
        for day in (3, 12, 13, 20, 29):
            harness.tick(f"{issued + timedelta(days=day)} 12:00")
        sizes.append(len(dump_account(harness.state)))
    return sizes


def test_a_five_year_customer_who_pays_every_month_keeps_a_small_state(harness: Harness):
    sizes = _monthly_customer(harness, 61)
    assert max(sizes) < 2048, sizes
    assert max(sizes[-12:]) <= max(sizes[:12]) + 16  # flat as the account ages (counters gain a byte or two)
    state = harness.state
    assert len(state.invoices) <= 2 and len(state.payments) <= 2
    assert state.settled_invoices == 61  # the aggregate fact survives what left the state
    assert len(state.seen) <= REDELIVERY_FLOOR + 4


def test_what_left_the_state_is_still_on_the_audit_trail(harness: Harness):
    _monthly_customer(harness, 6)
    assert "INV-000" not in harness.state.invoices
    issued = [line.detail["invoice_id"] for line in harness.audit if line.what == "invoice.issued"]
    assert issued == [f"INV-{m:03d}" for m in range(6)]


def test_a_closed_invoice_stays_long_enough_for_a_refund_by_cancellation(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.pay("2026-10-05 10:00", "P1", "100.00", invoice_id="I1")
    harness.tick("2026-10-20 12:00")
    harness.event("invoice.cancelled", "2026-10-25 10:00", invoice_id="I1")  # 20 days later: refunded as credit
    assert harness.state.credit == {"CNY": Decimal("100.00")}
    harness.tick("2026-11-30 12:00")
    harness.invoice("2026-12-01 10:00", "I2", "30.00", "2026-12-10")  # the credit pays it; I1 is gone by now
    assert "I1" not in harness.state.invoices
    assert harness.state.invoices["I2"].status == "paid" and harness.state.credit == {"CNY": Decimal("70.00")}


def test_a_broken_arrangement_is_still_a_fact_after_it_left_the_state(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.event("arrangement.agreed", "2026-10-12 10:00", arrangement_id="PTP1", kind="promise_to_pay",
                  promised_date="2026-10-15", amount="100.00")
    harness.run_until("2026-10-12 11:00", "2026-10-17 00:00")
    assert harness.state.arrangements["PTP1"].status == "broken"
    harness.pay("2026-10-18 10:00", "P1", "100.00")
    harness.tick("2026-12-01 00:00")
    assert harness.state.arrangements == {} and harness.state.past_arrangement == "broken"
    harness.invoice("2026-12-01 10:00", "I2", "100.00", "2026-12-05")
    harness.run_until("2026-12-05 00:00", "2026-12-07 12:00")
    [first] = [n for n in harness.notices if n.issued_at.date() >= date(2026, 12, 6)][:1]
    assert first.facts["arrangement"] == "broken"


def test_the_case_file_is_the_episodes_story_and_is_held_only_while_it_is_open(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.pay("2026-10-05 10:00", "P0", "1.00", invoice_id="I1")
    assert harness.state.case_events == []  # not delinquent: nothing held (the trail has it)
    harness.run_until("2026-10-10 00:00", "2026-10-11 09:00")
    for day in range(11, 17):
        harness.pay(f"2026-10-{day} 10:00", f"P{day}", "1.00", invoice_id="I1")
    harness.run_until("2026-10-11 10:00", "2026-10-17 09:00")
    [handoff] = [n for n in harness.notices if n.kind == "handoff"]
    assert [e.id for e in handoff.case_file.events] == [f"e{n}" for n in range(3, 9)]  # the six payments
    assert [e.id for e in handoff.case_file.notices] == [n.notice_id for n in harness.notices[:-1]
                                                         if n.episode_id == handoff.episode_id]
    harness.pay("2026-10-18 10:00", "P-rest", "93.00", invoice_id="I1")
    assert harness.state.case_events == [] and harness.state.case_notices == []


def test_a_long_episodes_case_file_keeps_what_went_out_and_is_stored_compressed(harness: Harness):
    harness.event("account.updated", "2026-09-30 10:00", risk_tier="high")
    harness.invoice("2026-10-01 10:00", "I1", "5000.00", "2026-10-05")
    start = date(2026, 10, 6)
    for day in range(70):  # a small payment a day: the episode goes on
        moment = start + timedelta(days=day)
        harness.run_until(f"{moment} 00:00", f"{moment} 23:00")
        harness.pay(f"{moment} 23:30", f"P{day}", "1.00", invoice_id="I1")
    state = harness.state
    assert len(state.case_events) == CASE_FILE_LIMIT and state.case_events[-1].id == harness.audit[-1].id
    assert state.case_notices and all(set(line.detail) <= {"rule_id", "channel", "template", "to", "action"}
                                      for line in state.case_notices)
    raw = dump_account(state)
    assert raw[0] == 4 | 0x80 and load_account(raw) == state  # lz4 behind the same layout version
    assert len(raw) < 4096


def test_the_codec_keeps_every_field_and_refuses_another_layout(harness: Harness):
    _monthly_customer(harness, 2)
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.run_until("2026-10-10 00:00", "2026-10-12 09:30")
    raw = dump_account(harness.state)
    assert raw[0] & 0x7F == 4 and load_account(raw) == harness.state
    try:
        load_account(bytes([5]) + raw[1:])
    except ValueError as exc:
        assert "version 5" in str(exc)
    else:
        raise AssertionError("a value of another layout version was read")


def _stored_and_simulated(layout: int, folders: tuple[str, ...]):
    """The states a layout stored (tests/rules/data), and today's simulation of the same scenarios."""
    data = Path(__file__).parent / "data" / f"account-layout-{layout}.txt"
    stored = dict(line.split() for line in data.read_text().splitlines() if line and not line.startswith("#"))
    return stored, simulate_scenarios(folders, "2026-10-20T00:00:00+08:00", default_before_blackout()).accounts


_BEHAVIOUR = ("episode_starts", "last_cure_days", "broken_arrangements", "invoices_paid", "paid_on_time", "score")


def _upgraded(raw: bytes, layout: int, today: AccountState) -> AccountState:
    """A stored state read today, and what it lacks filled in from today's run. Older layouts never kept books_at
    (the latest balance event applied): the upgrade takes the latest instant the state still holds, never later
    than the true one. Nor how the account paid: the behaviour aggregates start from nothing."""
    assert raw[0] & 0x7F == layout
    state = load_account(raw)
    assert state.books_at is not None and state.books_at <= today.books_at
    assert [getattr(state, name) for name in _BEHAVIOUR] == [[], None, 0, 0, 0, None]
    return replace(state, books_at=today.books_at, **{name: getattr(today, name) for name in _BEHAVIOUR})


def test_a_state_stored_by_layout_1_is_read_as_the_same_state_today():
    """A worker upgraded over stored states reads them: layout 1 lacked the settlement and write-off fields."""
    stored, accounts = _stored_and_simulated(
        1, ("04-partial-payment-recall", "08-promise-kept", "10-installments-kept"))
    assert set(stored) == {"K1", "L1", "P1"} and accounts["K1"].arrangements and accounts["L1"].arrangements
    for account, text in stored.items():
        assert _upgraded(bytes.fromhex(text), 1, accounts[account]) == accounts[account]


def _declined_then_busy(harness: Harness):
    """A debit declined on 12 October (event F; after National Day, a blackout), then eight more events the next day."""
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-11-01")
    failure = harness.event("payment.failed", "2026-10-12 14:00", event_id="F", payment_id="D1", amount="100.00",
                            currency="CNY", invoice_id="I1", reason="insufficient_funds")
    for n in range(2, 6):
        harness.invoice(f"2026-10-13 1{n}:00", f"I{n}", "20.00", "2026-11-06")
        harness.pay(f"2026-10-13 1{n}:30", f"P{n}", "20.00", invoice_id=f"I{n}")
    return failure


def _resend(harness: Harness, when: str) -> tuple[list, list]:
    """F's message again, with the clock at `when` (the account not ticked: idle accounts are skipped)."""
    harness.engine.apply_platform(harness.platform, tick(at(when)))
    before = len(harness.audit)
    released = harness.event("payment.failed", "2026-10-12 14:00", event_id="F", payment_id="D1", amount="100.00",
                             currency="CNY", invoice_id="I1", reason="insufficient_funds")
    return released, [(line.what, line.id, line.detail) for line in harness.audit[before:]]


def test_a_repeat_is_judged_by_the_window_at_the_accounts_time_not_by_what_came_since(default_engine: Engine):
    """Issue 16: the same history, the same message re-sent ten days later: the outcome depends on the 7 days and
    the latest 8 ids only, not on whether an unrelated event pruned the ids in between."""
    quiet, busy = Harness(default_engine, "Q"), Harness(default_engine, "B")
    for harness in (quiet, busy):
        assert [n.rule_id for n in _declined_then_busy(harness)] == ["debit-declined"]
        released, lines = _resend(harness, "2026-10-14 12:00")  # within the week: ignored, and audited
        assert released == [] and lines == [
            ("payment.failed", "F", {"ignored": "event already applied (a redelivery)"})]
    busy.event("account.updated", "2026-10-21 09:00", channels=["sms", "email"])
    outcomes = [_resend(harness, "2026-10-22 12:00") for harness in (quiet, busy)]
    (quiet_notices, quiet_lines), (busy_notices, busy_lines) = outcomes
    assert [n.rule_id for n in quiet_notices] == [n.rule_id for n in busy_notices] == ["debit-declined"]
    assert quiet_lines[0][2] == busy_lines[0][2] and "ignored" not in quiet_lines[0][2]  # applied as a new failure


def test_the_latest_ids_are_remembered_whatever_their_age(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-25")
    harness.event("payment.failed", "2026-10-12 14:00", event_id="F", payment_id="D1", amount="100.00",
                  currency="CNY", invoice_id="I1", reason="insufficient_funds")
    released, lines = _resend(harness, "2026-11-20 12:00")  # six weeks on, but among the account's latest 8 ids
    assert released == [] and lines == [("payment.failed", "F", {"ignored": "event already applied (a redelivery)"})]


def test_a_state_stored_by_layout_2_is_read_as_the_same_state_today():
    """Layout 2 (settlements and write-offs) lacked flags, holds, restrictions and the statement marks."""
    stored, accounts = _stored_and_simulated(
        2, ("04-partial-payment-recall", "08-promise-kept", "25-settlement-paid", "27-write-off-by-event"))
    assert set(stored) == {"K1", "P1", "S1", "W1"} and accounts["W1"].written_off
    for account, text in stored.items():
        state = load_account(bytes.fromhex(text))
        assert (state.flags, state.holds, state.restrictions, state.statement_at) == ({}, [], {}, None)
        assert _upgraded(bytes.fromhex(text), 2, accounts[account]) == accounts[account]


def test_a_state_stored_by_layout_3_is_read_as_the_same_state_today():
    """Layout 3 (delivery receipts and contacts) had no customer's contact hours: read, a state awaiting receipts,
    with channels closed or direct contact ended is the one today's code keeps, without contact hours."""
    data = Path(__file__).parent / "data" / "account-layout-3.txt"
    stored = dict(line.split() for line in data.read_text().splitlines() if line and not line.startswith("#"))
    accounts = simulate_scenarios(("60-bounce-falls-back", "61-temporary-failure-retried", "62-every-channel-dead",
                                   "66-cease-mid-episode"), "2026-10-09T03:00:00+08:00").accounts
    assert set(stored) == {"B1", "T1", "D1", "X1"} and all(bytes.fromhex(text)[0] & 0x7F == 3
                                                           for text in stored.values())
    read = {account: load_account(bytes.fromhex(text)) for account, text in stored.items()}
    assert read["B1"].awaiting and read["D1"].unreachable == ["sms", "email"] and read["X1"].ceased
    assert all(state.contact_hours == {} for state in read.values())
    for account in ("B1", "T1", "D1"):
        assert read[account] == accounts[account]
    # X1's cease was stored before a cease recalled the collector: its handoff stays open and its case file has no
    # recall (states are upgraded, not replayed); the rest is today's state
    ceased, today = read["X1"], accounts["X1"]
    assert ceased.episode.open_handoffs == {"collector": "collector", "legal": "legal"}
    assert replace(ceased, episode=replace(ceased.episode, open_handoffs=today.episode.open_handoffs),
                   case_notices=today.case_notices) == today


def test_a_waiting_notice_stored_by_layout_2_is_read_with_empty_delivery_fields():
    """Layout 2 lacked the delivery-receipt fields: a waiting notice's (replaces, channel, tried, not_before,
    retries), an episode's delivered count, the account's awaiting notices and unreachable channels. Upgraded, a
    state is read as the same state today's code keeps under the same ruleset."""
    data = Path(__file__).parent / "data" / "account-layout-2-waiting.txt"
    stored = dict(line.split() for line in data.read_text().splitlines() if line and not line.startswith("#"))
    # the default ruleset as it was then (without a delivery policy, so nothing awaits a receipt)
    simulation = simulate_scenarios(("02-high-risk-limits", "09-promise-broken", "23-offer-accepted"),
                                    "2026-10-08T03:00:00+08:00", rules=data.parent / "default-layout-2.yaml")
    assert set(stored) == {"H1", "K2", "O1"} and simulation.accounts["H1"].pending
    for account, text in stored.items():
        assert _upgraded(bytes.fromhex(text), 2, simulation.accounts[account]) == simulation.accounts[account]
    waiting = load_account(bytes.fromhex(stored["H1"])).pending[0]
    assert (waiting.replaces, waiting.channel, waiting.tried, waiting.not_before, waiting.retries) == (None, None, [],
                                                                                                       None, 0)
