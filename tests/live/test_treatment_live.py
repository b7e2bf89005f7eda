"""Flags, restrictions, billing's statements and behaviour facts against the real broker: scenarios 40-53, published
together per ruleset with hourly ticks to one worker, give the simulator's notices (restrictions on
dunning.decisions), audit trail and states; and the simulator's are the scenario files' expected lines."""
from __future__ import annotations

import sys
from datetime import datetime, timedelta

import pytest
import yaml
from livekit import (
    REPO,
    compare_audit,
    compare_notices,
    compare_states,
    items_from_lines,
    phases,
    schedule,
    simulate,
    stored_accounts,
)

pytestmark = pytest.mark.broker

SCENARIOS = REPO / "tests" / "scenarios"
sys.path.insert(0, str(SCENARIOS))
from test_scenarios import describe, expected_lines  # noqa: E402

GROUPS = {  # by the ruleset the worker runs
    "default": ("rules/default.yaml", ("40-breathing-space", "42-do-not-dun", "43-deceased", "44-bankruptcy",
                                       "45-fraud-cleared", "46-vulnerable", "50-statement-lost-payment",
                                       "51-statement-late", "52-statement-unknown-invoice")),
    "reage": ("tests/scenarios/41-hardship-reaged/rules.yaml", ("41-hardship-reaged",)),
    "behaviour": ("tests/scenarios/53-behaviour-facts/rules.yaml", ("53-behaviour-facts",)),
    "credit-line": ("rules/examples/credit-line.yaml", ("47-restriction-lifted-on-cure",
                                                        "48-restriction-lifted-on-write-off",
                                                        "49-restriction-lifted-by-rule")),
}


@pytest.mark.parametrize("group", sorted(GROUPS))
@pytest.mark.live_namespace(commit_interval=0.1)
def test_flag_restriction_and_statement_scenarios_live(group, namespace, workers, kcat, probe, publisher):
    rules, folders = GROUPS[group]
    rules = REPO / rules
    items, until, accounts = [], {}, {}
    for folder in folders:
        # The ticks a scenario file carries (a redelivered one) are the schedule's own: the schedule sends them.
        events = [item for item in items_from_lines((SCENARIOS / folder / "events.jsonl").read_bytes().splitlines())
                  if item.event.type != "clock.tick"]
        accounts[folder] = {item.event.account_id for item in events}
        until[folder] = datetime.fromisoformat(
            str(yaml.safe_load((SCENARIOS / folder / "scenario.yaml").read_text())["until"]))
        items += events
    # Ticks fall on whole hours in every scenario, so one hourly schedule serves them all.
    items.sort(key=lambda item: item.event.occurred_at)
    last = max(until.values())
    oracle = simulate(items, timedelta(hours=1), last, rules=rules)
    for folder, mine in accounts.items():  # the oracle is each scenario's own simulation, up to its end
        mine = [describe(n) for n in oracle.sorted_notices()
                if n.account_id in mine and n.issued_at <= until[folder]]
        assert mine == expected_lines(SCENARIOS / folder), folder

    worker = workers("w1", start=False)
    worker.env["DUNNING_RULES"] = str(rules)
    worker.start()
    publisher.run(phases(schedule(items, timedelta(hours=1), last), namespace.topics), [worker])
    live = kcat.notices()
    compare_notices(live, oracle.notices)
    if group == "credit-line":
        assert {n.restriction.state for n in live if n.kind == "restriction"} == {"applied", "lifted"}
    assert kcat.consume(namespace.topics.dead_letter) == []
    compare_audit(kcat.audit(), oracle)
    compare_states(stored_accounts(kcat, namespace), oracle.accounts)
