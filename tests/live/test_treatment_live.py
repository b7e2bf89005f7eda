"""Flags, restrictions, billing's statements and behaviour facts against the real broker: scenarios 40-53, published
together per ruleset with hourly ticks to one worker, give the simulator's notices (restrictions on
dunning.decisions), audit trail and states; and the simulator's are the scenario files' expected lines."""
from __future__ import annotations

from datetime import timedelta

import pytest
from livekit import REPO, ScenarioFile, check_oracle, compare_with_oracle, phases, schedule, simulate

pytestmark = pytest.mark.broker

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
    files = [ScenarioFile.read(folder) for folder in folders]
    # The ticks a scenario file carries (a redelivered one) are the schedule's own: the schedule sends them.
    items = [item for file in files for item in file.items if item.event.type != "clock.tick"]
    # Ticks fall on whole hours in every scenario, so one hourly schedule serves them all.
    items.sort(key=lambda item: item.event.occurred_at)
    last = max(file.until for file in files)
    oracle = simulate(items, timedelta(hours=1), last, rules=rules)
    check_oracle(oracle, files)

    worker = workers("w1", start=False)
    worker.env["DUNNING_RULES"] = str(rules)
    worker.start()
    publisher.run(phases(schedule(items, timedelta(hours=1), last), namespace.topics), [worker])
    live = compare_with_oracle(kcat, namespace, oracle)
    if group == "credit-line":
        assert {n.restriction.state for n in live if n.kind == "restriction"} == {"applied", "lifted"}
