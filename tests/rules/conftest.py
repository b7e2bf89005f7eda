"""Fixtures for engine tests: a one-account harness that feeds events and ticks and collects notices."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rules.engine import Engine
from rules.loader import load_ruleset, parse_ruleset
from rules.model import Ruleset
from rules.state import AccountState, JournalEntry, PlatformState
from schemas.events import input_event_adapter, tick
from schemas.notices import Notice

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "tests" / "scenarios"


def simulate_scenarios(folders: tuple[str, ...], until: str, rules: Path | Ruleset = REPO / "rules" / "default.yaml",
                       audit: bool = False):
    """Scenario folders' events simulated together, in time order, with hourly ticks until `until`, under a ruleset
    file or a ruleset."""
    from rules.simulator import Simulation
    from schemas.events import parse_event

    events = sorted((parse_event(line) for folder in folders
                     for line in (SCENARIOS / folder / "events.jsonl").read_bytes().splitlines() if line.strip()),
                    key=lambda event: event.occurred_at)
    simulation = Simulation(Engine(rules if isinstance(rules, Ruleset) else load_ruleset(rules)))
    if audit:
        simulation.audit = []
    simulation.run(events, timedelta(hours=1), datetime.fromisoformat(until))
    return simulation


def default_before_blackout() -> Ruleset:
    """The default ruleset as layouts 1 to 3 stored their states: before it had a holiday calendar."""
    return load_ruleset(REPO / "rules" / "default.yaml").model_copy(update={"blackout": None})


SHANGHAI = "+08:00"


def at(text: str) -> datetime:
    """'2026-10-11 08:00' in Shanghai time (the default ruleset's zone), or any RFC 3339 string."""
    if "T" not in text:
        text = text.replace(" ", "T") + ":00" + SHANGHAI
    return datetime.fromisoformat(text)


class Harness:
    def __init__(self, engine: Engine, account_id: str = "A1"):
        self.engine = engine
        self.platform = PlatformState()
        self.state = AccountState(account_id=account_id)
        self.account_id = account_id
        self.notices: list[Notice] = []
        self.audit: list[JournalEntry] = []  # every audit line, as the worker would publish them
        self._ids = itertools.count(1)

    def event(self, type: str, when: str, **fields) -> list[Notice]:
        payload = {"event_id": fields.pop("event_id", f"e{next(self._ids)}"), "type": type,
                   "account_id": fields.pop("account_id", self.account_id), "occurred_at": at(when).isoformat(),
                   **fields}
        return self.feed(input_event_adapter.validate_python(payload))

    def feed(self, event) -> list[Notice]:
        self.engine.apply_platform(self.platform, event)
        outcome = self.engine.step(self.state, event, self.platform)
        self.notices.extend(outcome.notices)
        self.audit.extend(outcome.audit)
        return outcome.notices

    def tick(self, when: str) -> list[Notice]:
        return self.feed(tick(at(when)))

    def run_until(self, start: str, end: str, every: timedelta = timedelta(hours=1)) -> list[Notice]:
        released, moment, stop = [], at(start), at(end)
        while moment <= stop:
            released.extend(self.feed(tick(moment)))
            moment += every
        return released

    def invoice(self, when: str, invoice_id: str, amount: str, due: str, currency: str = "CNY") -> list[Notice]:
        return self.event("invoice.issued", when, invoice_id=invoice_id, amount=amount, currency=currency,
                          due_date=due)

    def pay(self, when: str, payment_id: str, amount: str, currency: str = "CNY", **fields) -> list[Notice]:
        return self.event("payment.received", when, payment_id=payment_id, amount=amount, currency=currency,
                          **fields)

    def rules_fired(self) -> list[str]:
        return [n.rule_id for n in self.notices]


@pytest.fixture
def default_engine() -> Engine:
    return Engine(load_ruleset(REPO / "rules" / "default.yaml"))


@pytest.fixture
def harness(default_engine: Engine) -> Harness:
    return Harness(default_engine)


@pytest.fixture
def make_harness():
    """A harness over a ruleset written inline in the test."""
    def build(ruleset_yaml: str, account_id: str = "A1") -> Harness:
        return Harness(Engine(parse_ruleset(ruleset_yaml, "test.yaml")), account_id)
    return build
