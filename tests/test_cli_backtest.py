"""`dunning backtest` on the demo stream (make demo's: 300 accounts, 30 days, seed 7): the policy in force and a
challenger side by side, the differences counted the same way the simulator's notices give them."""
from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rules.policy import PolicyEngine, load_policy
from rules.simulator import Simulation
from schemas.events import parse_event
from streams.tools.cli import main
from streams.generators.generate import generate, to_jsonl_bytes

REPO = Path(__file__).resolve().parents[1]
OLD, NEW = REPO / "rules" / "default.yaml", REPO / "rules" / "examples" / "challenger-earlier.yaml"
START = datetime.fromisoformat("2026-11-01T00:00:00+08:00")
END = START + timedelta(days=45)


@pytest.fixture(scope="module")
def demo_stream(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("backtest") / "events.jsonl"
    path.write_bytes(b"".join(to_jsonl_bytes(generate(300, 30, START, 7))))
    return path


def backtest(capsys, events: Path, *extra: str, old: Path = OLD, new: Path = NEW) -> str:
    assert main(["backtest", "--from", START.isoformat(), "--to", END.isoformat(), "--rules", str(old),
                 "--rules", str(new), "--events", str(events), *extra]) == 0
    return capsys.readouterr().out


def notices(rules: Path, events: Path):
    simulation = Simulation(PolicyEngine(load_policy(rules)))
    simulation.run([parse_event(line) for line in events.read_bytes().splitlines()], timedelta(hours=1), END)
    return simulation.notices


def test_contacts_handoffs_and_new_notices_side_by_side(demo_stream, capsys):
    out = backtest(capsys, demo_stream)
    old, new = notices(OLD, demo_stream), notices(NEW, demo_stream)
    for channel in ("app_push", "sms", "email"):
        count = lambda ns: sum(1 for n in ns if n.kind != "handoff" and n.channel == channel)  # noqa: E731
        before, after = count(old), count(new)
        change = re.escape(f"{after - before:+d}")
        assert re.search(rf"^{channel}\s+{before}\s+{after}\s+{change}$", out, re.M), (channel, out)
    assert re.search(r"^app_push\s+\d+\s+\d+\s+\+\d+$", out, re.M)  # the challenger's daily pushes
    opened = sum(1 for n in old if n.kind == "handoff" and n.action == "open")
    assert re.search(rf"^collector \(open\)\s+{opened}\s", out, re.M)

    def handled(ns):
        return Counter((n.account_id, n.kind, n.channel or f"{n.to} ({n.action})", n.issued_at.date()) for n in ns)

    outside = sum((handled(new) - handled(old)).values())
    assert outside > 100
    assert f"notices outside what the old policy sent (same account, kind, channel or target, day): {outside};" in out
    most = re.search(r"only old\n(acct-\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out)
    account = most.group(1)
    assert int(most.group(2)) == sum(1 for n in old if n.account_id == account)
    assert int(most.group(3)) == sum(1 for n in new if n.account_id == account)

    explained = backtest(capsys, demo_stream, "--explain", account)
    lines = [line for line in explained.splitlines()[2:] if line.strip()]
    assert len(lines) == int(most.group(2)) + int(most.group(3))
    assert sum(line.endswith("only challenger-earlier") for line in lines) == int(most.group(4))
    assert sum(line.endswith("only default") for line in lines) == int(most.group(5))


def test_the_same_policy_twice_differs_nowhere(demo_stream, capsys):
    out = backtest(capsys, demo_stream, new=OLD)
    assert "notices outside what the old policy sent (same account, kind, channel or target, day): 0;" in out
    assert "no account is handled differently" in out


def test_a_bad_ruleset_is_refused_with_the_checkers_message(demo_stream, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text('version: "x"\ndefaults: {timezone: Asia/Shanghai, currency: CNY}\nrules:\n  - id: r\n'
                   '    when: {days_past_due: 1}\n    emit: {kind: reminder, channel: sms}\n')
    assert main(["backtest", "--from", START.isoformat(), "--to", END.isoformat(), "--rules", str(OLD),
                 "--rules", str(bad), "--events", str(demo_stream)]) == 1
    assert "bad.yaml:6: rule 'r': emit: a reminder needs a template" in capsys.readouterr().err
