"""Flags, restrictions and statements as the audit trail and `explain` show them: what a collections team and its
regulator read back (the notices themselves are checked by tests/scenarios 40-52)."""
from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pytest

from rules.engine.holds import days_past
from rules.loader import RulesetError, parse_ruleset
from rules.state import Hold
from streams.runtime.explain import account_report

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
sys.path.insert(0, str(SCENARIOS))
from test_scenarios import simulate  # noqa: E402


def lines(folder: str, what: str):
    return [record.line() for record in simulate(SCENARIOS / folder).audit if record.what == what]


def test_days_past_due_resume_after_a_hold_or_start_afresh_when_re_aged():
    due, held = date(2026, 6, 10), [Hold(date(2026, 6, 15), date(2026, 8, 12))]
    assert days_past(due, date(2026, 6, 14), held) == 4  # the flag's own day still counts
    assert days_past(due, date(2026, 7, 1), held) == 4  # stands still while held
    assert days_past(due, date(2026, 8, 13), held) == 5  # resumes the day after
    assert days_past(date(2026, 7, 1), date(2026, 8, 13), held) == 1  # fell due inside the hold
    assert days_past(due, date(2026, 7, 1), [Hold(date(2026, 6, 15))]) == 4  # still holding
    reaged = [Hold(date(2026, 6, 15), date(2026, 8, 12), reage=True)]
    assert days_past(due, date(2026, 8, 12), reaged) == 0 and days_past(due, date(2026, 8, 13), reaged) == 1
    assert days_past(date(2026, 8, 20), date(2026, 8, 25), reaged) == 5  # due after it: untouched


def test_a_breathing_space_is_audited_with_its_reference_and_ends_at_its_until():
    flagged, = lines("40-breathing-space", "account.flagged")
    assert flagged.detail == {"flag": "breathing_space", "until": "2026-08-12", "reference": "DRS-2026-0614-1"}
    expired, = lines("40-breathing-space", "decision.flag_expired")
    assert expired.at.isoformat() == "2026-08-13T00:00:00+08:00" and expired.detail["until"] == "2026-08-12"
    collector = [n for n in simulate(SCENARIOS / "40-breathing-space").notices if n.rule_id == "collector"]
    assert collector[0].days_past_due == 7 and collector[0].facts["days_past_due"] == 7


def test_do_not_dun_records_each_suppression_once():
    suppressed = lines("42-do-not-dun", "decision.suppressed")
    assert [line.id for line in suppressed] == ["due-soon", "overdue-day-1", "overdue-day-3", "card-invalid",
                                                "collector"]
    assert {line.detail["reason"] for line in suppressed} == {"account flagged do_not_dun"}
    assert all(line.detail["notice_id"].startswith("n-") for line in suppressed)


def test_deceased_and_bankrupt_accounts_get_no_customer_contact_and_say_why():
    reasons = {line.id: line.detail["reason"] for line in lines("43-deceased", "decision.suppressed")}
    assert reasons == {"demand-letter": "account flagged deceased: no customer contact",
                       "final-notice": "account flagged deceased: no customer contact"}
    waiting = lines("44-bankruptcy", "decision.suppressed")[0]  # decided at midnight, stopped before 08:00
    assert waiting.id == "overdue-day-3" and waiting.at.isoformat() == "2026-06-13T02:00:00+08:00"


def test_flags_are_a_fact_shown_by_notices_and_explain():
    simulation = simulate(SCENARIOS / "46-vulnerable")
    demand = next(n for n in simulation.notices if n.rule_id == "demand-letter")
    assert demand.facts["flags"] == "vulnerable"
    assert "flags" not in simulation.notices[0].facts  # none stood yet
    state = simulation.accounts["VU1"]
    report = account_report(simulation.engine, state, simulation.platform, None)
    assert report["flags"] == [{"flag": "vulnerable", "since": "2026-06-12T11:00:00+08:00", "until": None,
                                "reference": "VC-12"}]


def test_restrictions_lift_with_their_reason_and_show_in_explain():
    def reasons(folder):
        return [(line.detail["restriction"], line.detail["state"], line.detail.get("reason"))
                for line in lines(folder, "notice.restriction")]
    assert reasons("47-restriction-lifted-on-cure")[2:] == [("freeze_credit", "lifted", "cured"),
                                                            ("block_purchases", "lifted", "cured")]
    assert reasons("48-restriction-lifted-on-write-off")[2:] == [("block_purchases", "lifted", "written_off"),
                                                                 ("freeze_credit", "lifted", "cured")]
    assert ("block_purchases", "lifted", "plan-unblocks") in reasons("49-restriction-lifted-by-rule")
    simulation = simulate(SCENARIOS / "48-restriction-lifted-on-write-off")
    lifted = [n for n in simulation.notices if n.kind == "restriction" and n.restriction.state == "lifted"]
    applied = {n.notice_id for n in simulation.notices if n.kind == "restriction" and n.restriction.state == "applied"}
    assert {n.restriction.applied_notice_id for n in lifted} == applied


def test_explain_shows_the_restrictions_applied_now():
    simulation = simulate(SCENARIOS / "49-restriction-lifted-by-rule")
    report = account_report(simulation.engine, simulation.accounts["RR1"], simulation.platform, None)
    assert [(r["action"], r["rule_id"]) for r in report["restrictions"]] == [("freeze_credit", "freeze-credit")]


def test_a_statement_records_what_differed():
    closed, = lines("50-statement-lost-payment", "decision.reconciled")
    assert closed.detail == {"as_of": "2026-06-13T02:00:00+08:00",
                             "closed": "SL1-I1 250.00 CNY open here, settled at billing"}
    repeat = lines("50-statement-lost-payment", "account.statement")[1]
    assert repeat.detail["ignored"].startswith("a statement as of 2026-06-13T02:00:00+08:00 was applied")
    withdrawn, = lines("50-statement-lost-payment", "decision.withdrawn")
    assert withdrawn.id == "overdue-day-3"


def test_a_late_statement_adds_what_we_never_heard_of_and_applies_nothing_else():
    stale, current = lines("51-statement-late", "decision.reconciled")
    assert stale.detail == {"as_of": "2026-06-19T00:00:00+08:00",
                            "added": "ST1-I2 120.00 CNY due 2026-06-15",
                            "stale": "ST1-I1 amount due 200.00 -> 500.00"}
    assert current.detail == {"as_of": "2026-06-23T00:00:00+08:00", "corrected": "ST1-I2 amount due 120.00 -> 20.00"}
    event, _ = lines("51-statement-late", "account.statement")
    assert event.detail["stale"] == "balance events up to 2026-06-20T09:00:00+08:00 applied since as_of"


def test_an_unknown_invoice_a_correction_and_credit_from_one_statement():
    found, = lines("52-statement-unknown-invoice", "decision.reconciled")
    assert found.detail == {"as_of": "2026-06-12T09:00:00+08:00", "added": "SU1-I9 180.00 CNY due 2026-06-01",
                            "corrected": "SU1-I1 amount due 300.00 -> 240.00", "credit": "USD 0 -> 5.00"}


RULESET = """\
version: "t"
defaults: {timezone: Asia/Shanghai, currency: CNY}
rules:
"""


@pytest.mark.parametrize("rule, says", [
    ("{id: r, when: {days_past_due: 3}, emit: {kind: restrict}}", "emit: a restrict needs action"),
    ("{id: r, when: {days_past_due: 3}, every: 1d, emit: {kind: restrict, action: freeze_credit}}",
     "every: a restriction is applied once and lifted once"),
    ("{id: r, when: {days_until_due: 3}, emit: {kind: lift, action: freeze_credit}}",
     "a lift is about overdue debt"),
    ("{id: r, when: {days_past_due: 3}, emit: {kind: reminder, channel: sms, template: t, action: x}}",
     "action: is for restrict and lift"),
    ("{id: r, when: {days_past_due: 3, flags: {gte: 1}}, emit: {kind: handoff, to: agency}}",
     "when.flags: gte does not apply to a set"),
    ("{id: r, when: {days_past_due: 3, flags: insolvent}, emit: {kind: handoff, to: agency}}",
     "when.flags: 'insolvent' is not one of breathing_space"),
    ("{id: r, on: account.flagged, when: {flag: fraud}, emit: {kind: handoff, to: fraud}}",
     "emit.to: 'fraud' is not a team"),
])
def test_mistakes_in_the_new_rule_language_are_reported(rule, says):
    with pytest.raises(RulesetError) as caught:
        parse_ruleset(RULESET + f"  - {rule}\n", "t.yaml")
    assert says in str(caught.value) and "t.yaml:4: rule 'r'" in str(caught.value)


def test_flag_conditions_match_what_stands():
    ruleset = parse_ruleset(RULESET + """\
  - {id: any, when: {flags: {in: [deceased, fraud]}}, emit: {kind: handoff, to: legal}}
  - {id: none, when: {flags: {not_in: [vulnerable]}}, emit: {kind: handoff, to: legal}}
  - {id: exactly, when: {flags: {eq: []}}, emit: {kind: handoff, to: legal}}
  - {id: bare, when: {flags: vulnerable}, emit: {kind: handoff, to: legal}}
""", "t.yaml")
    def matching(flags):
        return [rule.id for rule in ruleset.rules if rule.matches({"flags": flags} if flags else {})]
    assert matching(None) == ["none", "exactly"]
    assert matching("fraud") == ["any", "none"]
    assert matching("fraud,vulnerable") == ["any", "bare"]


def test_a_repeating_rule_silenced_by_a_flag_waits_its_interval_as_after_a_send(harness):
    """Review finding: a waiting notice of a repeating rule that do_not_dun stopped did not count as decided, so the
    next tick decided it again: suppressed twice under one notice id while the flag stood, and sent that same day
    under the suppressed id once the flag was lifted. As on a cease, the rule now waits its interval."""
    harness.event("account.updated", "2026-11-01 09:00", risk_tier="high")
    harness.invoice("2026-11-01 10:00", "I1", "300.00", "2026-11-09")
    harness.run_until("2026-11-10 00:00", "2026-11-10 03:00")  # day 1: high-risk-daily waits for 08:00
    assert "high-risk-daily" in {pending.rule_id for pending in harness.state.pending}
    harness.event("account.flagged", "2026-11-10 03:30", flag="do_not_dun")
    harness.run_until("2026-11-10 04:00", "2026-11-10 05:00")
    harness.event("account.unflagged", "2026-11-10 05:30", flag="do_not_dun")
    harness.run_until("2026-11-10 06:00", "2026-11-11 09:00")
    suppressed = [line.detail["notice_id"] for line in harness.audit
                  if line.what == "decision.suppressed" and line.id == "high-risk-daily"]
    daily = [n for n in harness.notices if n.rule_id == "high-risk-daily"]
    assert len(suppressed) == 1 and not {n.notice_id for n in daily} & set(suppressed)
    assert [n.issued_at.isoformat() for n in daily] == ["2026-11-11T08:00:00+08:00"]  # day 2: its interval passed
