"""`dunning simulate` as a user runs it: JSON lines out, sorted; bad lines reported and counted; --explain."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from schemas.events import parse_event
from schemas.export import SCHEMA_DIR
from streams.tools.cli import main
from streams.generators.generate import generate, to_jsonl_bytes

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RULES = str(REPO / "rules" / "default.yaml")

# November, clear of the default's holidays: over National Day (1-7 October) the due-soon reminders would wait
# past the due date and be withdrawn, and these tests are about what simulate prints, not the calendar.
EVENTS = [
    {"event_id": "e1", "type": "invoice.issued", "account_id": "B", "occurred_at": "2026-11-05T10:00:00+08:00",
     "invoice_id": "B-1", "amount": "100.00", "currency": "CNY", "due_date": "2026-11-09"},
    {"event_id": "e2", "type": "invoice.issued", "account_id": "A", "occurred_at": "2026-11-05T10:30:00+08:00",
     "invoice_id": "A-1", "amount": "100.00", "currency": "CNY", "due_date": "2026-11-09"},
    {"event_id": "e3", "type": "payment.failed", "account_id": "A", "occurred_at": "2026-11-06T12:00:00+08:00",
     "payment_id": "F1", "amount": "100.00", "currency": "CNY", "reason": "invalid_payment_method"},
]


def write_events(tmp_path: Path, extra_lines: list[str] = ()) -> Path:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(e) for e in EVENTS]
    lines[1:1] = extra_lines
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prints_sorted_notices_as_json_lines(tmp_path, capsys):
    events = write_events(tmp_path)
    code = main(["simulate", "--rules", DEFAULT_RULES, "--events", str(events), "--until", "2026-11-17T00:00:00+08:00"])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    keys = [(n["issued_at"], n["account_id"], n["notice_id"]) for n in out]
    assert keys == sorted(keys)
    assert {(n["account_id"], n["rule_id"]) for n in out} >= {
        ("A", "due-soon"), ("B", "due-soon"), ("A", "card-invalid"), ("A", "overdue-day-1"), ("B", "collector")}
    assert all(n["ruleset_version"] == "2026.11-default" for n in out)


def test_bad_lines_are_reported_with_their_number_and_the_rest_still_runs(tmp_path, capsys):
    events = write_events(tmp_path, ['{"event_id": "x", "type": "payment.received"', '{"event_id": "y", '
                                     '"type": "invoice.issued", "account_id": "A", "occurred_at": '
                                     '"2026-11-05T10:00:00+08:00", "invoice_id": "Z", "amount": 12.5, '
                                     '"currency": "CNY", "due_date": "2026-11-09"}'])
    code = main(["simulate", "--rules", DEFAULT_RULES, "--events", str(events), "--until", "2026-11-07T00:00:00+08:00"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{events}:2: rejected" in captured.err and "JSON" in captured.err
    assert f"{events}:3: rejected" in captured.err and "amount" in captured.err
    assert "card-invalid" in captured.out  # events after the bad lines were processed


def test_explain_shows_each_notice_with_its_rule_and_facts(tmp_path, capsys):
    events = write_events(tmp_path)
    main(["simulate", "--rules", DEFAULT_RULES, "--events", str(events), "--until", "2026-11-17T00:00:00+08:00",
          "--explain"])
    out = capsys.readouterr().out
    account_a = out[out.index("account A"):out.index("account B")]
    assert "invoice.issued e2" in account_a
    assert "URGENT_NOTICE via sms (template update_payment_method)" in account_a
    assert "rule card-invalid" in account_a and "failure_reason=invalid_payment_method" in account_a
    assert "HANDOFF open -> collector" in out[out.index("account B"):]


def test_explain_shows_write_offs_and_recoveries_no_rule_made(capsys):
    events = REPO / "tests" / "scenarios" / "29-recovery-after-write-off" / "events.jsonl"
    assert main(["simulate", "--rules", DEFAULT_RULES, "--events", str(events), "--until",
                 "2026-12-10T00:00:00+08:00", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "written_off: n-" in out and "reason=uncollectible written_off=500.00 CNY invoice_ids=R1-I1" in out
    assert "  WRITE_OFF  [n-" in out and out.count("  RECOVERY  [n-") == 2
    assert "recovered: R1-P2  recovered=300.00 CNY" in out


def test_a_bad_ruleset_stops_simulate_with_the_checker_message(tmp_path, capsys):
    rules = tmp_path / "bad.yaml"
    rules.write_text('version: "1"\ndefaults: {timezone: Mars/Base, currency: CNY}\nrules: []\n')
    code = main(["simulate", "--rules", str(rules), "--events", str(write_events(tmp_path))])
    err = capsys.readouterr().err
    assert code == 1 and f"{rules}:2" in err and "Mars/Base" in err and "Traceback" not in err


def test_the_installed_console_script_runs(tmp_path):
    events = write_events(tmp_path)
    result = subprocess.run([sys.executable, "-m", "streams.tools.cli", "simulate", "--rules", DEFAULT_RULES, "--events",
                             str(events), "--tick", "30m", "--until", "2026-11-10T00:00:00+08:00"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) >= 3


def test_audit_file_holds_the_simulations_lines_in_order(tmp_path, capsys):
    """--audit writes the lines the live tests compare the worker's dunning.audit with: the simulator's, in order,
    each valid against the exported schema."""
    jsonschema = pytest.importorskip("jsonschema")
    start = datetime.fromisoformat("2026-11-01T00:00:00+08:00")
    until = start + timedelta(days=25)
    lines = to_jsonl_bytes(generate(20, 20, start, seed=3))
    events, audit = tmp_path / "events.jsonl", tmp_path / "audit.jsonl"
    events.write_bytes(b"".join(lines))
    assert main(["simulate", "--rules", DEFAULT_RULES, "--events", str(events), "--tick", "3h",
                 "--until", until.isoformat(), "--audit", str(audit)]) == 0
    capsys.readouterr()

    simulation = Simulation(Engine(load_ruleset(Path(DEFAULT_RULES))), audit=[])
    simulation.run([parse_event(line) for line in lines], timedelta(hours=3), until)
    written = audit.read_bytes().splitlines()
    assert written == [record.to_json() for record in simulation.audit]
    assert {record.what.split(".")[0] for record in simulation.audit} >= {"invoice", "notice", "decision", "episode"}
    validator = jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / "audit.schema.json").read_text()))
    assert [error.message for line in written for error in validator.iter_errors(json.loads(line))] == []
