"""Smoke test of tools/kafka/kafka-local: a real broker, a 3-partition topic, keyed messages via kcat."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_LOCAL = REPO_ROOT / "tools" / "kafka" / "kafka-local"
KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def run(cmd: list[str], stdin: str | None = None, timeout: float = 60) -> str:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.skipif(KCAT is None, reason="kcat not installed (Debian package kafkacat; make test installs it)")
def test_keyed_messages_round_trip_through_three_partitions(kafka_bootstrap: str) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:12]}"
    run([str(KAFKA_LOCAL), "create-topic", topic, "3"])
    try:
        _round_trip(kafka_bootstrap, topic)
    finally:  # the broker may outlive this session (KAFKA_KEEP_BROKER, a shared broker)
        subprocess.run([str(KAFKA_LOCAL), "topics", "--delete", "--topic", topic], capture_output=True, timeout=60)


def _round_trip(kafka_bootstrap: str, topic: str) -> None:

    # partition count, as the broker reports it
    meta = run([KCAT, "-b", kafka_bootstrap, "-L", "-t", topic, "-m", "10"])
    assert f'topic "{topic}" with 3 partitions' in meta, meta

    keys = [f"acct-{i}" for i in range(6)]
    sent = [(k, f"invoice-{k}-{n}") for n in range(5) for k in keys]
    payload = "".join(f"{k}\t{v}\n" for k, v in sent)
    run([KCAT, "-b", kafka_bootstrap, "-P", "-t", topic, "-K", "\t", "-X", "acks=all"], stdin=payload)

    out = run(
        [KCAT, "-b", kafka_bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-c", str(len(sent)),
         "-q", "-f", "%p\t%k\t%s\n"],
        timeout=60,
    )
    got = [tuple(line.split("\t", 2)) for line in out.splitlines() if line]
    assert len(got) == len(sent)
    assert sorted((k, v) for _, k, v in got) == sorted(sent)

    # same key -> same partition, in the order produced; and the keys spread over several partitions
    by_key: dict[str, list[str]] = defaultdict(list)
    partition_of: dict[str, set[str]] = defaultdict(set)
    for p, k, v in got:
        by_key[k].append(v)
        partition_of[k].add(p)
    for k in keys:
        assert len(partition_of[k]) == 1, (k, partition_of[k])
        assert by_key[k] == [f"invoice-{k}-{n}" for n in range(5)]
    used = {next(iter(ps)) for ps in partition_of.values()}
    assert used <= {"0", "1", "2"}
    assert len(used) >= 2, used
