"""Loading ruleset files: what the author wrote is what the engine gets, and every mistake is reported plainly."""
from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path

import pytest
import yaml

from rules.loader import RulesetError, load_ruleset, parse_ruleset
from rules.policy import load_policy

REPO = Path(__file__).resolve().parents[2]
RULESET_FILES = [REPO / "rules" / "default.yaml", *sorted((REPO / "rules" / "examples").glob("*.yaml"))]

HEADER = 'version: "1"\ndefaults: {timezone: UTC, currency: USD}\nrules:\n'  # lines 1-3
FIRST_RULE = """\
  - id: ok
    when: {days_past_due: 1}
    emit: {kind: reminder, channel: sms, template: overdue}
"""  # lines 4-6: a valid rule, so a reported line has to point past it


def ruleset(rules: str) -> str:
    return HEADER + FIRST_RULE + textwrap.indent(textwrap.dedent(rules), "  ")


def error_of(text: str, source: str = "rules.yaml") -> RulesetError:
    with pytest.raises(RulesetError) as caught:
        parse_ruleset(text, source)
    return caught.value


# --- the shipped rulesets ------------------------------------------------------------------------------------------

def test_there_are_example_rulesets():
    assert len(RULESET_FILES) >= 3


@pytest.mark.parametrize("path", RULESET_FILES, ids=lambda path: path.name)
def test_shipped_ruleset_loads(path):
    for variant in load_policy(path).variants:  # an experiment's variants are rulesets too
        assert isinstance(variant.ruleset.version, str) and variant.ruleset.version
        assert variant.ruleset.rules


def test_issue_example_reads_as_written():
    loaded = load_ruleset(REPO / "rules" / "examples" / "issue-example.yaml")
    assert loaded.version == "2026.11"
    assert (loaded.defaults.timezone, loaded.defaults.currency) == ("Asia/Shanghai", "CNY")
    assert (loaded.contact_window.start, loaded.contact_window.end) == (time(8, 0), time(21, 0))
    assert (loaded.limits.per_day, loaded.limits.per_week) == (2, 6)
    assert [rule.id for rule in loaded.rules] == [
        "due-soon", "day-1", "high-risk-daily", "collector", "demand-letter", "legal", "card-invalid",
        "promise-broken"]
    by_id = {rule.id: rule for rule in loaded.rules}
    assert by_id["card-invalid"].on == "payment.failed"
    assert by_id["promise-broken"].on == "arrangement.broken"
    assert by_id["day-1"].emit.channels == ("sms", "email")
    assert by_id["high-risk-daily"].every_days == 1
    assert by_id["legal"].emit.to == "legal"


# --- YAML 1.1 surprises the loader must not fall for ----------------------------------------------------------------

def test_on_key_stays_on():
    loaded = parse_ruleset(ruleset("""\
        - id: card-invalid
          on: payment.failed
          when: {failure_reason: invalid_payment_method}
          emit: {kind: urgent_notice, channel: sms, template: update_card}
    """))
    assert loaded.rules[1].on == "payment.failed"
    assert [rule.id for _, rule in loaded.event_rules("payment.failed")] == ["card-invalid"]


@pytest.mark.parametrize("word", ["no", "yes", "on", "off", "No", "YES", "On", "OFF", "y", "n"])
def test_yes_no_on_off_values_stay_strings(word):
    loaded = parse_ruleset(ruleset(f"""\
        - id: words
          when: {{days_past_due: 2}}
          emit: {{kind: reminder, channel: {word}, template: {word}}}
    """))
    emit = loaded.rules[1].emit
    assert (emit.channel, emit.template) == (word, word)


def test_words_in_a_channel_list_stay_strings():
    loaded = parse_ruleset(ruleset("""\
        - id: words
          when: {days_past_due: 2}
          emit: {kind: reminder, channel: [sms, no, off], template: overdue}
    """))
    assert loaded.rules[1].emit.channels == ("sms", "no", "off")


@pytest.mark.parametrize("start, end", [("08:00", "21:00"), ("21:00", "07:30"), ("09:00", "17:45")])
def test_unquoted_clock_times_stay_times(start, end):
    # YAML 1.1 reads 21:00 as 1260 (base 60); the contact window must get the time the author wrote.
    text = HEADER.replace("rules:\n", f"contact_window: {{start: {start}, end: {end}}}\nrules:\n") + FIRST_RULE
    window = parse_ruleset(text).contact_window
    assert (window.start.isoformat("minutes"), window.end.isoformat("minutes")) == (start, end)


def test_colon_values_elsewhere_stay_strings():
    loaded = parse_ruleset(ruleset("""\
        - id: times
          when: {days_past_due: 2}
          emit: {kind: reminder, channel: sms, template: 21:00}
    """))
    assert loaded.rules[1].emit.template == "21:00"


def test_true_and_false_are_still_booleans_and_numbers_still_numbers():
    loaded = parse_ruleset(ruleset("""\
        - id: first-timers
          when: {days_past_due: 15, first_time: true, overdue_invoices: {gte: 2}}
          emit: {kind: reminder, channel: sms, template: overdue}
    """))
    rule = loaded.rules[1]
    assert rule.matches({"days_past_due": 15, "first_time": True, "overdue_invoices": 2})
    assert not rule.matches({"days_past_due": 15, "first_time": False, "overdue_invoices": 2})


def test_yes_is_not_taken_for_true():
    error = error_of(ruleset("""\
        - id: first-timers
          when: {days_past_due: 2, first_time: yes}
          emit: {kind: reminder, channel: sms, template: overdue}
    """))
    assert str(error) == "rules.yaml:8: rule 'first-timers': when.first_time: expected true or false, got 'yes'"


def test_loader_leaves_pyyaml_alone():
    # The faithful resolvers belong to our loader only; other yaml.safe_load users keep YAML 1.1.
    parse_ruleset(ruleset(""))
    assert yaml.safe_load("on: yes\nat: 21:00") == {True: True, "at": 1260}


def test_merge_keys_may_be_overridden():
    loaded = parse_ruleset(ruleset("""\
        - &reminder
          id: day-3
          when: {days_past_due: 3}
          emit: {kind: reminder, channel: sms, template: overdue}
        - <<: *reminder
          id: day-5
          when: {days_past_due: 5}
    """))
    assert [(rule.id, rule.when) for rule in loaded.rules[1:]] == [
        ("day-3", {"days_past_due": 3}), ("day-5", {"days_past_due": 5})]


def test_no_python_objects():
    error = error_of('version: !!python/name:os.getcwd ""\ndefaults: {timezone: UTC, currency: USD}\n')
    assert str(error).startswith("rules.yaml:1: not valid YAML: could not determine a constructor")


# --- mistakes in a rule: file, line, rule id, field, and what is wrong --------------------------------------------

RULE_MISTAKES = [
    pytest.param("""\
        - id: bad
          when:
            days_overdue: 3
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "when.days_overdue", "unknown fact; known here: arrangement, broken_arrangements, contact_ceased, days_past_due",
                 id="unknown fact"),
    pytest.param("""\
        - id: bad
          when:
            days_past_due: 1
            unreachable_channels: two
          emit: {kind: handoff, to: collector}
    """, 10, "when.unreachable_channels", "expected a whole number of items, got 'two'", id="contact count"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 1, contact_ceased: yes}
          emit: {kind: handoff, to: legal}
    """, 8, "when.contact_ceased", "expected true or false, got 'yes'", id="contact flag"),
    pytest.param("""\
        - id: bad
          when: {days_since_conversation: {gte: "7d"}}
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "when.days_since_conversation", "expected a whole number of days, got '7d'", id="conversation days"),
    pytest.param("""\
        - id: bad
          on: contact.recorded
          when: {outcome: hung_up}
          emit: {kind: urgent_notice, channel: sms, template: t}
    """, 9, "when.outcome", "'hung_up' is not one of no_answer", id="contact outcome"),
    pytest.param("""\
        - id: bad
          when:
            days_past_due: {atleast: 3}
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "when.days_past_due", "unknown operator 'atleast'", id="unknown operator"),
    pytest.param("""\
        - id: bad
          when:
            days_past_due: 15
            overdue_amount: {gte: 100.50}
          emit: {kind: urgent_notice, channel: letter, template: t}
    """, 10, "when.overdue_amount", 'quoted decimal strings ("100.50"), not floats', id="float money"),
    pytest.param("""\
        - id: bad
          when:
            overdue_amount: {between: ["10.00", 99.9]}
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "when.overdue_amount", "not floats", id="float money in between"),
    pytest.param("""\
        - id: bad
          when:
            overdue_amount: {gte: "1,000.00"}
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "when.overdue_amount", "'1,000.00' is not a decimal amount", id="money with separator"),
    pytest.param("""\
        - id: bad
          when:
            days_past_due: {between: [7, 1]}
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "when.days_past_due", "between bounds are reversed: 7 > 1", id="reversed between"),
    pytest.param("""\
        - id: bad
          when:
            days_past_due: {between: [1, 3, 7]}
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "when.days_past_due", "between takes a list of two bounds", id="between with three bounds"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 30}
          emit: {kind: handoff}
    """, 9, "emit", "a handoff needs to: collector, agency, legal or a team the ruleset lists",
                 id="handoff without to"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 30}
          emit: {kind: handoff, to: bailiff}
    """, 9, "emit.to", "'bailiff' is not a team; use collector, agency, legal, or list it under teams:",
                 id="handoff to unknown team"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 30}
          emit: {kind: handoff, to: agency, channel: sms}
    """, 9, "emit", "a handoff has no channel", id="handoff with channel"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 2}
          emit: {kind: reminder, template: overdue}
    """, 9, "emit", "a reminder needs a channel", id="reminder without channel"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 2}
          emit: {kind: reminder, channel: [], template: overdue}
    """, 9, "emit", "a reminder needs a channel", id="reminder with empty channel list"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 2}
          emit: {kind: urgent_notice, channel: letter}
    """, 9, "emit", "a urgent_notice needs a template", id="urgent notice without template"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 2}
          emit: {kind: reminder, channel: sms, template: overdue, to: agency}
    """, 9, "emit.to", "is for handoffs, not for a reminder", id="reminder with to"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 2}
          emit: {kind: letter, channel: post, template: overdue}
    """, 9, "emit.kind", "'reminder', 'urgent_notice', 'handoff', 'offer', 'write_off', 'restrict' or 'lift'",
                 id="unknown kind"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 60}
          emit: {kind: offer, channel: letter, template: settle, settle: {percent: 70, amount: "100.00", valid_days: 14}}
    """, 9, "emit.settle", "give either percent or amount", id="offer with percent and amount"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 60}
          emit: {kind: offer, channel: letter, template: settle}
    """, 9, "emit", "an offer needs settle", id="offer without terms"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 60}
          emit: {kind: offer, channel: letter, template: settle, settle: {percent: 70.5, valid_days: 14}}
    """, 9, "emit.settle.percent", "quoted decimal string", id="offer percent as a float"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 180}
          emit: {kind: write_off, channel: letter}
    """, 9, "emit", "has no channel", id="write-off with a channel"),
    pytest.param("""\
        - id: bad
          when: {days_until_due: 3}
          emit: {kind: write_off, reason: small_balance}
    """, 9, "emit", "use days_past_due", id="write-off before the due date"),
    pytest.param("""\
        - id: bad
          on: payment.bounced
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "on", "'payment.bounced' is not an event a rule can react to", id="unknown on event"),
    pytest.param("""\
        - id: bad
          on: clock.tick
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "on", "'clock.tick' is not an event a rule can react to", id="on clock.tick"),
    pytest.param("""\
        - id: bad
          on: payment.failed
          every: 1d
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "every", "for time rules only", id="every on event rule"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 1}
          every: daily
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "every", "String should match pattern", id="every not an interval"),
    pytest.param("""\
        - id: bad
          on: payment.failed
          when: {days_until_due: 3}
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "when.days_until_due", "unknown fact", id="days_until_due on event rule"),
    pytest.param("""\
        - id: bad
          when: {failure_reason: other}
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "when.failure_reason", "unknown fact", id="event fact on time rule"),
    pytest.param("""\
        - id: bad
          when: {days_until_due: 3, days_past_due: 1}
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "when", "either before the due date (days_until_due) or after it (days_past_due)",
        id="days_until_due with days_past_due"),
    pytest.param("""\
        - id: bad
          when: {risk_tier: {gte: standard}}
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "when.risk_tier", "gte compares numbers; use eq or in", id="order operator on a choice"),
    pytest.param("""\
        - id: bad
          when: {risk_tier: medium}
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "when.risk_tier", "'medium' is not one of low, standard, high", id="unknown choice"),
    pytest.param("""\
        - id: bad
          on: payment.failed
          when: {failure_reason: {in: [insufficient_funds, card_expired]}}
          emit: {kind: reminder, channel: sms, template: t}
    """, 9, "when.failure_reason", "'card_expired' is not one of", id="unknown failure reason"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 2.5}
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "when.days_past_due", "expected a whole number of days, got 2.5", id="fractional days"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: [1, 7]}
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "when.days_past_due", "a list needs an operator", id="bare list"),
    pytest.param("""\
        - id: bad
          wehn: {days_past_due: 2}
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "wehn", "unknown field (check its spelling)", id="misspelt field"),
    pytest.param("""\
        - id: bad
          currency: usd
          when: {overdue_amount: {gte: "5.00"}}
          emit: {kind: reminder, channel: sms, template: t}
    """, 8, "currency", "not an ISO 4217 currency code", id="rule currency"),
    pytest.param("""\
        - id: bad
          when: {days_past_due: 2}
    """, 7, "emit", "Field required", id="no emit"),
]


@pytest.mark.parametrize("rules, line, field, says", RULE_MISTAKES)
def test_rule_mistake_is_reported_with_file_line_rule_and_field(rules, line, field, says):
    error = error_of(ruleset(rules))
    assert len(error.problems) == 1
    prefix = f"rules.yaml:{line}: rule 'bad': {field}: "
    assert str(error).startswith(prefix), str(error)
    assert says in str(error).removeprefix(prefix)


def test_duplicate_rule_id_points_at_the_second_rule():
    error = error_of(ruleset("""\
        - id: other
          when: {days_past_due: 2}
          emit: {kind: reminder, channel: sms, template: overdue}
        - id: ok
          when: {days_past_due: 3}
          emit: {kind: reminder, channel: sms, template: overdue}
    """))
    assert str(error) == "rules.yaml:10: rule 'ok': id: rule id 'ok' is already used by rule #1"


def test_rule_without_id_is_named_by_position():
    error = error_of(ruleset("""\
        - when: {days_past_due: 2}
          emit: {kind: reminder, channel: sms, template: overdue}
    """))
    assert str(error) == "rules.yaml:7: rule #2: id: Field required"


def test_every_mistake_in_a_file_is_reported_at_once():
    error = error_of(ruleset("""\
        - id: first-bad
          when: {days_late: 1}
          emit: {kind: reminder, channel: sms, template: t}
        - id: second-bad
          when: {days_past_due: 30}
          emit: {kind: handoff}
    """))
    assert [problem.split(": ")[0:2] for problem in error.problems] == [
        ["rules.yaml:8", "rule 'first-bad'"], ["rules.yaml:12", "rule 'second-bad'"]]


# --- mistakes in the rest of the file -------------------------------------------------------------------------------

FILE_MISTAKES = [
    pytest.param('version: 2026.10\ndefaults: {timezone: UTC, currency: USD}\nrules: []\n',
                 'rules.yaml:1: version: quote the version ("2026.1")', id="unquoted version"),
    pytest.param('version: 3\ndefaults: {timezone: UTC, currency: USD}\nrules: []\n',
                 'rules.yaml:1: version: quote the version ("3")', id="unquoted integer version"),
    pytest.param('version: "1"\ndefaults:\n  timezone: Mars/Olympus\n  currency: USD\nrules: []\n',
                 "rules.yaml:3: defaults.timezone: 'Mars/Olympus' is not an IANA time zone name", id="bad timezone"),
    pytest.param('version: "1"\ndefaults:\n  timezone: Asia\n  currency: USD\nrules: []\n',
                 "rules.yaml:3: defaults.timezone: 'Asia' is not an IANA time zone name", id="timezone region"),
    pytest.param('version: "1"\ndefaults:\n  timezone: UTC\n  currency: usd\nrules: []\n',
                 "rules.yaml:4: defaults.currency: 'usd' is not an ISO 4217", id="bad currency"),
    pytest.param('version: "1"\nrules: []\n', "rules.yaml:1: defaults: Field required", id="no defaults"),
    pytest.param(HEADER + 'contact_window: {start: "09:00", end: "09:00"}\n',
                 "rules.yaml:4: contact_window: the contact window is empty", id="empty contact window"),
    pytest.param(HEADER.replace("rules:\n", "limits:\n  per_day: 0\nrules: []\n"),
                 "rules.yaml:4: limits.per_day: Input should be greater than or equal to 1", id="zero limit"),
    pytest.param(HEADER + "  id: not-a-list\n", "rules.yaml:4: rules: Input should be a valid list",
                 id="rules not a list"),
    pytest.param(HEADER + "  - day-1\n", "rules.yaml:4: rule #1: Input should be a valid dictionary",
                 id="rule not a mapping"),
    pytest.param('version: "1"\ndefaults: {timezone: UTC, currency: USD\nrules: []\n',
                 "rules.yaml:3: not valid YAML: expected ',' or '}'", id="unclosed flow mapping"),
    pytest.param(HEADER + FIRST_RULE + "  - id: two\n   when: {days_past_due: 2}\n",
                 "rules.yaml:8: not valid YAML:", id="bad indentation"),
    pytest.param(HEADER + FIRST_RULE + "\t- id: two\n", "rules.yaml:7: not valid YAML: found character '\\t'",
                 id="tab indentation"),
    pytest.param(HEADER + FIRST_RULE + '  - id: "two\n', "rules.yaml:8: not valid YAML:", id="unclosed quote"),
    pytest.param(HEADER + FIRST_RULE + '  - id: t\x00wo\n', "rules.yaml:7: not valid YAML: control character #x0000",
                 id="control character"),
    pytest.param(HEADER + FIRST_RULE + "---\nversion: \"2\"\n", "rules.yaml:7: not valid YAML:", id="two documents"),
    pytest.param("", "rules.yaml: the file is empty", id="empty file"),
    pytest.param("# rules to come\n\n", "rules.yaml: the file is empty", id="only comments"),
    pytest.param("- day-1\n- day-3\n", "rules.yaml: a ruleset is a mapping with version, defaults and rules",
                 id="top level list"),
    pytest.param(HEADER + FIRST_RULE + "? [a, b]\n: 1\n", "rules.yaml:7: a key must be a plain word",
                 id="list as key"),
    pytest.param("a: &loop [*loop]\n", "rules.yaml: not valid YAML: nested too deeply, or an alias contains itself",
                 id="alias loop"),
]


@pytest.mark.parametrize("text, says", FILE_MISTAKES)
def test_file_mistake_is_reported_with_file_and_line(text, says):
    assert str(error_of(text)).startswith(says)


@pytest.mark.parametrize("text, line, key", [
    pytest.param(HEADER + FIRST_RULE + 'version: "2"\n', 7, "version", id="top level"),
    pytest.param(HEADER + "  - id: a\n    when: {days_past_due: 1}\n    id: b\n", 6, "id", id="in a rule"),
    pytest.param(HEADER + "  - id: a\n    when: {days_past_due: 1, days_past_due: 3}\n", 5, "days_past_due",
                 id="in a flow mapping"),
    pytest.param(HEADER + "  - id: a\n    when:\n      days_past_due: 1\n\n      days_past_due: 3\n", 8,
                 "days_past_due", id="in a block mapping"),
])
def test_duplicate_key_is_refused_with_its_line(text, line, key):
    assert str(error_of(text)) == f"rules.yaml:{line}: key {key!r} appears twice"


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(RulesetError) as caught:
        load_ruleset(path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(RulesetError) as caught:
        load_ruleset(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: cannot read:")


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes('version: "café"\n'.encode("latin-1"))
    with pytest.raises(RulesetError) as caught:
        load_ruleset(path)
    assert str(caught.value) == f"{path}: not UTF-8 text"


def test_load_ruleset_names_the_file_it_read(tmp_path):
    path = tmp_path / "team-a.yaml"
    path.write_text(ruleset("""\
        - id: bad
          when: {days_past_due: {between: [7, 1]}}
          emit: {kind: reminder, channel: sms, template: t}
    """))
    with pytest.raises(RulesetError) as caught:
        load_ruleset(path)
    assert str(caught.value).startswith(f"{path}:8: rule 'bad': when.days_past_due: ")

