"""Runs every scenario folder through the simulator and compares with its expected notices."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from schemas.audit import AuditRecord
from schemas.events import parse_event
from schemas.notices import Notice
from streams.tools.args import duration

HERE = Path(__file__).parent
REPO = HERE.parent.parent
SCENARIOS = sorted(path.parent for path in HERE.glob("*/scenario.yaml"))


def describe(notice: Notice) -> str:
    if notice.kind == "handoff":
        target = f"{notice.to}/{notice.action}"
    elif notice.kind == "restriction":
        target = f"{notice.restriction.action}/{notice.restriction.state}"
    elif notice.channel:
        target = notice.channel
    else:  # a decision to billing: what was paid (or recovered) and written off
        target = " ".join(f"{name}={amount}{currency}" for name in ("paid", "written_off")
                          for currency, amount in sorted((getattr(notice, name) or {}).items()))
    return f"{notice.issued_at.isoformat()} {notice.account_id} {notice.kind} {notice.rule_id or '-'} {target}"


def audited(record: AuditRecord) -> str | None:
    """An audit line as audit.txt has it: every decision, and every event the engine ignored (a repeat, or about
    something unknown); the hash of a notice id is left out."""
    if not (record.what.startswith("decision.") or "ignored" in record.detail):
        return None
    detail = " ".join(f"{name}={value}" for name, value in record.detail.items() if name != "notice_id")
    return " ".join(f"{record.at.isoformat()} {record.account_id} {record.what} {record.id} {detail}".split())


def expected_lines(folder: Path, name: str = "expected.txt") -> list[str]:
    lines = []
    for line in (folder / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(" ".join(line.split()))
    return lines


def simulate(folder: Path, audit: bool = False) -> Simulation:
    spec = yaml.safe_load((folder / "scenario.yaml").read_text())
    rules_path = REPO / spec["rules"] if not (folder / spec["rules"]).exists() else folder / spec["rules"]
    events = [parse_event(line) for line in (folder / "events.jsonl").read_bytes().splitlines() if line.strip()]
    simulation = Simulation(Engine(load_ruleset(rules_path)), audit=[])
    until = datetime.fromisoformat(str(spec["until"]))
    simulation.run(events, duration(spec.get("tick", "1h")) if spec.get("tick") != "none" else None, until)
    return simulation


def test_the_suite_is_there():
    assert len(SCENARIOS) >= 15


@pytest.mark.parametrize("folder", SCENARIOS, ids=[folder.name for folder in SCENARIOS])
def test_scenario(folder: Path):
    simulation = simulate(folder)
    assert [describe(n) for n in simulation.sorted_notices()] == expected_lines(folder)


AUDITED = [folder for folder in SCENARIOS if (folder / "audit.txt").exists()]


@pytest.mark.parametrize("folder", AUDITED, ids=[folder.name for folder in AUDITED])
def test_scenario_audit(folder: Path):
    """audit.txt, where a scenario has one: its decisions and ignored events, in the simulator's order."""
    lines = [audited(record) for record in simulate(folder).audit]
    assert [line for line in lines if line] == expected_lines(folder, "audit.txt")


@pytest.mark.parametrize("folder", SCENARIOS, ids=[folder.name for folder in SCENARIOS])
def test_no_notice_id_twice(folder: Path):
    ids = [n.notice_id for n in simulate(folder).notices]
    assert len(ids) == len(set(ids))


def dump(folder: Path) -> str:
    """For writing a new scenario: prints what the simulator says (review it before pasting into expected.txt,
    and the audit lines into audit.txt)."""
    simulation = simulate(folder)
    return "\n".join([describe(n) for n in simulation.sorted_notices()] + ["# audit.txt"]
                     + [line for line in map(audited, simulation.audit) if line])


if __name__ == "__main__":
    import sys

    print(dump(HERE / sys.argv[1]))
