"""Settlements (offered by a rule or agreed), write-offs (by event or rule) and recoveries, in the engine.

The scenario files 23-29 tell the main stories end to end; these pin the details: rounding, fixed amounts,
several currencies, acceptance by agreement, a payment crossing the lapse, partial write-offs, recoveries,
repeats, and what the state keeps."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from rules.state import dump_account, load_account

RULES = """\
version: "t1"
defaults: {timezone: Asia/Shanghai, currency: CNY}
rules:
  - id: collector
    when: {days_past_due: 7}
    emit: {kind: handoff, to: collector}
  - id: offer
    when: {days_past_due: 10}
    emit: {kind: offer, channel: letter, template: settle, settle: %s}
  - id: give-up
    when: {days_past_due: 40}
    emit: {kind: write_off, reason: time_barred}
  - id: broken
    on: arrangement.broken
    emit: {kind: urgent_notice, channel: sms, template: broken}
"""
PERCENT = "{percent: 70, valid_days: 5}"


def offered(make_harness, settle: str = PERCENT, invoices=(("I1", "1000.00", "CNY"),)):
    """An account whose invoices fell due on 1 October and which got the offer on day 10 (11 October)."""
    h = make_harness(RULES % settle)
    for invoice_id, amount, currency in invoices:
        h.invoice("2026-09-20 10:00", invoice_id, amount, "2026-10-01", currency)
    h.run_until("2026-09-20 11:00", "2026-10-11 00:00")
    return h


def kinds(h) -> list[str]:
    return [n.kind for n in h.notices]


def test_a_percent_is_rounded_up_to_each_currencys_minor_unit(make_harness):
    h = offered(make_harness, '{percent: "33.3", valid_days: 5}',
                (("I1", "1000.01", "CNY"), ("I2", "1001", "JPY"), ("I3", "10.001", "KWD")))
    offer = next(n for n in h.notices if n.kind == "offer")
    assert offer.settlement.amount == {"CNY": Decimal("333.01"), "JPY": Decimal("334"), "KWD": Decimal("3.331")}
    assert offer.settlement.pay_by.isoformat() == "2026-10-16" and offer.settlement.time_zone == "Asia/Shanghai"
    assert offer.settlement.settlement_id == offer.notice_id
    assert {i.invoice_id for i in offer.invoices} == {"I1", "I2", "I3"}


def test_a_fixed_amount_covers_the_rules_currency_only_and_only_below_what_is_owed(make_harness):
    h = offered(make_harness, '{amount: "600.00", valid_days: 5}', (("I1", "1000.00", "CNY"), ("I2", "50.00", "USD")))
    offer = next(n for n in h.notices if n.kind == "offer")
    assert offer.settlement.amount == {"CNY": Decimal("600.00")} and [i.invoice_id for i in offer.invoices] == ["I1"]
    too_much = offered(make_harness, '{amount: "1000.00", valid_days: 5}')
    assert "offer" not in kinds(too_much)
    assert any(line.what == "decision.suppressed" and line.id == "offer" for line in too_much.audit)


def test_payments_reaching_the_offer_settle_it_and_recall_the_handoff(make_harness):
    h = offered(make_harness)
    h.pay("2026-10-12 10:00", "P1", "300.00")
    assert "settlement" not in kinds(h)
    released = h.pay("2026-10-16 20:00", "P2", "400.00")
    settlement = next(n for n in released if n.kind == "settlement")
    assert (settlement.rule_id, settlement.paid, settlement.written_off, settlement.reason) == (
        "offer", {"CNY": Decimal("700.00")}, {"CNY": Decimal("300.00")}, "settlement")
    assert [(n.to, n.action) for n in released if n.kind == "handoff"] == [("collector", "recall")]
    assert h.state.invoices["I1"].status == "settled" and h.state.episode is None
    h.run_until("2026-10-16 21:00", "2026-11-30 00:00")
    assert kinds(h).count("write_off") == 0  # nothing left to write off on day 40


def test_an_offer_not_taken_up_lapses_quietly_and_escalation_resumes(make_harness):
    h = offered(make_harness)
    h.pay("2026-10-15 10:00", "P1", "100.00")
    h.run_until("2026-10-11 01:00", "2026-11-12 00:00")
    assert any(line.what == "decision.arrangement_lapsed" for line in h.audit)
    assert "urgent_notice" not in kinds(h)  # lapsed is not broken: nobody promised
    write_off = next(n for n in h.notices if n.kind == "write_off")  # day 40: 10 November
    assert write_off.issued_at.date().isoformat() == "2026-11-10"
    assert write_off.written_off == {"CNY": Decimal("900.00")}


def test_time_rules_wait_while_an_offer_stands(make_harness):
    h = make_harness((RULES % PERCENT).replace("days_past_due: 40", "days_past_due: 12"))
    h.invoice("2026-09-20 10:00", "I1", "1000.00", "2026-10-01")
    h.run_until("2026-09-20 11:00", "2026-10-16 00:00")  # day 15, the offer stands through the 16th
    assert "write_off" not in kinds(h)
    h.run_until("2026-10-16 01:00", "2026-10-17 01:00")
    write_off = next(n for n in h.notices if n.kind == "write_off")  # as soon as the offer lapsed
    assert write_off.issued_at.isoformat() == "2026-10-17T00:00:00+08:00"


def test_an_agreement_naming_the_offer_accepts_it_on_new_terms(make_harness):
    h = offered(make_harness)
    offer = next(n for n in h.notices if n.kind == "offer")
    h.event("arrangement.agreed", "2026-10-13 10:00", arrangement_id="A9", kind="settlement", amount="650.00",
            by_date="2026-10-25", offer_id=offer.settlement.settlement_id)
    assert h.state.arrangements[offer.notice_id].status == "superseded"
    h.run_until("2026-10-13 11:00", "2026-10-20 00:00")  # past the offer's own day: the agreement stands
    released = h.pay("2026-10-24 10:00", "P1", "650.00")
    settlement = next(n for n in released if n.kind == "settlement")
    assert settlement.rule_id == "offer" and settlement.settlement.settlement_id == "A9"
    assert settlement.written_off == {"CNY": Decimal("350.00")}


def test_an_agreed_settlement_missed_breaks_like_a_promise(make_harness):
    h = make_harness(RULES % PERCENT)
    h.invoice("2026-09-20 10:00", "I1", "800.00", "2026-10-01")
    h.event("arrangement.agreed", "2026-10-03 10:00", arrangement_id="A1", kind="settlement", amount="500.00",
            by_date="2026-10-06")
    h.pay("2026-10-05 10:00", "P1", "100.00")
    h.run_until("2026-09-20 11:00", "2026-10-08 00:00")
    assert [n.rule_id for n in h.notices if n.kind != "handoff"] == ["broken"]
    assert h.state.arrangements["A1"].status == "broken"


def test_a_payment_made_in_time_that_arrives_after_the_lapse_still_settles(make_harness):
    h = offered(make_harness)
    h.run_until("2026-10-11 01:00", "2026-10-17 02:00")  # lapsed at midnight
    assert h.state.arrangements[next(n for n in h.notices if n.kind == "offer").notice_id].status == "lapsed"
    released = h.pay("2026-10-16 23:30", "P1", "700.00")  # made before midnight, arrived after
    assert [n.kind for n in released if n.kind == "settlement"] == ["settlement"]
    assert any(line.what == "decision.arrangement_restored" for line in h.audit)


def test_writing_off_one_invoice_leaves_the_others_dunned(make_harness):
    h = make_harness(RULES % PERCENT)
    h.invoice("2026-09-20 10:00", "I1", "300.00", "2026-10-01")
    h.invoice("2026-09-20 10:00", "I2", "200.00", "2026-10-01")
    h.run_until("2026-09-20 11:00", "2026-10-09 00:00")  # collector on day 7
    released = h.event("debt.written_off", "2026-10-09 10:00", invoice_ids=["I1", "nope"], reason="fraud")
    assert [(n.kind, n.rule_id, n.written_off, n.reason) for n in released] == [
        ("write_off", None, {"CNY": Decimal("300.00")}, "fraud")]
    assert h.state.episode is not None  # I2 is still overdue: the collector keeps it
    assert h.state.written_off == {"CNY": Decimal("300.00")}
    assert h.event("debt.written_off", "2026-10-09 11:00", invoice_ids=["I1"], reason="fraud") == []
    assert h.event("invoice.adjusted", "2026-10-09 12:00", invoice_id="I1", amount="10.00") == []
    assert h.state.invoices["I1"].status == "written_off"


def test_recoveries_take_named_and_leftover_money_and_reopen_nothing(make_harness):
    h = make_harness(RULES % PERCENT)
    h.invoice("2026-09-20 10:00", "I1", "300.00", "2026-10-01")
    h.invoice("2026-09-20 10:00", "I2", "200.00", "2026-10-01")
    h.event("debt.written_off", "2026-10-03 10:00", invoice_ids=["I1"], reason="uncollectible")
    named = h.pay("2026-10-04 10:00", "P1", "120.00", invoice_id="I1")  # for the written-off invoice, not I2
    assert [(n.kind, n.paid) for n in named] == [("recovery", {"CNY": Decimal("120.00")})]
    assert h.state.invoices["I2"].balance == Decimal("200.00")
    leftover = h.pay("2026-10-05 10:00", "P2", "400.00")  # I2 first, then 180.00 recovered, 20.00 credit
    assert [(n.kind, n.paid) for n in leftover] == [("recovery", {"CNY": Decimal("180.00")})]
    assert h.state.written_off == {} and h.state.credit == {"CNY": Decimal("20.00")} and h.state.episode is None
    assert h.pay("2026-10-05 10:00", "P2", "400.00") == []  # a repeat changes nothing


def test_a_write_off_ends_the_arrangements_it_leaves_with_nothing_to_judge(make_harness):
    h = make_harness(RULES % PERCENT)
    h.invoice("2026-09-20 10:00", "I1", "300.00", "2026-10-01")
    h.event("arrangement.agreed", "2026-10-02 10:00", arrangement_id="PP", kind="promise_to_pay",
            promised_date="2026-10-10", amount="300.00")
    h.event("debt.written_off", "2026-10-03 10:00", reason="deceased")
    assert h.state.arrangements["PP"].status == "cancelled"
    h.run_until("2026-10-03 11:00", "2026-10-12 00:00")
    assert kinds(h) == ["write_off"]  # no broken promise, no notice


def test_the_state_keeps_written_off_amounts_not_invoices(make_harness):
    h = make_harness(RULES % PERCENT)
    h.invoice("2026-05-20 10:00", "I1", "300.00", "2026-06-01")
    h.event("debt.written_off", "2026-06-03 10:00", reason="bankruptcy")
    h.run_until("2026-06-03 11:00", "2026-07-20 00:00", every=timedelta(hours=6))
    assert h.state.invoices == {} and h.state.written_off == {"CNY": Decimal("300.00")}
    assert load_account(dump_account(h.state)) == h.state


def test_a_settlement_paid_before_its_agreement_arrived_is_settled_when_it_arrives(make_harness):
    h = make_harness(RULES % PERCENT)
    h.invoice("2026-09-20 10:00", "I1", "800.00", "2026-10-01")
    h.pay("2026-10-05 10:00", "P1", "500.00")  # made after the agreement (below), delivered before it
    released = h.event("arrangement.agreed", "2026-10-04 18:00", arrangement_id="A1", kind="settlement",
                       amount="500.00", by_date="2026-10-08")
    assert [(n.kind, n.paid) for n in released if n.kind == "settlement"] == [
        ("settlement", {"CNY": Decimal("500.00")})]


def test_invoice_ids_are_taken_as_given_even_with_commas(make_harness):
    h = make_harness(RULES % PERCENT)
    h.invoice("2026-09-20 10:00", "I,1", "300.00", "2026-10-01")
    released = h.event("debt.written_off", "2026-10-09 10:00", invoice_ids=["I,1"], reason="other")
    assert [(n.kind, [i.invoice_id for i in n.invoices]) for n in released] == [("write_off", ["I,1"])]


def test_an_event_rule_writing_off_with_nothing_overdue_writes_off_nothing(make_harness):
    h = make_harness((RULES % PERCENT) + """\
  - id: fraud-flag
    on: dispute.opened
    emit: {kind: write_off, reason: fraud}
""")
    h.invoice("2026-09-20 10:00", "I1", "300.00", "2026-10-01")
    assert h.event("dispute.opened", "2026-09-25 10:00", invoice_id="I1") == []
    assert h.state.written_off == {} and h.state.invoices["I1"].status == "open"
    assert any(line.what == "decision.suppressed" and line.id == "fraud-flag" for line in h.audit)


def test_an_offer_whose_invoice_is_paid_off_after_a_credit_note_is_kept_at_the_payment(make_harness):
    h = offered(make_harness)  # 700.00 of 1000.00 through the 16th
    offer_id = next(n for n in h.notices if n.kind == "offer").notice_id
    h.event("invoice.adjusted", "2026-10-12 10:00", invoice_id="I1", amount="500.00")
    released = h.pay("2026-10-13 10:00", "P1", "500.00")
    assert h.state.arrangements[offer_id].status == "kept" and h.state.invoices["I1"].status == "paid"
    assert [n.kind for n in released] == ["handoff"]  # the collector recalled; no settlement, nothing written off
    assert [(line.what, line.detail.get("reason")) for line in h.audit if line.id == offer_id][-1] == (
        "decision.arrangement_kept", "its invoices were paid off")
    h.run_until("2026-10-13 11:00", "2026-10-20 00:00")
    assert not any(line.what == "decision.arrangement_lapsed" for line in h.audit)


def test_a_late_payment_that_pays_the_invoice_off_keeps_a_broken_settlement(make_harness):
    h = make_harness(RULES % PERCENT)
    h.invoice("2026-09-20 10:00", "I1", "100.00", "2026-10-01")
    h.event("arrangement.agreed", "2026-10-03 10:00", arrangement_id="A1", kind="settlement", amount="120.00",
            by_date="2026-10-06")
    h.run_until("2026-09-20 11:00", "2026-10-07 01:00")  # broken at midnight; its notice waits for no window
    assert h.state.arrangements["A1"].status == "broken"
    h.pay("2026-10-06 23:30", "P1", "100.00")  # all that was owed, made on the 6th, arrived after the break
    assert h.state.arrangements["A1"].status == "kept"
    assert [line.what for line in h.audit if line.id == "A1"][-2:] == [
        "decision.arrangement_restored", "decision.arrangement_kept"]
    assert "settlement" not in kinds(h)  # nothing was forgiven
