"""The worker's liveness and readiness endpoints (what deploy/kubernetes probes), against the real broker."""
from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta

import pytest

from livekit import generated, get, phases, schedule, simulate_in_order, wait_assignment

pytestmark = pytest.mark.broker


def health(port: int) -> tuple[int | None, int | None, dict | None]:
    """(/livez status, /readyz status, /readyz body); None while nothing listens on the port."""
    try:
        live, _ = get(f"http://127.0.0.1:{port}/livez")
        ready, body = get(f"http://127.0.0.1:{port}/readyz")
    except OSError:
        return None, None, None
    return live, ready, json.loads(body)


def watch(worker, until, timeout: float = 90) -> list[tuple[int | None, int | None, dict | None]]:
    """Polls the worker's probes every 50 ms until `until(last answer)`; every answer seen, in order."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(health(worker.web_port))
        if until(seen[-1]):
            return seen
        assert worker.alive, worker.tail()
        time.sleep(0.05)
    raise AssertionError(f"timed out; last answers {seen[-5:]}\n{worker.tail()}")


def test_ready_only_once_the_tables_are_restored(namespace, workers, kcat, probe, publisher):
    ordered = schedule(generated(accounts=40, days=20, seed=11), timedelta(hours=12), None)
    first = workers("a")
    publisher.run(phases(ordered, namespace.topics), workers=[first])
    live, ready, body = health(first.web_port)
    assert (live, ready, body) == (200, 200, {"ready": True, "partitions": [0, 1, 2]})

    # Restarted without its state directory: alive at once, ready only when the changelog is read back, and
    # from the first ready answer on, every account is served from the restored table.
    first.terminate()
    shutil.rmtree(first.state_dir)
    first.start(wait=False)
    seen = watch(first, lambda answer: answer[1] == 200)
    assert (200, 503) in [answer[:2] for answer in seen], seen  # live, not ready: the restore
    assert seen[-1][2] == {"ready": True, "partitions": [0, 1, 2]}
    expected = simulate_in_order(ordered).accounts
    for account_id, state in sorted(expected.items())[:10]:
        status, report = get(f"http://127.0.0.1:{first.web_port}/accounts/{account_id}")
        assert status == 200, report
        assert json.loads(report)["account_id"] == account_id

    # A second worker joining revokes the first's partitions: not ready again until both have recovered theirs.
    second = workers("b", start=False).start(wait=False)
    watch(first, lambda answer: answer[1] == 503)
    shares = wait_assignment(probe, [first, second])
    for worker in (first, second):
        seen = watch(worker, lambda answer: answer[1] == 200 and answer[2]["partitions"])
        assert seen[-1][2] == {"ready": True, "partitions": sorted(shares[worker.name])}

    # Stopped: the probes fail (the Kubernetes liveness probe restarts a process that no longer answers).
    second.terminate()
    assert health(second.web_port) == (None, None, None)
