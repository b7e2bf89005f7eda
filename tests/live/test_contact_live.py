"""Contact rules against the real broker: the delivery-receipt scenarios (60-62), the cease request (66), a Saturday,
a Sunday and a holiday (63), the shared call cap (64), the quiet period (65) and customers' contact hours (67)
published with `dunning publish --tick 1h` (receipts to notifications.receipts, collectors' records to
collections.arrangements) to a worker give the simulator's notices, audit trail and states, and the simulator's are
the scenario files' expected lines."""
from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from livekit import DUNNING, REPO, SCENARIOS, ScenarioFile, check_oracle, compare_with_oracle, simulate

pytestmark = pytest.mark.broker


def replay(folders, rules, namespace, workers, kcat, probe, tmp_path):
    """The folders' events published together with `dunning publish --tick 1h` to one worker running `rules`;
    notices, audit trail and states compared with the simulator, whose notices are each folder's expected lines.
    Returns the audit topic's lines."""
    files = [ScenarioFile.read(folder) for folder in folders]
    # Every scenario's first event is at 10:00 local, so the hourly ticks fall as in each one alone.
    items = sorted((item for file in files for item in file.items), key=lambda item: item.event.occurred_at)
    last = max(file.until for file in files)
    oracle = simulate(items, timedelta(hours=1), last, rules)
    check_oracle(oracle, files)

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(item.raw + b"\n" for item in items))
    worker = workers("w1", start=False)
    worker.env["DUNNING_RULES"] = str(rules)
    worker.start()
    proc = subprocess.run([str(DUNNING), "publish", "--events", str(events), "--tick", "1h", "--until",
                           last.isoformat()], cwd=REPO, env=namespace.env(worker.state_dir, worker.web_port),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    probe.wait_caught_up(60, [worker])
    compare_with_oracle(kcat, namespace, oracle)
    return kcat.consume(namespace.topics.audit)


@pytest.mark.live_namespace(commit_interval=0.1)
def test_receipts_and_a_cease_live(namespace, workers, kcat, probe, tmp_path):
    trail = replay(("60-bounce-falls-back", "61-temporary-failure-retried", "62-every-channel-dead",
                    "66-cease-mid-episode"), REPO / "rules" / "default.yaml", namespace, workers, kcat, probe, tmp_path)
    assert kcat.consume(namespace.topics.receipts)  # the receipts went through their own topic
    assert any(n.replaces for n in kcat.notices())
    assert any('"decision.undeliverable"' in line for line in trail)
    assert any('"direct contact ended (cease requested)"' in line for line in trail)


@pytest.mark.live_namespace(commit_interval=0.1)
def test_shared_call_caps_and_a_quiet_period_live(namespace, workers, kcat, probe, tmp_path):
    trail = replay(("64-agency-shares-the-cap", "65-conversation-quiet-period"),
                   SCENARIOS / "64-agency-shares-the-cap" / "calls.yaml", namespace, workers, kcat, probe, tmp_path)
    assert any("channel_limits" in line for line in trail) and any("quiet_period" in line for line in trail)


@pytest.mark.live_namespace(commit_interval=0.1)
def test_customer_contact_hours_live(namespace, workers, kcat, probe, tmp_path):
    """account.updated contact_hours on accounts.profiles: the worker holds reminders for them as the simulator does,
    and stores the request in the account's state (compared with the simulator's)."""
    trail = replay(("67-customer-contact-hours",), REPO / "rules" / "default.yaml", namespace, workers, kcat, probe,
                   tmp_path)
    assert any('"waited_for":"contact_window, customer_hours"' in line for line in trail)


@pytest.mark.live_namespace(commit_interval=0.1)
def test_weekend_and_holiday_deferrals_live(namespace, workers, kcat, probe, tmp_path):
    """The SMS window of a Saturday, none on Sunday, and National Day from the calendar file the ruleset names
    (read relative to the ruleset by the worker, as by the simulator): reminders wait, a paid account's are withdrawn."""
    trail = replay(("63-weekend-and-holiday",), SCENARIOS / "63-weekend-and-holiday" / "contact.yaml", namespace,
                   workers, kcat, probe, tmp_path)
    waited = " ".join(line for line in trail if '"waited_for"' in line)
    assert "channel_window" in waited and "blackout" in waited
    assert sum('"decision.withdrawn"' in line for line in trail) == 2
