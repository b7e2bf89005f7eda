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
