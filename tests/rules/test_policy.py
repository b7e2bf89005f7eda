"""Policies: experiments (variants by a stable hash, shares checked like any ruleset field) and switches between
rulesets at a tick, with rule identity kept by id."""
from __future__ import annotations

import textwrap
from collections import Counter
from datetime import timedelta

import pytest

from rules.loader import RulesetError
from rules.policy import PolicyEngine, Schedule, load_policy, parse_policy
from rules.simulator import Simulation
from schemas.events import input_event_adapter

from conftest import REPO, at

RULES = textwrap.dedent("""\
    version: "{version}"
    defaults: {{timezone: Asia/Shanghai, currency: CNY}}
    contact_window: {{start: "08:00", end: "21:00"}}
    rules:
    {rules}
    """)
DAY_1 = """  - id: day-1
    when: {days_past_due: 1}
    emit: {kind: reminder, channel: sms, template: %s}"""
DAY_3 = """  - id: day-3
    when: {days_past_due: 3}
    emit: {kind: reminder, channel: sms, template: second}"""
COLLECTOR_2 = """  - id: collector
    when: {days_past_due: 2}
    emit: {kind: handoff, to: collector}"""


def ruleset_text(version: str, *rules: str) -> str:
    return RULES.format(version=version, rules="\n".join(rules))


def policy_of(text: str, files: dict[str, str] | None = None):
    return parse_policy(text, "policy.yaml", (files or {}).__getitem__)


def experiment(shares: dict[str, int], rules: dict[str, str] | None = None) -> str:
    lines = ["experiment:", "  id: exp-1", "  variants:"]
    for name, share in shares.items():
        lines.append(f"    {name}: {{share: {share}, rules: {(rules or {}).get(name, name + '.yaml')}}}")
    return "\n".join(lines) + "\n"


FILES = {"champion.yaml": ruleset_text("A", DAY_1 % "first"), "challenger.yaml": ruleset_text("B", DAY_1 % "first",
                                                                                               COLLECTOR_2)}


def test_ten_thousand_accounts_split_close_to_the_shares_and_never_flip():
    engine = PolicyEngine(policy_of(experiment({"champion": 80, "challenger": 20}), FILES))
    accounts = [f"acct-{n:06d}" for n in range(10_000)]
    split = Counter(engine.variant_of(account) for account in accounts)
    assert abs(split["champion"] - 8000) < 150 and abs(split["challenger"] - 2000) < 150, split
    again = PolicyEngine(policy_of(experiment({"champion": 80, "challenger": 20}), FILES))
    assert all(engine.variant_of(a) == again.variant_of(a) for a in accounts[:2000])


def test_another_experiment_id_reshuffles_the_accounts():
    first = PolicyEngine(policy_of(experiment({"champion": 50, "challenger": 50}), FILES))
    second = PolicyEngine(policy_of(experiment({"champion": 50, "challenger": 50}).replace("exp-1", "exp-2"), FILES))
    accounts = [f"acct-{n}" for n in range(2000)]
    same = sum(first.variant_of(a) == second.variant_of(a) for a in accounts)
    assert 850 < same < 1150  # independent hashes: about half agree


def test_shares_that_do_not_add_up_to_100_are_refused_naming_the_file_and_line():
    with pytest.raises(RulesetError) as error:
        policy_of(experiment({"champion": 80, "challenger": 30}), FILES)
    assert str(error.value) == ("policy.yaml:4: experiment.variants: the shares must add up to 100, not 110 "
                                "(champion 80, challenger 30)")


def inline_challenger(ruleset: str) -> str:
    """A 50/50 experiment of champion.yaml against a challenger written inline (`ruleset` from line 8 on)."""
    head = textwrap.dedent("""\
        experiment:
          id: exp-1
          variants:
            champion: {share: 50, rules: champion.yaml}
            challenger:
              share: 50
              rules:
        """)
    return head + textwrap.indent(textwrap.dedent(ruleset), " " * 8)


def test_a_mistake_in_an_inline_variant_names_the_variant_rule_and_field():
    text = inline_challenger("""\
        version: "B"
        defaults: {timezone: Asia/Shanghai, currency: CNY}
        rules:
          - id: bad
            when: {days_past_due: "three"}
            emit: {kind: reminder, channel: sms, template: t}
        """)
    with pytest.raises(RulesetError) as error:
        policy_of(text, FILES)
    assert str(error.value).startswith("policy.yaml:12: variant 'challenger': rule 'bad': when.days_past_due: ")


def test_a_missing_variant_file_is_named():
    with pytest.raises(RulesetError) as error:
        policy_of(experiment({"champion": 50, "challenger": 50}, {"challenger": "nowhere.yaml"}), FILES)
    assert str(error.value) == "policy.yaml:5: variant 'challenger': cannot read nowhere.yaml: not found"


def test_a_mistake_in_a_variant_file_names_that_file():
    files = {**FILES, "challenger.yaml": ruleset_text("B", DAY_1 % "first").replace("sms", "[]")}
    with pytest.raises(RulesetError) as error:
        policy_of(experiment({"champion": 50, "challenger": 50}), files)
    assert str(error.value).startswith("challenger.yaml:7: rule 'day-1': emit: ")


def test_the_shipped_experiment_loads_both_rulesets():
    policy = load_policy(REPO / "rules" / "examples" / "experiment.yaml")
    assert [(v.name, v.share, v.ruleset.version) for v in policy.variants] == [
        ("champion", 50, "2026.11-default"), ("challenger", 50, "2026.12-challenger")]


# ----------------------------------------------------------------- switching at a tick

def events(*payloads: dict) -> list:
    return [input_event_adapter.validate_python(p) for p in payloads]


def overdue_account(account: str = "A1") -> list:
    """An invoice due 2026-11-05 (Shanghai), never paid."""
    return events({"event_id": f"{account}-i", "type": "invoice.issued", "account_id": account,
                   "occurred_at": "2026-11-01T10:00:00+08:00", "invoice_id": f"{account}-inv", "amount": "300.00",
                   "currency": "CNY", "due_date": "2026-11-05"})


def run(seed_text: str, switches: list[tuple[str, str]], until: str = "2026-11-12 00:00") -> Simulation:
    seed = PolicyEngine(policy_of(seed_text))
    schedule = Schedule(seed, [(at(when), PolicyEngine(policy_of(text))) for when, text in switches])
    simulation = Simulation(seed, audit=[], schedule=schedule)
    simulation.run(overdue_account(), timedelta(hours=1), at(until))
    return simulation


@pytest.mark.parametrize("switch, expected", [
    ("2026-11-07 00:00", [("collector-b", "2026-11-07 00:00")]),  # a tick at the time itself switches
    ("2026-11-07 00:00:01", [("collector", "2026-11-07 00:00"), ("collector-b", "2026-11-07 01:00")]),
])
def test_the_switch_happens_at_the_first_tick_at_or_after_its_time(switch, expected):
    # day 2 is 11-07: A's collector and B's (another rule id) are both due from its first tick
    old = ruleset_text("A", COLLECTOR_2)
    new = ruleset_text("B", COLLECTOR_2.replace("id: collector", "id: collector-b"))
    when = at(switch) if switch.count(":") == 1 else at(switch.replace(" ", "T") + "+08:00")
    seed = PolicyEngine(policy_of(old))
    simulation = Simulation(seed, schedule=Schedule(seed, [(when, PolicyEngine(policy_of(new)))]))
    simulation.run(overdue_account(), timedelta(hours=1), at("2026-11-09 00:00"))
    assert [(n.rule_id, n.issued_at) for n in simulation.notices] == [(rule, at(t)) for rule, t in expected]
    assert {n.ruleset_version for n in simulation.notices if n.rule_id == "collector-b"} == {"B"}


def test_a_once_per_episode_rule_that_fired_does_not_fire_again_after_the_switch():
    old = ruleset_text("A", DAY_1 % "first")
    new = ruleset_text("B", DAY_1 % "new wording", COLLECTOR_2)  # same id, changed template
    simulation = run(old, [("2026-11-06 12:00", new)])
    sent = [(n.rule_id, n.template or n.to, n.ruleset_version) for n in simulation.notices]
    assert sent == [("day-1", "first", "A"), ("collector", "collector", "B")]


def test_a_removed_rules_waiting_notice_is_withdrawn_and_recorded():
    # day 1 begins at 00:00 on 11-06; its reminder waits for the 08:00 contact window; the switch at 03:00 drops it
    old = ruleset_text("A", DAY_1 % "first", DAY_3)
    new = ruleset_text("B", DAY_3)
    simulation = run(old, [("2026-11-06 03:00", new)])
    assert [n.rule_id for n in simulation.notices] == ["day-3"]
    withdrawn = [r for r in simulation.audit if r.what == "decision.withdrawn"]
    assert [(r.id, r.at, r.detail["reason"]) for r in withdrawn] == [
        ("day-1", at("2026-11-06 03:00"), "rule day-1 is not in ruleset B")]


def test_a_rollback_is_a_republish_of_the_old_file():
    old, new = ruleset_text("A", DAY_1 % "first", DAY_3), ruleset_text("B", DAY_1 % "first")
    simulation = run(old, [("2026-11-05 12:00", new), ("2026-11-07 12:00", old)])
    assert [(n.rule_id, n.ruleset_version) for n in simulation.notices] == [("day-1", "B"), ("day-3", "A")]


def test_every_account_is_looked_at_by_the_new_policy_at_the_switch():
    # Nothing would wake this account before 11-05 under A (no invoice rule); B looks 3 days ahead of due dates.
    due_soon = """  - id: due-soon
    when: {days_until_due: 3}
    emit: {kind: handoff, to: collector}"""
    simulation = run(ruleset_text("A", DAY_3), [("2026-11-02 06:00", ruleset_text("B", due_soon, DAY_3))])
    assert [(n.rule_id, n.issued_at) for n in simulation.notices][:1] == [("due-soon", at("2026-11-02 06:00"))]


def test_an_inline_variants_calendar_is_read_beside_the_policy_and_published_with_it():
    text = inline_challenger("""\
        version: "B"
        defaults: {timezone: Asia/Shanghai, currency: CNY}
        blackout: {dates: ["2026-12-25"], calendar: days.txt}
        rules: []
        """)
    policy = policy_of(text, {**FILES, "days.txt": "2026-10-01  # National Day\n"})
    challenger = {variant.name: variant.ruleset for variant in policy.variants}["challenger"]
    assert [day.isoformat() for day in challenger.blackout.dates] == ["2026-12-25", "2026-10-01"]
    assert set(policy.sources) == {"policy.yaml", "champion.yaml", "days.txt"}
    again = parse_policy(text, "policy.yaml", policy.sources.__getitem__)  # as a worker reads the record
    assert {v.name: v.ruleset for v in again.variants}["challenger"].blackout.dates == challenger.blackout.dates
    with pytest.raises(RulesetError) as error:
        policy_of(text, FILES)
    assert str(error.value) == "policy.yaml:10: blackout.calendar: cannot read days.txt: not found"
