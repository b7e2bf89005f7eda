"""One test (or a few) per semantic rule of the engine, each through the public step function."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from conftest import REPO, Harness, at
from rules.engine import Engine
from rules.loader import load_ruleset, parse_ruleset
from rules.state import REDELIVERY_FLOOR, dump_account, load_account

MINIMAL = """
version: "t1"
defaults: {timezone: Asia/Shanghai, currency: CNY}
rules:
  - id: day-1
    when: {days_past_due: 1}
    emit: {kind: reminder, channel: sms, template: overdue}
  - id: collector
    when: {days_past_due: 3}
    emit: {kind: handoff, to: collector}
"""


def test_days_past_due_count_in_the_customers_own_timezone(make_harness):
    shanghai, new_york = make_harness(MINIMAL, "SH"), make_harness(MINIMAL, "NY")
    new_york.event("account.updated", "2026-10-01 09:00", timezone="America/New_York")
    for h in (shanghai, new_york):
        h.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    # 17:00 UTC on 10 Oct is already 11 Oct in Shanghai but still 10 Oct (13:00) in New York.
    moment = "2026-10-10T17:00:00+00:00"
    assert [n.rule_id for n in shanghai.tick(moment)] == ["day-1"]
    assert new_york.tick(moment) == []
    assert [n.days_past_due for n in shanghai.notices] == [1]


def test_duplicate_event_ids_and_payment_ids_change_nothing(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.pay("2026-10-02 10:00", "P1", "40.00", event_id="pay-1")
    snapshot = dump_account(harness.state)
    harness.pay("2026-10-02 10:00", "P1", "40.00", event_id="pay-1")  # redelivered
    assert dump_account(harness.state) == snapshot
    harness.pay("2026-10-02 10:05", "P1", "40.00", event_id="pay-1-resent-by-billing")  # same payment, new id
    assert harness.state.invoices["I1"].balance == Decimal("60.00")


def test_payment_without_invoice_goes_to_the_oldest_due_first_and_excess_becomes_credit(harness: Harness):
    harness.invoice("2026-10-01 10:00", "LATER", "50.00", "2026-10-20")
    harness.invoice("2026-10-01 10:00", "EARLIER", "30.00", "2026-10-10")
    harness.pay("2026-10-02 10:00", "P1", "40.00")
    assert harness.state.invoices["EARLIER"].status == "paid"
    assert harness.state.invoices["LATER"].balance == Decimal("40.00")
    harness.pay("2026-10-02 11:00", "P2", "45.00")
    assert harness.state.invoices["LATER"].status == "paid"
    assert harness.state.credit == {"CNY": Decimal("5.00")}
    harness.invoice("2026-10-03 10:00", "NEXT", "20.00", "2026-10-30")
    assert harness.state.invoices["NEXT"].balance == Decimal("15.00")
    assert harness.state.credit == {}


def test_named_invoice_is_paid_first_and_currencies_never_mix(harness: Harness):
    harness.invoice("2026-10-01 10:00", "OLD", "30.00", "2026-10-05")
    harness.invoice("2026-10-01 10:00", "NAMED", "30.00", "2026-10-25")
    harness.invoice("2026-10-01 10:00", "DOLLARS", "30.00", "2026-10-01", currency="USD")
    harness.pay("2026-10-02 10:00", "P1", "40.00", invoice_id="NAMED")
    assert harness.state.invoices["NAMED"].status == "paid"
    assert harness.state.invoices["OLD"].balance == Decimal("20.00")
    assert harness.state.invoices["DOLLARS"].balance == Decimal("30.00")


def test_adjustments_and_cancellations_move_money_not_lose_it(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.pay("2026-10-02 10:00", "P1", "80.00")
    harness.event("invoice.adjusted", "2026-10-03 10:00", invoice_id="I1", amount="60.00")  # credit note
    assert harness.state.invoices["I1"].status == "paid"
    assert harness.state.credit == {"CNY": Decimal("20.00")}
    harness.event("invoice.adjusted", "2026-10-04 10:00", invoice_id="I1", amount="90.00")  # corrected upwards
    assert harness.state.invoices["I1"].status == "open"
    assert harness.state.invoices["I1"].balance == Decimal("30.00")
    harness.event("invoice.cancelled", "2026-10-05 10:00", invoice_id="I1")
    assert harness.state.credit == {"CNY": Decimal("80.00")}


def test_notices_carry_what_the_consumer_and_an_auditor_need(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "120.50", "2026-10-10")
    harness.invoice("2026-10-01 10:00", "I2", "10.00", "2026-10-09", currency="USD")
    harness.run_until("2026-10-10 23:00", "2026-10-11 09:00")
    [notice] = [n for n in harness.notices if n.rule_id == "overdue-day-1"]
    assert notice.account_id == "A1" and notice.kind == "reminder" and notice.channel == "sms"
    assert notice.ruleset_version == "2026.11-default" and notice.template == "overdue"
    assert notice.overdue == {"CNY": Decimal("120.50"), "USD": Decimal("10.00")}
    assert [(i.invoice_id, i.amount_due) for i in notice.invoices] == [("I2", Decimal("10.00")),
                                                                       ("I1", Decimal("120.50"))]
    assert notice.issued_at == at("2026-10-11 08:00") and notice.caused_by.startswith("tick:2026-10-11T08:00")
    assert notice.trigger.at == at("2026-10-10 23:00")  # the USD invoice was a day late already
    assert notice.trigger.deferred_by == ["contact_window"]
    # Facts are as the rule saw them when it fired (only the USD invoice was late, CNY overdue 0) ...
    assert notice.facts["days_past_due"] == 1 and notice.facts["overdue_amount"] == "0"
    # ... while the figures are as of sending.
    assert notice.days_past_due == 2
    assert notice.episode_id == "A1/1"
    wire = notice.to_json().decode()
    assert '"120.50"' in wire and "120.5," not in wire


def test_notice_ids_do_not_depend_on_when_the_notice_was_released(make_harness):
    early, late = make_harness(MINIMAL), make_harness(MINIMAL)
    for h in (early, late):
        h.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    early.tick("2026-10-11 00:00")
    late.tick("2026-10-11 09:30")
    assert early.notices[0].notice_id == late.notices[0].notice_id
    assert early.notices[0].issued_at != late.notices[0].issued_at


def test_the_end_of_an_episode_recalls_every_open_handoff(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.run_until("2026-10-10 00:00", "2026-11-25 00:00", timedelta(days=1))
    assert [(n.to, n.action) for n in harness.notices if n.kind == "handoff"] == [
        ("collector", "open"), ("agency", "open")]
    released = harness.pay("2026-11-25 10:00", "P1", "100.00")
    assert sorted((n.to, n.action, n.rule_id) for n in released) == [
        ("agency", "recall", "agency"), ("collector", "recall", "collector")]
    assert harness.state.episode is None
    # A new delinquency is a new episode with its own ids.
    harness.invoice("2026-11-26 10:00", "I2", "100.00", "2026-11-27")
    harness.run_until("2026-11-28 00:00", "2026-11-28 09:00")
    assert harness.notices[-1].episode_id == "A1/2"


def test_stages_due_together_fire_only_the_last_of_each_kind_and_the_rest_never(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-01")  # day 9 at the first tick
    harness.tick("2026-10-10 10:00")
    assert sorted(harness.rules_fired()) == ["collector", "overdue-day-3"]
    skipped = [e.id for e in harness.audit if e.what == "decision.skipped"]
    assert skipped == ["overdue-day-1"]
    harness.run_until("2026-10-10 11:00", "2026-10-20 00:00")
    assert "overdue-day-1" not in harness.rules_fired()


def test_a_reminder_waiting_for_the_window_is_withdrawn_if_paid_meanwhile(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.run_until("2026-10-10 00:00", "2026-10-11 07:00")
    assert [p.rule_id for p in harness.state.pending] == ["overdue-day-1"]
    harness.pay("2026-10-11 07:30", "P1", "100.00")
    harness.run_until("2026-10-11 08:00", "2026-10-12 12:00")
    assert "overdue-day-1" not in harness.rules_fired()
    assert any(e.what == "decision.withdrawn" and e.id == "overdue-day-1" for e in harness.audit)


def test_an_overnight_contact_window_wraps_midnight(make_harness):
    h = make_harness(MINIMAL.replace('defaults:', 'contact_window: {start: "22:00", end: "02:00"}\ndefaults:'))
    h.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    h.run_until("2026-10-11 00:00", "2026-10-12 00:00")
    assert [n.issued_at for n in h.notices if n.rule_id == "day-1"] == [at("2026-10-11 00:00")]


def test_promise_to_pay_pauses_time_rules_and_counts_only_payments_since_agreement(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "300.00", "2026-10-10")
    harness.pay("2026-10-11 09:00", "P0", "100.00")  # before the promise: does not count towards it
    harness.event("arrangement.agreed", "2026-10-11 10:00", arrangement_id="AR1", kind="promise_to_pay",
                  promised_date="2026-10-20", amount="150.00")
    harness.run_until("2026-10-11 11:00", "2026-10-20 23:00")
    assert not [r for r in harness.rules_fired() if r not in ("due-soon",)]
    harness.pay("2026-10-20 12:00", "P1", "100.00")
    harness.run_until("2026-10-21 00:00", "2026-10-21 09:00")
    assert harness.state.arrangements["AR1"].status == "broken"
    assert "promise-broken" in harness.rules_fired()


def test_a_payment_made_before_the_deadline_that_arrives_after_midnight_keeps_the_promise(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "300.00", "2026-10-10")
    harness.event("arrangement.agreed", "2026-10-11 10:00", arrangement_id="AR1", kind="promise_to_pay",
                  promised_date="2026-10-20", amount="300.00")
    harness.run_until("2026-10-20 00:00", "2026-10-21 01:00")  # the midnight tick judges it broken ...
    assert harness.state.arrangements["AR1"].status == "broken"
    released = harness.pay("2026-10-20 23:50", "P1", "300.00")  # ... then the 23:50 payment arrives
    assert harness.state.arrangements["AR1"].status == "kept"
    assert [(n.to, n.action) for n in released] == [("collector", "recall")]
    harness.run_until("2026-10-21 02:00", "2026-10-22 00:00")
    assert "promise-broken" not in harness.rules_fired()  # it was waiting for 08:00 and was withdrawn


def test_a_new_promise_supersedes_the_one_standing_without_notice_and_not_as_broken(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "300.00", "2026-10-10")
    for arrangement_id, agreed, promised in (("AR1", "2026-10-11 10:00", "2026-10-16"),
                                             ("AR2", "2026-10-15 10:00", "2026-10-25"),
                                             ("AR0", "2026-10-14 10:00", "2026-10-20")):  # arrives late
        harness.event("arrangement.agreed", agreed, arrangement_id=arrangement_id, kind="promise_to_pay",
                      promised_date=promised, amount="300.00")
    arrangements = harness.state.arrangements
    assert {a: arrangements[a].status for a in ("AR0", "AR1", "AR2")} == {
        "AR0": "superseded", "AR1": "superseded", "AR2": "active"}
    assert [(e.what, e.id, e.detail["superseded_by"]) for e in harness.audit if e.what.startswith("decision.")] == [
        ("decision.arrangement_superseded", "AR1", "AR2"), ("decision.arrangement_superseded", "AR0", "AR2")]
    harness.event("arrangement.cancelled", "2026-10-15 12:00", arrangement_id="AR2")
    harness.run_until("2026-10-15 13:00", "2026-10-22 09:00")
    assert "promise-broken" not in harness.rules_fired()
    moment = harness.engine.calendar.moment(harness.state, harness.platform, at("2026-10-22 09:00"))
    assert moment.facts(None)["arrangement"] == "none"


def broken_plan(harness: Harness) -> None:
    """Two installments of 150.00 for a 300.00 invoice; nothing paid, so the tick at midnight breaks the plan."""
    harness.invoice("2026-10-01 10:00", "I1", "300.00", "2026-10-10")
    harness.event("arrangement.agreed", "2026-10-11 10:00", arrangement_id="AR1", kind="installments",
                  invoice_ids=["I1"], schedule=[{"due_date": "2026-10-20", "amount": "150.00"},
                                                {"due_date": "2026-11-20", "amount": "150.00"}])
    harness.run_until("2026-10-20 00:00", "2026-10-21 01:00")
    assert harness.state.arrangements["AR1"].status == "broken"
    assert harness.state.invoices["I1"].fell_due.isoformat() == "2026-10-20"  # the remainder fell due


def test_an_installment_paid_in_time_whose_payment_arrives_after_midnight_restores_the_plan(harness: Harness):
    broken_plan(harness)
    assert harness.state.episode is not None
    before = len(harness.audit)
    harness.pay("2026-10-20 23:50", "P1", "150.00")  # paid on the due date, delivered after the judgement
    plan, invoice = harness.state.arrangements["AR1"], harness.state.invoices["I1"]
    assert (plan.status, invoice.plan_id, invoice.fell_due) == ("active", "AR1", None)
    assert harness.state.episode is None  # the invoice is carried by the plan again
    # The broken-promise notice and the day-1 reminder were waiting for 08:00: withdrawn, and recorded.
    assert [(e.what, e.id) for e in harness.audit[before:]] == [
        ("payment.received", "e3"), ("decision.arrangement_restored", "AR1"), ("episode.ended", "A1/1"),
        ("decision.withdrawn", "promise-broken"), ("decision.withdrawn", "overdue-day-1")]
    harness.run_until("2026-10-21 02:00", "2026-11-20 23:00")
    assert harness.notices == []
    harness.pay("2026-11-20 12:00", "P2", "150.00")
    harness.tick("2026-11-21 00:00")
    assert plan.status == "kept" and invoice.status == "paid"


def test_a_plan_restored_after_its_broken_notice_went_and_broken_again_is_told_anew(harness: Harness):
    broken_plan(harness)
    first = [n for n in harness.run_until("2026-10-21 02:00", "2026-10-21 10:00") if n.rule_id == "promise-broken"]
    assert len(first) == 1  # sent at 08:00
    harness.pay("2026-10-20 23:50", "P1", "150.00")  # paid on the due date, delivered after the notice went
    assert harness.state.arrangements["AR1"].status == "active"
    again = [n for n in harness.run_until("2026-10-21 11:00", "2026-11-22 10:00") if n.rule_id == "promise-broken"]
    # the second installment was missed: a new break, a new notice, not the first one's id with other content
    assert len(again) == 1 and again[0].notice_id != first[0].notice_id
    assert again[0].trigger.event_id == "AR1:broken:2026-11-21"


def test_payment_without_invoice_goes_to_the_oldest_effective_due_date(harness: Harness, make_harness):
    broken_plan(harness)  # I1 was due 10-10; its remainder fell due 10-20
    harness.invoice("2026-10-21 02:00", "I2", "100.00", "2026-10-15")
    harness.pay("2026-10-21 03:00", "P1", "100.00")
    assert harness.state.invoices["I2"].status == "paid"
    assert harness.state.invoices["I1"].balance == Decimal("300.00")
    moved = make_harness(MINIMAL)
    moved.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    moved.invoice("2026-10-01 10:00", "I2", "100.00", "2026-10-11")
    moved.event("platform.outage", "2026-10-10 12:00", account_id="*", outage_id="O1",
                start="2026-10-09T22:00:00+08:00", end="2026-10-10T03:00:00+08:00", grace_days=3)
    moved.pay("2026-10-10 13:00", "P1", "100.00")  # I1's due date moved to 10-13, after I2's
    assert moved.state.invoices["I2"].status == "paid"
    assert moved.state.invoices["I1"].balance == Decimal("100.00")


@pytest.mark.parametrize("late_payment, agreed_since", [("100.00", False), ("150.00", True)])
def test_a_late_arriving_payment_leaves_the_plan_broken_when_short_or_superseded(harness: Harness, late_payment,
                                                                                 agreed_since):
    broken_plan(harness)
    if agreed_since:
        harness.event("arrangement.agreed", "2026-10-21 09:30", arrangement_id="AR2", kind="extension",
                      new_due_date="2026-11-30")
    harness.pay("2026-10-20 23:50", "P1", late_payment)
    assert harness.state.arrangements["AR1"].status == "broken"
    assert harness.state.invoices["I1"].plan_id is None


def test_outage_moves_due_dates_and_system_errors_never_notify(harness: Harness):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.event("platform.outage", "2026-10-10 12:00", account_id="*", outage_id="O1",
                  start="2026-10-09T22:00:00+08:00", end="2026-10-10T03:00:00+08:00", grace_days=3)
    harness.event("payment.failed", "2026-10-10 12:30", payment_id="F1", amount="100.00", currency="CNY",
                  reason="system_error")
    harness.run_until("2026-10-10 13:00", "2026-10-13 23:00")
    # The due date moved to 10-13 (end of outage 10-10 plus 3 days): it is 3 days away again.
    assert harness.rules_fired() == ["due-soon"]
    harness.run_until("2026-10-14 00:00", "2026-10-14 09:00")
    assert harness.rules_fired() == ["due-soon", "overdue-day-1"]
    assert any(e.what == "decision.suppressed" and e.id == "card-invalid" for e in harness.audit)


def test_a_payment_failure_counts_once_per_payment_and_attempt(harness: Harness):
    harness.invoice("2026-10-08 10:00", "I1", "100.00", "2026-10-20")  # after National Day (a blackout)
    failure = {"payment_id": "D1", "amount": "100.00", "currency": "CNY", "reason": "invalid_payment_method"}
    assert [n.rule_id for n in harness.event("payment.failed", "2026-10-12 14:00", **failure)] == ["card-invalid"]
    assert harness.event("payment.failed", "2026-10-12 14:05", attempt=1, **failure) == []  # re-sent by billing
    assert [n.rule_id for n in harness.event("payment.failed", "2026-10-15 14:00", attempt=2, **failure)] == [
        "card-invalid"]  # the retry failed as well
    lines = [line.detail for line in harness.audit if line.what == "payment.failed"]
    assert [(line["attempt"], "ignored" in line) for line in lines] == [("1", False), ("1", True), ("2", False)]
    # Remembered for the redelivery window only, like event ids.
    for n in range(REDELIVERY_FLOOR + 1):
        harness.event("account.updated", f"2026-10-{23 + n // 4} 10:0{n % 4}", risk_tier="standard")
    assert not [key for key in harness.state.seen if key.startswith("failed:")]


def test_handoffs_carry_a_case_file_of_ids_not_personal_data(harness: Harness):
    harness.event("account.updated", "2026-09-30 10:00", channels=["email"], opted_out_channels=["sms"])
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.run_until("2026-10-10 00:00", "2026-10-12 09:00")
    harness.pay("2026-10-12 10:00", "P1", "10.00")
    harness.run_until("2026-10-12 11:00", "2026-10-17 09:00")
    [handoff] = [n for n in harness.notices if n.kind == "handoff"]
    assert [e.what for e in handoff.case_file.events] == ["payment.received"]  # the episode's
    assert [e.id for e in handoff.case_file.notices] == [n.notice_id for n in harness.notices[:-1]
                                                         if n.episode_id == handoff.episode_id]
    text = handoff.to_json().decode()
    assert "email" not in text.replace('"channel":"email"', "")  # channel prefs are not personal data copied in
    assert handoff.model_dump().keys() >= {"notice_id", "account_id", "invoices", "case_file"}


def test_opted_out_channels_are_skipped_and_an_impossible_notice_is_recorded(make_harness):
    rules = MINIMAL.replace("channel: sms", "channel: [sms, email]")
    h = make_harness(rules)
    h.event("account.updated", "2026-10-01 09:00", opted_out_channels=["sms"])
    h.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    h.tick("2026-10-11 10:00")
    assert [n.channel for n in h.notices if n.kind == "reminder"] == ["email"]
    stuck = make_harness(rules)
    stuck.event("account.updated", "2026-10-01 09:00", opted_out_channels=["sms", "email"])
    stuck.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    stuck.tick("2026-10-11 10:00")
    assert [n.kind for n in stuck.notices] == []
    assert any(e.what == "decision.suppressed" for e in stuck.audit)


def test_state_survives_a_round_trip_through_its_codec(harness: Harness, default_engine):
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.event("arrangement.agreed", "2026-10-02 10:00", arrangement_id="AR1", kind="installments",
                  schedule=[{"due_date": "2026-10-20", "amount": "50.00"}, {"due_date": "2026-10-30", "amount": "50.00"}])
    harness.run_until("2026-10-10 00:00", "2026-10-22 00:00")
    copy = Harness(default_engine)
    copy.state, copy.platform = load_account(dump_account(harness.state)), harness.platform
    assert dump_account(copy.state) == dump_account(harness.state)
    before = len(harness.notices)
    harness.run_until("2026-10-22 01:00", "2026-11-10 00:00")
    copy.run_until("2026-10-22 01:00", "2026-11-10 00:00")
    assert [n.notice_id for n in copy.notices] == [n.notice_id for n in harness.notices[before:]]
    assert copy.notices  # the broken plan did produce notices after the round trip


DAILY = """
version: "t-daily"
defaults: {timezone: Asia/Shanghai, currency: CNY}
contact_window: {start: "08:00", end: "21:00"}
rules:
  - id: daily
    when: {days_past_due: {between: [1, 7]}}
    every: 1d
    emit: {kind: reminder, channel: sms, template: overdue}
"""


def test_a_repeating_rule_counts_from_its_last_send_to_the_account_not_the_episode():
    h = Harness(Engine(load_ruleset(REPO / "rules" / "examples" / "b2b-net30.yaml")))
    h.invoice("2026-09-01T10:00:00-04:00", "I1", "800.00", "2026-10-01", currency="USD")
    h.run_until("2026-10-02T00:00:00-04:00", "2026-10-18T08:00:00-04:00")
    # An extension ends the episode; cancelled the next day, the account is 18 days late in a new episode.
    h.event("arrangement.agreed", "2026-10-18T09:30:00-04:00", arrangement_id="X1", kind="extension",
            new_due_date="2026-10-30")
    h.run_until("2026-10-18T10:00:00-04:00", "2026-10-19T08:00:00-04:00")
    h.event("arrangement.cancelled", "2026-10-19T09:30:00-04:00", arrangement_id="X1")
    h.run_until("2026-10-19T10:00:00-04:00", "2026-10-31T08:00:00-04:00")
    weekly = [n for n in h.notices if n.rule_id == "weekly-statement"]
    assert [(n.issued_at.date().isoformat(), n.episode_id) for n in weekly] == [
        ("2026-10-16", "A1/1"), ("2026-10-23", "A1/2"), ("2026-10-30", "A1/2")]


def test_a_repeating_rules_last_send_is_kept_only_while_it_can_matter(make_harness):
    h = make_harness(DAILY)
    h.invoice("2026-03-01 10:00", "A", "100.00", "2026-03-01")
    h.run_until("2026-03-02 00:00", "2026-03-02 09:00")
    assert {k: v.isoformat() for k, v in h.state.last_sent.items()} == {"daily": "2026-03-02"}
    h.pay("2026-03-02 09:30", "P1", "100.00")
    h.run_until("2026-03-02 10:00", "2026-03-04 01:00")
    assert h.state.last_sent == {}  # its day has passed (and one to spare): the entry is gone
    # A ruleset without the rule drops it at its next tick.
    h.invoice("2026-03-04 10:00", "B", "100.00", "2026-03-01")
    h.tick("2026-03-04 11:00")
    assert h.state.last_sent and [n.rule_id for n in h.notices].count("daily") == 2
    other = Harness(Engine(parse_ruleset(MINIMAL, "minimal.yaml")))
    other.state, other.platform = h.state, h.platform
    other.tick("2026-03-04 12:00")
    assert other.state.last_sent == {}
