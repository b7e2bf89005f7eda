"""Engine.step's Outcome: the state, the notices, every audit line the step wrote, and the next wakeup."""
from __future__ import annotations

from datetime import timedelta

from rules.engine import Engine, Outcome
from rules.state import PlatformState, dump_account
from schemas.events import input_event_adapter, tick
from conftest import at


def event(type: str, when: str, event_id: str, **fields):
    return input_event_adapter.validate_python({"event_id": event_id, "type": type, "account_id": "A1",
                                                "occurred_at": at(when).isoformat(), **fields})


def test_a_step_without_state_opens_the_events_account(default_engine: Engine):
    platform = PlatformState()
    outcome = default_engine.step(None, event("invoice.issued", "2026-10-01 10:00", "e1", invoice_id="I1",
                                              amount="100.00", currency="CNY", due_date="2026-10-10"), platform)
    assert isinstance(outcome, Outcome)
    assert outcome.state.account_id == "A1" and "I1" in outcome.state.invoices
    assert [(line.what, line.id) for line in outcome.audit] == [("invoice.issued", "e1")]
    assert outcome.state.case_events == []  # no episode: no case file kept
    assert outcome.wakeup == default_engine.wakeup(outcome.state, platform)


def test_the_audit_has_every_line_the_state_does_not_keep(default_engine: Engine):
    platform = PlatformState()
    state, written = None, []
    for n in range(220):
        outcome = default_engine.step(state, event("account.updated", "2026-10-01 10:00", f"e{n}",
                                                   risk_tier="high"), platform)
        state = outcome.state
        written.extend(outcome.audit)
    assert [line.id for line in written] == [f"e{n}" for n in range(220)]
    assert state.case_events == []  # no episode: no case file kept


def test_a_tick_reports_its_decisions_notices_and_next_wakeup(default_engine: Engine):
    platform = PlatformState()
    state = default_engine.step(None, event("invoice.issued", "2026-10-01 10:00", "e1", invoice_id="I1",
                                            amount="100.00", currency="CNY", due_date="2026-10-10"), platform).state
    released, lines = [], []
    moment = at("2026-10-11 00:00")
    while not released:
        clock = tick(moment)
        default_engine.apply_platform(platform, clock)
        outcome = default_engine.step(state, clock, platform)
        released, lines = outcome.notices, outcome.audit
        moment += timedelta(hours=1)
    assert outcome.wakeup == default_engine.wakeup(state, platform)
    assert [n.notice_id for n in released] == [line.id for line in lines if line.what.startswith("notice.")]
    assert [line.id for line in lines if line.what.startswith("notice.")] == \
        [line.id for line in state.case_notices[-len(released):]]


def test_a_repeated_event_changes_nothing_and_is_audited_as_ignored(default_engine: Engine):
    platform = PlatformState()
    issued = event("invoice.issued", "2026-10-01 10:00", "e1", invoice_id="I1", amount="100.00", currency="CNY",
                   due_date="2026-10-10")
    state = default_engine.step(None, issued, platform).state
    before = dump_account(state)
    again = default_engine.step(state, issued, platform)
    assert again.state is state and again.notices == [] and dump_account(state) == before
    assert [(line.what, line.id, line.detail) for line in again.audit] == [
        ("invoice.issued", "e1", {"ignored": "event already applied (a redelivery)"})]
