"""`dunning report` on a generated stream whose customers answer contacts (streams/generators/respond.py): the challenger,
built to contact earlier and more, cures more, and the report says so with an interval."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rules.policy import PolicyEngine, load_policy
from schemas.events import parse_event
from streams.tools.cli import main
from streams.generators.generate import generate, to_jsonl_bytes
from streams.generators.respond import respond

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "rules" / "examples" / "experiment.yaml"
START = datetime.fromisoformat("2026-11-01T00:00:00+08:00")
UNTIL = START + timedelta(days=100)


@pytest.fixture(scope="module")
def answered_stream(tmp_path_factory) -> Path:
    base = [parse_event(line) for line in to_jsonl_bytes(generate(1200, 45, START, 11))]
    events = respond(base, PolicyEngine(load_policy(EXPERIMENT)), timedelta(hours=1), UNTIL, chance=0.15, seed=11)
    path = tmp_path_factory.mktemp("report") / "events.jsonl"
    path.write_bytes(b"".join(e.model_dump_json(exclude_none=True).encode() + b"\n" for e in events))
    return path


def simulate_audit(events: Path, tmp_path: Path, capsys) -> Path:
    audit = tmp_path / "audit.jsonl"
    assert main(["simulate", "--rules", str(EXPERIMENT), "--events", str(events), "--until", UNTIL.isoformat(),
                 "--audit", str(audit)]) == 0
    capsys.readouterr()
    return audit


def test_the_challenger_built_to_cure_more_is_reported_to_cure_more(answered_stream, tmp_path, capsys):
    answers = [json.loads(line) for line in answered_stream.read_bytes().splitlines()
               if b'"answer-' in line]
    assert len(answers) > 200  # customers answered contacts with payments
    audit = simulate_audit(answered_stream, tmp_path, capsys)
    # every answer pays an invoice a notice named, some hours after it: the simulator replays the same notices
    applied = {json.loads(line)["id"] for line in audit.read_bytes().splitlines() if b'"payment.received"' in line}
    assert {answer["event_id"] for answer in answers} <= applied

    assert main(["report", "--audit", str(audit), "--json", "--png", str(tmp_path / "report.png")]) == 0
    figures = json.loads(capsys.readouterr().out)
    champion, challenger = figures["variants"]["champion"], figures["variants"]["challenger"]
    assert 0.4 < figures["accounts"]["champion"] / 1200 < 0.6  # a 50/50 split
    assert challenger["cured"]["30"]["rate"] > champion["cured"]["30"]["rate"]
    [comparison] = figures["comparisons"]
    assert comparison["low"] > 0, comparison
    assert comparison["verdict"].startswith("challenger cures more than champion: +")
    assert set(figures["rules"]["challenger"]) >= {"everyone-daily", "overdue-day-2"}
    assert "overdue-day-3" not in figures["rules"]["challenger"] and "overdue-day-3" in figures["rules"]["champion"]
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["report", "--audit", str(audit)]) == 0
    text = capsys.readouterr().out
    assert "challenger cures more than champion" in text and "roll rates between aging buckets" in text


def test_a_report_on_too_few_accounts_says_so(answered_stream, tmp_path, capsys):
    few = tmp_path / "few.jsonl"
    accounts = {f"acct-{n:06d}" for n in range(60)}
    few.write_bytes(b"".join(line + b"\n" for line in answered_stream.read_bytes().splitlines()
                             if json.loads(line)["account_id"] in accounts))
    assert main(["report", "--audit", str(simulate_audit(few, tmp_path, capsys))]) == 0
    assert "not enough accounts yet" in capsys.readouterr().out


def test_a_file_that_is_not_an_audit_trail_is_refused_line_by_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"account_id": "a"}\n')
    assert main(["report", "--audit", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:1: not an audit line" in err and "no audit lines to report on" in err
