"""Behaviour facts as rules see them (scenario 53), and their bounds."""
from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

from rules.engine import behaviour
from rules.engine.outcome import Outcome, record
from rules.state import AccountState
from tests.rules.conftest import at

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
sys.path.insert(0, str(SCENARIOS))
from test_scenarios import simulate  # noqa: E402


def test_each_behaviour_fact_is_what_the_account_did():
    simulation = simulate(SCENARIOS / "53-behaviour-facts")
    facts = {(n.account_id, n.rule_id, n.issued_at.date().isoformat()): n.facts for n in simulation.notices}
    letter = facts[("R1", "slow-to-cure", "2026-06-13")]
    assert (letter["days_to_cure_last"], letter["episodes_12m"], letter["paid_on_time"]) == (8, 2, 0)
    legal = facts[("B1", "low-score", "2026-06-15")]
    assert (legal["score"], legal["broken_arrangements"], legal["days_to_cure_last"]) == (420, 1, 9)
    assert facts[("P1", "punctual-nudge", "2026-04-11")]["paid_on_time"] == 100
    assert facts[("P1", "punctual-nudge", "2026-07-11")]["paid_on_time"] == 80
    first = facts[("B1", "low-score", "2026-03-16")]
    assert "paid_on_time" not in first and "days_to_cure_last" not in first and first["episodes_12m"] == 1


def test_a_ruleset_that_reads_no_behaviour_fact_shows_none():
    notices = simulate(SCENARIOS / "40-breathing-space").notices
    assert notices and all(not set(n.facts) & set(behaviour.FACTS) for n in notices)


def test_episode_starts_are_kept_for_a_year_only():
    state, start = AccountState("A"), date(2026, 1, 1)
    for month in range(30):  # an episode a month for two and a half years
        out = Outcome(state)
        record(out, at("2026-01-01 00:00"), "episode.started", f"A/{month}", {})
        behaviour.observe(out, start + timedelta(days=30 * month))
    assert len(state.episode_starts) == 13
    assert behaviour.facts(state, start + timedelta(days=30 * 29))["episodes_12m"] == 13
