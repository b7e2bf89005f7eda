"""The command line of policy operations offline: rules check on an experiment, rules publish refusing a bad file
before it reaches Kafka, simulate --rules-at."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rules.loader import load_ruleset
from streams.tools.cli import main

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "tests" / "scenarios" / "01-stages-standard" / "events.jsonl"


def test_rules_check_describes_an_experiment(capsys):
    default = load_ruleset(REPO / "rules" / "default.yaml")
    assert main(["rules", "check", str(REPO / "rules" / "examples" / "experiment.yaml")]) == 0
    assert capsys.readouterr().out.endswith(
        f"experiment.yaml: ok (experiment contact-earlier-2026-12: champion 50%: version {default.version}, "
        f"{len(default.rules)} rules; challenger 50%: version 2026.12-challenger, 17 rules)\n")


def test_rules_publish_refuses_a_bad_file_with_the_checkers_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # never reached
    bad = tmp_path / "experiment.yaml"
    bad.write_text("experiment:\n  id: e\n  variants:\n    a: {share: 60, rules: a.yaml}\n"
                   "    b: {share: 60, rules: a.yaml}\n")
    assert main(["rules", "publish", str(bad)]) == 1
    assert capsys.readouterr().err == (f"{bad}:4: experiment.variants: the shares must add up to 100, not 120 "
                                       "(a 60, b 60)\n")


def test_simulate_switches_at_the_time_given(tmp_path, capsys):
    first = json.loads(EVENTS.read_text().splitlines()[0])["occurred_at"]
    assert main(["simulate", "--rules", str(REPO / "rules" / "default.yaml"), "--rules-at",
                 f"{first}={REPO / 'rules' / 'examples' / 'b2b-net30.yaml'}", "--events", str(EVENTS),
                 "--until", "2026-12-31T00:00:00+08:00"]) == 0
    versions = {json.loads(line)["ruleset_version"] for line in capsys.readouterr().out.splitlines()}
    assert versions == {"2026.11-b2b-net30"}


def test_simulate_names_a_bad_rules_at(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["simulate", "--rules", "x.yaml", "--rules-at", "tomorrow", "--events", str(EVENTS)])
    assert exit.value.code == 2
    assert "'tomorrow' is not TIME=FILE" in capsys.readouterr().err
