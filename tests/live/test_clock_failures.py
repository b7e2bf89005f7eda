"""A clock tick the broker refuses does not stall the clock: the leader logs one line, counts it in
dunning_crashes_total{what="clock"}, and publishes the next tick when the broker takes it again."""
from __future__ import annotations

import time

import pytest
from livekit import eventually, get

pytestmark = pytest.mark.broker


def metric(port: int, series: str) -> float | None:
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_refused_tick_is_counted_and_the_clock_goes_on(namespace, workers, probe, monkeypatch):
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    env = namespace.env
    monkeypatch.setattr(namespace, "env", lambda state_dir, port: {
        **env(state_dir, port), "DUNNING_CLOCK_ENABLED": "true", "DUNNING_TICK_INTERVAL": "1"})

    def limit_clock(max_bytes: int) -> None:
        resource = ConfigResource(ConfigResourceType.TOPIC, namespace.topics.clock,
                                  configs={"max.message.bytes": str(max_bytes)})
        probe.loop.run_until_complete(probe.admin.alter_configs([resource]))

    worker = workers("w1")
    port, refused = worker.web_port, 'dunning_crashes_total{what="clock"}'
    eventually(lambda: (metric(port, "dunning_last_tick_timestamp_seconds") or 0) > 0, 60, "a first tick",
               on_timeout=worker.tail)
    assert metric(port, refused) == 0

    limit_clock(100)  # smaller than a tick: MessageSizeTooLarge
    eventually(lambda: (metric(port, refused) or 0) >= 2, 60, "two refused ticks counted", on_timeout=worker.tail)
    lines = [line for line in worker.log_text().splitlines() if "was not published" in line]
    assert lines and all("MessageSizeTooLarge" in line and "the next interval tries again" in line
                         for line in lines), lines

    limit_clock(1_048_588)  # the broker's default again
    resumed = time.time()
    eventually(lambda: (metric(port, "dunning_last_tick_timestamp_seconds") or 0) >= resumed, 60,
               "ticks after the broker takes them again", on_timeout=worker.tail)
    assert worker.alive and "Traceback" not in worker.log_text()
