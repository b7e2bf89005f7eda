"""`dunning publish --tick` (settled) against a live worker gives the simulator's notices."""
from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from livekit import DUNNING, REPO, WORKLOAD_START, compare_notices, items_from_lines, simulate

from streams.generators.generate import generate, to_jsonl_bytes

pytestmark = pytest.mark.broker

START = WORKLOAD_START


@pytest.mark.live_namespace(commit_interval=0.1)
def test_dunning_publish_keeps_the_simulators_order(namespace, workers, kcat, probe, tmp_path):
    lines = to_jsonl_bytes(generate(20, 30, START, 7))
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(lines))
    until = START + timedelta(days=40)
    worker = workers("w1")
    proc = subprocess.run([str(DUNNING), "publish", "--events", str(events), "--tick", "1h", "--until",
                           until.isoformat()], cwd=REPO, env=namespace.env(worker.state_dir, worker.web_port),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    probe.wait_caught_up(60, [worker])  # publish returns once the last ticks are sent, not consumed
    compare_notices(kcat.notices(), simulate(items_from_lines(lines), timedelta(hours=1), until).notices)
