"""`bench/live.py --quick` (make bench's small sizes) runs on the real broker and writes every figure."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

pytestmark = pytest.mark.broker

LIVE_BENCH = Path(__file__).resolve().parents[2] / "bench" / "live.py"
CONTENDERS = ("a_raw_aiokafka", "b_engine_loop", "c0_empty_faust", "c_naive_faust", "d1_worker", "d2_workers")


async def topics_starting(bootstrap: str, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return [name for name in await admin.list_topics() if name.startswith(prefix)]
    finally:
        await admin.close()


def test_quick_bench_writes_every_figure(kafka_bootstrap: str, tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, str(LIVE_BENCH), "--quick", "--bootstrap", kafka_bootstrap,
                               "--results", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-4000:]
    [written] = tmp_path.glob("*.json")
    assert written.with_suffix(".png").stat().st_size > 10_000
    result = json.loads(written.read_text())

    messages = result["workload"]["input_messages"]
    assert messages > 1000
    for name in CONTENDERS:
        contender = result["throughput"][name]
        assert contender["messages"] == messages and contender["events_per_s"] > 0, (name, contender)
    # the two workers were held until both had joined: every event is in their window, none done by one alone
    assert result["throughput"]["d2_workers"]["counted"] == messages
    for name in CONTENDERS[2:]:  # the Faust processes: start-up measured and left out of the window
        assert result["throughput"][name]["startup_excluded_s"] > 0
        assert result["peak_rss_mb"][name] and all(result["peak_rss_mb"][name])
    assert result["changelog"]["records"] > 0 and result["changelog"]["bytes_per_event"] > 0
    assert result["changelog"]["ratio"] > 0
    assert 0 < result["state"]["mean_bytes"] <= result["state"]["max_bytes"]
    assert 0 < result["state"]["p99_bytes"] <= result["state"]["max_bytes"]

    assert [sweep["accounts"] for sweep in result["clock_sweep"]] == [500, 1500]
    for sweep in result["clock_sweep"]:
        # every restored account is in the worker's tick index, and each tick finds exactly its share due
        assert sweep["restore"]["records"] == sweep["accounts"] and sweep["restore"]["seconds"] > 0
        assert [tick["evaluated"] for tick in sweep["ticks"]] == [sweep["due_per_tick"]] * 3
        assert sweep["tick_s"] > 0 and sweep["first_tick_s"] > 0
        assert result["peak_rss_mb"][f"sweep-{sweep['accounts']}"] > 0

    # one of two workers killed, without standbys and with: the survivor takes the dead one's partitions over,
    # resumes, and sends on every one of them the notices the tick releases there (the simulation's engine says
    # which: the harness kills a worker that has some); with a standby copy it reads only what the copy lacks
    assert [run["standby_replicas"] for run in result["failover"]] == [0, 1]
    for run in result["failover"]:
        assert run["accounts"] == 1500 and run["partitions_taken_over"]
        assert run["notices_due"] > 0 and run["partitions_with_notices_due"], run
        assert 0 < run["rebalanced_s"] < run["resumed_s"] < run["all_partitions_noticed_s"], run
        assert run["rebalanced_s"] < run["first_notice_s"] <= run["all_partitions_noticed_s"]
    without, with_standbys = result["failover"]
    assert with_standbys["changelog_records_read"] < without["changelog_records_read"]
    assert len(result["targets"]) == 9
    for target in result["targets"]:
        verdict = "met    " if target["met"] else "NOT met"
        assert f"{verdict}  {target['target']}" in finished.stdout
    assert not asyncio.run(topics_starting(kafka_bootstrap, result["workload"]["topics_prefix"]))
