"""`dunning reconcile` as a user runs it: billing's statements against the events, each difference named."""
from __future__ import annotations

import json
from pathlib import Path

from streams.tools.cli import main

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "tests" / "scenarios"
FOLDERS = ("50-statement-lost-payment", "51-statement-late", "52-statement-unknown-invoice")


def files(tmp_path: Path) -> tuple[Path, Path]:
    lines = [line for folder in FOLDERS for line in (SCENARIOS / folder / "events.jsonl").read_text().splitlines()]
    statements, events = tmp_path / "statements.jsonl", tmp_path / "events.jsonl"
    statements.write_text("".join(line + "\n" for line in lines if '"account.statement"' in line))
    events.write_text("".join(line + "\n" for line in lines if '"account.statement"' not in line))
    return statements, events


def test_reconcile_names_every_difference_and_the_rule_for_late_statements(tmp_path, capsys):
    statements, events = files(tmp_path)
    assert main(["reconcile", "--statements", str(statements), "--events", str(events),
                 "--rules", str(REPO / "rules" / "default.yaml")]) == 0
    out = capsys.readouterr().out
    assert "SL1 statement sl-2 as of 2026-06-13T02:00:00+08:00:\n  closed: SL1-I1 250.00 CNY open here" in out
    assert "sl-3 as of 2026-06-13T02:00:00+08:00: ignored (a statement as of" in out
    assert ("st-3 as of 2026-06-19T00:00:00+08:00: stale (balance events up to 2026-06-20T09:00:00+08:00 applied "
            "since as_of)\n  added: ST1-I2 120.00 CNY due 2026-06-15\n"
            "  stale: ST1-I1 amount due 200.00 -> 500.00") in out
    assert out.endswith("differences: added 2, closed 1, corrected 2, credit 1, stale 1\n")


def test_without_the_events_every_invoice_is_one_billing_knows_and_we_do_not(tmp_path, capsys):
    statements, _ = files(tmp_path)
    assert main(["reconcile", "--statements", str(statements), "--json"]) == 0
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["event_id"] for r in reports] == ["su-2", "sl-2", "sl-3", "st-3", "st-4"]
    assert reports[3]["differences"] == {"added": ["ST1-I1 500.00 CNY due 2026-06-10",
                                                   "ST1-I2 120.00 CNY due 2026-06-15"]}
    assert reports[2]["ignored"] and reports[1]["differences"] == {}


def test_an_event_that_is_not_a_statement_is_reported(tmp_path, capsys):
    statements, events = files(tmp_path)
    assert main(["reconcile", "--statements", str(events)]) == 1
    assert "(invoice.issued) is not an account.statement; give it in --events" in capsys.readouterr().err
