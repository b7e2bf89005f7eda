"""`dunning explain` and GET /accounts/{id} show what the contact rules know of an account."""
from __future__ import annotations

import sys
from pathlib import Path

from streams.runtime.explain import account_report, render_report

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
sys.path.insert(0, str(SCENARIOS))
from test_scenarios import simulate  # noqa: E402


def test_the_account_report_names_dead_channels_and_a_cease():
    dead = simulate(SCENARIOS / "62-every-channel-dead")
    report = account_report(dead.engine, dead.accounts["D1"], dead.platform, None)
    assert report["contact"]["unreachable_channels"] == ["sms", "email"] and report["contact"]["ceased"] is None
    assert "unreachable: sms, email; direct contact allowed" in render_report(report)
    ceased = simulate(SCENARIOS / "66-cease-mid-episode")
    report = account_report(ceased.engine, ceased.accounts["X1"], ceased.platform, None)
    assert report["contact"]["ceased"] == "cease_requested"
    assert "direct contact ended (cease requested)" in render_report(report)


def test_the_account_report_shows_the_hours_a_customer_asked_for():
    hours = simulate(SCENARIOS / "67-customer-contact-hours")
    report = account_report(hours.engine, hours.accounts["C1"], hours.platform, None)
    assert report["contact"]["customer_hours"] == "*: mon-fri 18:00-20:00; app_push: sat 10:00-12:00"
    assert "contact hours the customer asked for: *: mon-fri 18:00-20:00; app_push" in render_report(report)
    dropped = account_report(hours.engine, hours.accounts["C3"], hours.platform, None)  # {} dropped the request
    assert dropped["contact"]["customer_hours"] is None
    assert "contact hours the customer asked for" not in render_report(dropped)
