"""The contact policy beyond one window and one pair of limits: per-channel windows and caps, blackout days, and
how the loader refuses a bad one (file, line, field)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rules.loader import RulesetError, load_ruleset, parse_ruleset
from rules.policy import parse_policy

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
sys.path.insert(0, str(SCENARIOS))
from test_scenarios import simulate  # noqa: E402

SMS_CAPPED = """
version: "t"
defaults: {timezone: Asia/Shanghai, currency: CNY}
contact_window: {start: "08:00", end: "21:00"}
channels:
  sms: {per_day: 1, per_week: 2}
rules:
  - id: daily
    when: {days_past_due: {between: [1, 9]}}
    every: 1d
    emit: {kind: reminder, channel: sms, template: overdue}
  - id: day-1
    when: {days_past_due: 1}
    emit: {kind: reminder, channel: [sms], template: overdue_first}
  - id: email-day-1
    when: {days_past_due: 1}
    emit: {kind: urgent_notice, channel: email, template: overdue_mail}
"""


def test_the_weekend_and_holiday_scenario_says_what_held_each_notice_and_withdraws_what_lapsed():
    simulation = simulate(SCENARIOS / "63-weekend-and-holiday", audit=True)
    waited = {(n.account_id, n.rule_id): n.trigger.deferred_by for n in simulation.notices if n.kind == "reminder"}
    assert "channel_window" in waited[("S1", "overdue-day-1")] and "channel_window" in waited[("S2", "overdue-day-1")]
    assert "blackout" in waited[("H1", "overdue-day-1")] and "blackout" in waited[("H1", "overdue-day-3")]
    assert not [n for n in simulation.notices if n.account_id == "H2"]
    withdrawn = [line for line in simulation.trails()["H2"] if line.what == "decision.withdrawn"]
    assert {line.id for line in withdrawn} == {"overdue-day-1", "overdue-day-3"}


def test_a_channel_cap_defers_to_the_next_day_and_counts_over_seven_days(make_harness):
    harness = make_harness(SMS_CAPPED)
    harness.invoice("2026-10-01 10:00", "I1", "100.00", "2026-10-10")
    harness.run_until("2026-10-11 00:00", "2026-10-16 23:00")
    sms = [(n.issued_at.date().isoformat(), n.rule_id) for n in harness.notices if n.channel == "sms"]
    # one SMS a day, two in any 7 days; the e-mail is not capped by the SMS cap
    assert sms == [("2026-10-11", "daily"), ("2026-10-12", "daily")]  # file order when the cap leaves one
    assert [n.channel for n in harness.notices if n.issued_at.date().isoformat() == "2026-10-11"] == ["email", "sms"]
    waiting = {p.rule_id: p.deferred_by for p in harness.state.pending}
    assert "channel_limits" in waiting["day-1"]  # waiting still, not dropped
    assert all(len(days) <= 7 for days in harness.state.channel_days.values())


@pytest.mark.parametrize("channels, expected", [
    ('{sms: {window: {mon-fry: {start: "08:00", end: "21:00"}}}}',
     "rules.yaml:5: channels.sms: window.mon-fry: 'mon-fry' is not a weekday"),
    ('{sms: {window: {fri-mon: {start: "08:00", end: "21:00"}}}}', "rules.yaml:5: channels.sms: window.fri-mon: "
     "'fri-mon': the range runs backwards"),
    ('{sms: {window: {mon-fri: {start: "08:00", end: "21:00"}, fri: {start: "09:00", end: "12:00"}}}}',
     "rules.yaml:5: channels.sms.window.fri: fri is named twice"),
    ('{sms: {per_day: 0}}', "rules.yaml:5: channels.sms.per_day: "),
])
def test_a_bad_channel_policy_is_refused_with_file_line_and_field(channels, expected):
    text = f"""version: "t"
defaults: {{timezone: Asia/Shanghai, currency: CNY}}
rules:
  - {{id: r, when: {{days_past_due: 1}}, emit: {{kind: reminder, channel: sms, template: t}}}}
channels: {channels}
"""
    with pytest.raises(RulesetError) as caught:
        parse_ruleset(text, "rules.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_a_blackout_calendar_is_read_beside_the_ruleset_and_a_bad_line_is_named(tmp_path):
    (tmp_path / "days.txt").write_text("# holidays\n2026-10-01  # National Day\n\n2026-10-02\n")
    ruleset = tmp_path / "rules.yaml"
    ruleset.write_text('version: "t"\ndefaults: {timezone: Asia/Shanghai, currency: CNY}\n'
                       'blackout: {dates: ["2026-12-25"], calendar: days.txt}\nrules: []\n')
    from datetime import date

    assert load_ruleset(ruleset).blackout.dates == [date(2026, 12, 25), date(2026, 10, 1), date(2026, 10, 2)]
    (tmp_path / "days.txt").write_text("2026-10-01\n2026-13-01\n1 Oct\n")
    with pytest.raises(RulesetError) as caught:
        load_ruleset(ruleset)
    assert caught.value.problems == [
        f"{tmp_path}/days.txt:2: blackout.calendar: '2026-13-01' is not a date (YYYY-MM-DD)",
        f"{tmp_path}/days.txt:3: blackout.calendar: '1 Oct' is not a date (YYYY-MM-DD)"]
    (tmp_path / "days.txt").unlink()
    with pytest.raises(RulesetError) as caught:
        load_ruleset(ruleset)
    assert str(caught.value).startswith(f"{ruleset}:3: blackout.calendar: cannot read days.txt")


def test_a_published_policy_carries_its_calendar_in_its_sources():
    folder = SCENARIOS / "63-weekend-and-holiday"
    text = (folder / "contact.yaml").read_text()
    policy = parse_policy(text, "contact.yaml", lambda name: (folder / name).read_text())
    assert set(policy.sources) == {"contact.yaml", "../../../rules/calendars/cn-2026.txt"}
    again = parse_policy(text, "contact.yaml", policy.sources.__getitem__)  # as a worker reads the record
    assert again.variants[0].ruleset.blackout.dates == policy.variants[0].ruleset.blackout.dates
    assert len(again.variants[0].ruleset.blackout.dates) == 33
