"""The Faust app, built from Settings in one place: tables, the batch intake and the clock.

The intake (streams/runtime/intake.py) hands over record lists per partition from Faust's consumer; they run through the
Processor (the same engine as the simulator), and then, in this order: sends notices, audit lines and dead letters and waits for the broker's acks, then
sends each touched account's state once to the table's changelog, waits for those acks and applies them to the
local store (streams/runtime/changelog.py). Offsets are committed only after that, so a crash at any point either
repeats work whose notices carry the same notice_id, or loses nothing (at-least-once; see the README on why
not Faust's exactly_once).
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import sys
import time
from datetime import datetime, timezone
from typing import NoReturn

import faust

from rules.engine import Engine
from rules.policy import PolicyEngine
from schemas.events import tick
from streams.runtime.changelog import StoreReader, send_batched, write_table
from streams.runtime.metrics import CrashRecord, WorkerMetrics
from streams.runtime.explain import account_report
from streams.runtime.intake import Records, in_order, install
from streams.runtime.rulesets import RulesetFeed
from streams.runtime.processor import BatchResult, Processor, account_header, decode_account
from streams.runtime.settings import MAX_REQUEST_BYTES, Settings

log = logging.getLogger("dunning.worker")
BATCH_FAILED = 3  # the worker's exit status when a batch could not be processed or its output not sent
LIVENESS_PATH, READINESS_PATH = "/livez", "/readyz"  # probed by deploy/kubernetes/statefulset.yaml


def faust_settings(settings: Settings) -> dict[str, object]:
    credentials = None
    if settings.sasl_mechanism:
        credentials = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism,
            ssl_context=settings.kafka_client_options().get("ssl_context"),
        )
    elif settings.security_protocol == "SSL":
        credentials = faust.SSLCredentials(settings.kafka_client_options()["ssl_context"])
    return dict(
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=credentials,
        store="rocksdb://",
        datadir=str(settings.state_dir),
        processing_guarantee="at_least_once",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        broker_max_poll_records=settings.batch_size,  # a fetch, and so a batch, holds at most this many records
        broker_commit_interval=settings.commit_interval,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.canonical_url,
        # A worker keeps a standby copy of other workers' table partitions, up to date from their changelogs, so
        # one that takes over a dead worker's partitions reads only what the copy lacks (none with one worker).
        table_standby_replicas=settings.standby_replicas,
        # A batch's sends go out together and are awaited together: a short linger fills requests instead of
        # writing a request per few records (socket writes were a tenth of a profiled worker).
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        producer_compression_type="lz4",
        producer_max_request_size=MAX_REQUEST_BYTES,  # also bounds dead letters (streams/runtime/processor.py)
        # Faust 0.15.3 drops the records a fetch in flight at a rebalance returns while the flow is stopped,
        # then seeks only partitions with a committed offset back. When that fetch returned after the recovery
        # had sought a changelog partition to its start, those records were gone and the recovery waited for
        # them forever (tests/live/test_scale_out.py failed about 1 run in 8). Letting the in-flight fetch end
        # (the consumer's getmany timeout is 1 s) before the recovery seeks closed that: 0 failures in 16 runs.
        # The input partitions' side of the same drop is the intake's seek_to_committed (streams/runtime/intake.py).
        stream_recovery_delay=2.0,
    )


def stop_uncommitted(crashes: CrashRecord, kind: str, what: str, exc: Exception) -> NoReturn:
    """Ends the process at once, committing nothing more, so that a restart repeats the failed batch.

    Raising instead would leave the Processor holding the batch's half-applied states for the next batch, and
    Faust's crash of the consumer's fetch loop does not end the process by itself. aiokafka has already retried
    what can be retried (a broker away, a leader moving).
    The crash is counted first, for the restarted worker's dunning_crashes_total."""
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())
    try:
        crashes.add(kind)
    except OSError as error:  # the exit matters more than the count
        detail += f"; the crash could not be counted: {error}"
    print(f"dunning worker: stopping, {what} failed ({detail}); its offsets are not committed and a restart "
          "repeats it", file=sys.stderr, flush=True)
    os._exit(BATCH_FAILED)


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the bearer token, compared in constant time: how long a wrong
    token takes to refuse says nothing about how much of it was right."""
    expected = f"Bearer {token}".encode()
    return header is not None and hmac.compare_digest(header.encode("utf-8", "surrogateescape"), expected)


def create_app(settings: Settings, engine: Engine | PolicyEngine) -> faust.App:
    """`engine` is the seed policy (DUNNING_RULES): in force until a policy published on the rulesets topic is."""
    app = faust.App(settings.app_id, **faust_settings(settings))
    feed = RulesetFeed(settings, engine)
    # bytes types make the tables' stores and changelogs raw; the default would be JSON
    # standby_buffer_size: a standby applies its changelog records in RocksDB write batches of this many (Faust's
    # default of 1000 leaves a copy up to that many records behind the changelog, to be read at a takeover)
    rocksdb = dict(write_buffer_size=settings.rocksdb_write_buffer_mb * 2**20, max_write_buffer_number=2,
                   block_cache_size=settings.rocksdb_block_cache_mb * 2**20)
    table_options = dict(partitions=settings.partitions, key_type=bytes, value_type=bytes, standby_buffer_size=100,
                         options=rocksdb)
    accounts = app.Table("dunning-accounts", **table_options)
    platforms = app.Table("dunning-platform", **table_options)
    clock_topic = settings.topic.clock
    # ties on a record timestamp: the clock first (streams/runtime/intake.py: in_order)
    inputs = (clock_topic, *(topic for topic in settings.topic.inputs if topic != clock_topic))
    processor = Processor(engine, settings.topic, settings.partitions, settings.check_partitioning,
                          cached_accounts=settings.cached_accounts,
                          cached_stored_bytes=int(settings.cached_accounts_stored_mb * 2**20))

    def owned_partitions() -> set[int]:
        try:
            return {tp.partition for tp in app.consumer.assignment() if tp.topic == clock_topic}
        except Exception:  # noqa: BLE001 - no consumer yet (starting up): nothing is owned
            return set()

    stores = StoreReader(accounts)
    scan = stores.items
    tables = {"restored": False}  # until Faust says its tables are restored after a rebalance
    crashes = CrashRecord(settings.state_dir / "crashes.json")
    metrics = WorkerMetrics(engine.version, lambda: processor.portfolio(
        owned_partitions(), platforms, scan, ready=tables["restored"]), crashes.counts(),
        marks=lambda: processor.marks(owned_partitions()),
        stores=lambda: {"accounts": stores.handles(), "platform": StoreReader(platforms).handles()})

    async def publish(result: BatchResult) -> None:
        await send_batched(app, ((out.topic, out.partition, out.key, out.value) for out in result.outgoing))

    async def write_state(result: BatchResult) -> None:
        await asyncio.gather(*(
            write_table(app, table, [(key.encode(), value, written_by.partition)
                                     for key, (value, written_by) in writes.items()])
            for table, writes in ((accounts, result.accounts), (platforms, result.platforms))))

    async def handle(records: Records) -> None:
        """One batch from the intake (streams/runtime/intake.py): every record applied, sent and stored before it returns,
        after which the intake commits its offsets."""
        try:
            if not feed.started or any(tp.topic == clock_topic for tp in records):
                # Every policy published before these ticks were: a tick switches the partition to the one in force.
                processor.schedule = await feed.catch_up()
            for source in in_order(records, inputs):
                processor.process(source, stores.at(source.partition), platforms.data, scan)
                if processor.accounts_pending >= settings.batch_size:
                    # A run of ticks (a worker catching up) wakes most accounts: send and store what is done so far
                    # instead of holding every account decoded. The batch's offsets still wait for its end.
                    await flush()
            await flush()
        except Exception as exc:  # noqa: BLE001 - whatever failed, the batch must not be committed
            stop_uncommitted(crashes, "batch", f"a batch of {sum(map(len, records.values()))} messages", exc)

    async def flush() -> None:
        """Sends the outputs of the messages processed since the last flush, then stores their states."""
        result = processor.finish_batch()
        await publish(result)
        acknowledged_at = time.time()
        await write_state(result)  # after the notices it records as sent
        metrics.record(result, acknowledged_at)
        owned = owned_partitions()
        if result.platforms and owned:  # a partition's clock moved: it may run a policy published since
            metrics.ruleset.info({"version": processor.running_versions(owned, platforms)})
        for letter in result.dead_letters:
            log.warning("dead letter: %s at %s/%d@%d: %s", letter.reason, letter.origin.topic,
                        letter.origin.partition, letter.origin.offset, letter.message)

    @app.on_partitions_revoked.connect
    async def forget(app: faust.App, revoked, **kwargs) -> None:  # noqa: ARG001 - Faust's signal signature
        tables["restored"] = False
        processor.forget_partitions()

    @app.on_before_shutdown.connect
    async def close_feed(app: faust.App, **kwargs) -> None:  # noqa: ARG001 - Faust's signal signature
        await app.consumer.settle(stopping=True)  # the batch in hand is finished and committed, no other begins
        await feed.stop()

    @app.on_rebalance_complete.connect
    async def restored(app: faust.App, **kwargs) -> None:  # noqa: ARG001 - sent once recovery is done
        processor.forget_partitions()
        tables["restored"] = True

    install(app, inputs, handle, lambda exc: stop_uncommitted(crashes, "agent", "the batch intake", exc))

    if settings.clock_enabled:
        @app.timer(interval=settings.tick_interval, on_leader=True, name="dunning-clock")
        async def clock() -> None:
            """Publishes the current time, truncated to the interval, to every partition of the clock topic."""
            seconds = datetime.now(timezone.utc).timestamp()
            at = datetime.fromtimestamp(seconds - seconds % settings.tick_interval, tz=timezone.utc)
            value = tick(at).model_dump_json().encode()
            try:
                sent = [await app.producer.send(clock_topic, b"*", value, partition, None, None)
                        for partition in range(settings.partitions)]
                await asyncio.gather(*sent)
            except Exception as exc:  # noqa: BLE001 - raising would crash the app over one tick
                metrics.crashes.labels("clock").inc()
                log.error("dunning worker: the clock tick at %s was not published (%s: %s); the next interval "
                          "tries again", at.isoformat(), type(exc).__name__, " ".join(str(exc).split()))

    @app.page("/accounts/{account_id}")
    @app.table_route(table=accounts, match_info="account_id")  # forwarded to the worker that owns the key
    async def account_view(web, request, account_id: str):
        token = settings.web_token.get_secret_value() if settings.web_token else None
        if token and not authorized(request.headers.get("Authorization"), token):
            return web.json({"error": "a bearer token is required"}, status=401)
        raw = accounts.get(account_id)
        if raw is None:
            return web.json({"error": f"no account {account_id!r} here"}, status=404)
        partition, _ = account_header(raw)
        platform = processor.platform_of(partition, platforms)
        running = processor.engine_of(partition, platform)
        report = account_report(running, decode_account(raw), platform, platform.clock,
                                audit_topic=settings.topic.audit)
        decides = running.engine_for(account_id)  # the account's variant's engine (one without an experiment)
        return web.json({**report, "ruleset_version": decides.version, "variant": decides.variant,
                         "partition": partition, "served_by": settings.canonical_url})

    @app.page(LIVENESS_PATH)
    async def liveness(web, request):  # noqa: ARG001 - Faust's view signature
        """Answers while the worker's event loop runs (the web server is served by it): a wedged loop or a dead
        process fails the probe, a long restore does not."""
        return web.json({"live": True})

    @app.page(READINESS_PATH)
    async def readiness(web, request):  # noqa: ARG001 - Faust's view signature
        """Ready once the tables are restored after the latest rebalance (a worker with no partition is ready);
        not ready again from the next revocation until its recovery is done."""
        ready = tables["restored"]
        return web.json({"ready": ready, "partitions": sorted(owned_partitions())}, status=200 if ready else 503)

    @app.page("/metrics")
    async def prometheus_metrics(web, request):  # noqa: ARG001 - Faust's view signature
        owned = owned_partitions()
        lags = []
        for tp in sorted(app.consumer.assignment() if owned else ()):
            highwater = app.consumer.highwater(tp) if tp.topic in settings.topic.inputs else None
            if highwater is not None:  # unknown for a moment after a rebalance
                position = await app.consumer.position(tp)
                lags.append((tp.topic, tp.partition, max(0, highwater - (position or 0))))
        metrics.set_runtime(lags, len(owned), processor.last_tick(owned, platforms))
        return web.bytes(metrics.exposition(), content_type="text/plain; version=0.0.4")

    return app
