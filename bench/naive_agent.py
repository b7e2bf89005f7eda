"""Contender (c) of bench/live.py: a naive Faust agent, `json.loads` and one table write per event (memory store).
With BENCH_EMPTY=1, contender (c0): an agent that takes batches of events and does nothing with them, the most
any Faust agent on this stream can do here.

    BENCH_APP_ID=... BENCH_TOPICS=t1,t2 BENCH_PARTITIONS=4 BENCH_STATE_DIR=... python bench/naive_agent.py worker

Faust's defaults otherwise, except the commit cadence, which is the baseline worker's (every 500 messages or
second), so that the harness sees "everything committed" about as soon after the last event for both.
"""
from __future__ import annotations

import json
import os

import faust

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="memory://",
    datadir=os.environ["BENCH_STATE_DIR"],
    topic_partitions=int(os.environ["BENCH_PARTITIONS"]),  # the table's partitions must be its source's
    consumer_auto_offset_reset="earliest",
    broker_commit_every=500,
    broker_commit_interval=1.0,
    web_enabled=False,
    web_port=int(os.environ["BENCH_WEB_PORT"]),  # Faust binds it all the same: not the default, which may be taken
)
latest = app.Table("latest")
events = app.topic(*os.environ["BENCH_TOPICS"].split(","), value_serializer="raw")


if os.environ.get("BENCH_EMPTY"):
    @app.agent(events)
    async def empty(stream):
        async for _ in stream.take_events(2000, within=0.05):  # the worker's batch
            pass
else:
    @app.agent(events)
    async def naive(stream):
        async for value in stream:
            event = json.loads(value)
            latest[event["account_id"]] = event["event_id"]


if __name__ == "__main__":
    app.main()
