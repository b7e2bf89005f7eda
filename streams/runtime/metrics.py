"""Prometheus metrics of a worker, served at /metrics on its web port.

Counters describe the flow through this worker. Gauges describe the state it holds: each worker reports only
the partitions it owns right now (dropping the rest after a rebalance), so sum() across workers is the true
portfolio. Labels are bounded: currencies, kinds, channels, rule ids, partitions; never account ids.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, get_args

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, Info, ProcessCollector,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rules.engine import AGING_BUCKETS
from rules.model import FLAGS
from rules.report import CONTACT_KINDS
from schemas.deadletter import DeadLetterReason
from schemas.notices import RECEIPT_TYPES, Notice
from streams.runtime.processor import BatchResult

Portfolio = dict[str, dict[str, object]]


class PortfolioCollector(Collector):
    """Reads the processor's per-partition sums at scrape time, for the partitions this worker owns."""

    def __init__(self, figures: Callable[[], Portfolio]):
        self.figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_currency = self.figures()
        simple = {
            "accounts_open": ("dunning_portfolio_accounts_open", "Accounts with an open balance"),
            "accounts_overdue": ("dunning_portfolio_accounts_overdue", "Accounts with an overdue balance"),
            "open_amount": ("dunning_portfolio_open_amount", "Open amount, in units of the currency"),
            "overdue_amount": ("dunning_portfolio_overdue_amount", "Overdue amount, in units of the currency"),
        }
        for figure, (name, help_text) in simple.items():
            family = GaugeMetricFamily(name, help_text, labels=["currency"])
            for currency, figures in sorted(by_currency.items()):
                family.add_metric([currency], float(figures.get(figure, 0)))
            yield family
        for figure, name, help_text in (
            ("aging_accounts", "dunning_aging_accounts", "Accounts by the aging bucket of their oldest debt"),
            ("aging_amount", "dunning_aging_amount", "Open amount by aging bucket of each invoice"),
        ):
            family = GaugeMetricFamily(name, help_text, labels=["currency", "bucket"])
            for currency, figures in sorted(by_currency.items()):
                for bucket in AGING_BUCKETS:
                    family.add_metric([currency, bucket], float(figures.get(f"{figure}:{bucket}", 0)))
            yield family


class MarksCollector(Collector):
    """Accounts per flag and per restriction standing now, on the partitions this worker owns."""

    def __init__(self, marks: Callable[[], dict[str, int]]):
        self.marks = marks

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self.marks()
        for prefix, name, label, help_text, names in (
            ("flag", "dunning_flagged_accounts", "flag", "Accounts with the flag standing", FLAGS),
            ("restriction", "dunning_restricted_accounts", "action", "Accounts with the restriction applied", ()),
        ):
            family = GaugeMetricFamily(name, help_text, labels=[label])
            seen = {mark.split(":", 1)[1] for mark in counts if mark.startswith(prefix + ":")}
            for value in sorted(set(names) | seen):  # every flag has a series, at 0 when none stands
                family.add_metric([value], counts.get(f"{prefix}:{value}", 0))
            yield family


# RocksDB's memory outside Python's heap, per table, summed over its open stores (one per partition, standby
# copies included): what DUNNING_ROCKSDB_WRITE_BUFFER_MB and DUNNING_ROCKSDB_BLOCK_CACHE_MB bound, and the index
# and filter blocks of its files, which those do not.
ROCKSDB_MEMORY = {"memtables": "rocksdb.cur-size-all-mem-tables", "block_cache": "rocksdb.block-cache-usage",
                  "table_readers": "rocksdb.estimate-table-readers-mem"}


class MemoryCollector(Collector):
    """Where a worker's resident memory goes, read at scrape time: RocksDB's, per table and kind, and the blocks
    Python's allocator holds live (sys.getallocatedblocks)."""

    def __init__(self, stores: Callable[[], dict[str, Iterable[Any]]]):
        self.stores = stores  # table name -> its open RocksDB handles (rocksdict.Rdict)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("dunning_rocksdb_memory_bytes", "RocksDB memory by table and kind, summed over "
                                   "the table's open stores", labels=["table", "kind"])
        for table, handles in sorted(self.stores().items()):
            handles = list(handles)
            for kind, name in ROCKSDB_MEMORY.items():
                family.add_metric([table, kind], float(sum(db.property_int_value(name) or 0 for db in handles)))
        yield family
        yield GaugeMetricFamily("dunning_python_allocated_blocks", "Memory blocks Python's allocator holds live",
                                value=sys.getallocatedblocks())


# What can crash: a batch (the worker stops uncommitted), the agent outside a batch (it stops too), the clock (a
# tick not published; the next interval tries again).
CRASH_KINDS = ("batch", "agent", "clock")


class CrashRecord:
    """This worker's crashes, counted in a file in its state directory: a worker that stops on a failed batch exits
    before any scrape could see its counter go up, so the restarted worker reports it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def counts(self) -> dict[str, int]:
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError):  # none yet, or unreadable: count from 0
            return {}
        return {kind: stored[kind] for kind in CRASH_KINDS if isinstance(stored.get(kind), int)}

    def add(self, kind: str) -> None:
        counts = self.counts()
        counts[kind] = counts.get(kind, 0) + 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(counts))
        os.replace(partial, self.path)


class WorkerMetrics:
    def __init__(self, ruleset_version: str, portfolio: Callable[[], Portfolio],
                 crashes: dict[str, int] | None = None, marks: Callable[[], dict[str, int]] | None = None,
                 stores: Callable[[], dict[str, Iterable[Any]]] = dict) -> None:
        self.registry = registry = CollectorRegistry()
        self.events = Counter("dunning_events", "Events processed, by event type", ["type"], registry=registry)
        self.notices = Counter("dunning_notices", "Notices issued, by kind, channel and rule",
                               ["kind", "channel", "rule_id"], registry=registry)
        self.handoffs = Counter("dunning_handoffs", "Handoffs, by target and action", ["to", "action"],
                                registry=registry)
        self.episodes_started = Counter("dunning_episodes_started", "Delinquency episodes started", registry=registry)
        self.episodes_cured = Counter("dunning_episodes_cured", "Delinquency episodes ended (cured)",
                                      registry=registry)
        self.arrangements = Counter("dunning_arrangements", "Arrangements, by kind and outcome",
                                    ["kind", "outcome"], registry=registry)
        self.deferred = Counter("dunning_notices_deferred", "Notices that waited before going, by what held them",
                                ["reason"], registry=registry)
        self.dead_letters = Counter("dunning_dead_letters", "Messages sent to the dead-letter topic, by reason",
                                    ["reason"], registry=registry)
        for reason in get_args(DeadLetterReason):  # every reason has a series from the start, at 0
            self.dead_letters.labels(reason)
        self.crashes = Counter("dunning_crashes", "Crashes: a failed batch or agent (the worker stopped, counted "
                               "after its restart) or a clock tick not published", ["what"], registry=registry)
        for kind in CRASH_KINDS:
            self.crashes.labels(kind).inc((crashes or {}).get(kind, 0))
        # The end of the road, in units of each currency: billed (invoice.issued), written off by reason (a
        # settlement's discount has reason settlement), recovered later, and paid under settlements.
        self.billed = Counter("dunning_billed_amount", "Amount invoiced (invoice.issued)", ["currency"],
                              registry=registry)
        self.written_off = Counter("dunning_written_off_amount", "Debt written off, by reason (settlement: the "
                                   "discount of a settlement paid in full)", ["currency", "reason"], registry=registry)
        self.write_offs = Counter("dunning_write_offs", "Write-offs (and settlements with a discount), by reason",
                                  ["currency", "reason"], registry=registry)
        self.recovered = Counter("dunning_recovered_amount", "Written-off debt paid later", ["currency"],
                                 registry=registry)
        self.recoveries = Counter("dunning_recoveries", "Payments that recovered written-off debt", ["currency"],
                                  registry=registry)
        self.settled = Counter("dunning_settled_amount", "Paid under settlements paid in full", ["currency"],
                               registry=registry)
        self.latency = Histogram("dunning_processing_latency_seconds",
                                 "From the message's timestamp to its notice acknowledged by the broker",
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=registry)
        self.lag = Gauge("dunning_consumer_lag", "Messages not yet consumed, per owned input partition",
                         ["topic", "partition"], registry=registry)
        self.last_tick = Gauge("dunning_last_tick_timestamp_seconds", "Clock time of the newest tick processed",
                               registry=registry)
        self.owned = Gauge("dunning_owned_partitions", "Partitions of each input topic this worker owns",
                           registry=registry)
        self.ruleset = Info("dunning_ruleset", "The ruleset (or experiment) the worker's partitions run",
                            registry=registry)
        self.ruleset.info({"version": ruleset_version})
        # What each experiment variant and rule achieves (variant "" outside an experiment); `dunning report`
        # gives the rates with their intervals from the audit trail.
        self.contacts = Counter("dunning_contacts", "Reminders, urgent notices and offers sent, by experiment "
                                "variant and rule", ["variant", "rule_id"], registry=registry)
        self.variant_cures = Counter("dunning_variant_cures", "Delinquency episodes ended by a payment, by "
                                     "experiment variant", ["variant"], registry=registry)
        self.rule_cures = Counter("dunning_rule_cures", "Delinquency episodes ended by a payment, by experiment "
                                  "variant and each rule that contacted the account in the episode",
                                  ["variant", "rule_id"], registry=registry)
        # What the notification services' receipts said (notifications.receipts): a notice delivered or failed
        # (by reason), beside the contacts sent, per channel and template.
        self.deliveries = Counter("dunning_deliveries", "Contacts sent, and receipts delivered or failed (by "
                                  "reason), by channel and template", ["channel", "template", "outcome", "reason"],
                                  registry=registry)
        registry.register(PortfolioCollector(portfolio))
        if marks is not None:  # after the portfolio: a scrape that rebuilds the figures rebuilds these too
            registry.register(MarksCollector(marks))
        self.differences = Counter("dunning_reconciliation_differences", "Differences billing's statements showed, "
                                   "by kind (added, closed, corrected, reopened, credit, decided, stale)", ["kind"],
                                   registry=registry)
        registry.register(MemoryCollector(stores))
        ProcessCollector(registry=registry)  # process_*: memory, CPU seconds, open files, start time
        GCCollector(registry=registry)  # python_gc_*: collections and objects per generation

    def record(self, result: BatchResult, acknowledged_at: float) -> None:
        for event_type, count in result.types.items():
            self.events.labels(event_type).inc(count)
        for notice, released_by in zip(result.notices, result.released_by):
            self.notices.labels(notice.kind, notice.channel or "", notice.rule_id or "").inc()
            self._end_of_the_road(notice)
            if notice.kind == "handoff":
                self.handoffs.labels(notice.to, notice.action).inc()
            for reason in notice.trigger.deferred_by:
                self.deferred.labels(reason).inc()
            if released_by is not None:
                self.latency.observe(max(0.0, acknowledged_at - released_by / 1000))
        for (what, detail), count in result.happenings.items():
            if what == "episode.started":
                self.episodes_started.inc(count)
            elif what == "episode.ended":
                self.episodes_cured.inc(count)
            elif what == "reconciled":
                self.differences.labels(detail).inc(count)
            elif what in RECEIPT_TYPES:
                channel, template, reason = detail.split("|")
                self.deliveries.labels(channel, template, what.removeprefix("notice."), reason).inc(count)
            else:
                self.arrangements.labels(detail, what.removeprefix("arrangement.")).inc(count)
        for currency, amount in result.billed.items():
            self.billed.labels(currency).inc(float(amount))
        for letter in result.dead_letters:
            self.dead_letters.labels(letter.reason).inc()
        for notice in result.notices:
            if notice.kind in CONTACT_KINDS:
                self.contacts.labels(notice.variant or "", notice.rule_id or "").inc()
                self.deliveries.labels(notice.channel, notice.template, "sent", "").inc()
        for (variant, rule_id), count in result.cures.items():
            (self.rule_cures.labels(variant, rule_id) if rule_id else self.variant_cures.labels(variant)).inc(count)

    def _end_of_the_road(self, notice: Notice) -> None:
        """Amounts of a write-off, settlement or recovery decision (floats: Prometheus keeps no decimals)."""
        for currency, amount in (notice.written_off or {}).items():
            self.written_off.labels(currency, notice.reason).inc(float(amount))
            self.write_offs.labels(currency, notice.reason).inc()
        if notice.kind == "settlement":
            for currency, amount in notice.paid.items():
                self.settled.labels(currency).inc(float(amount))
        elif notice.kind == "recovery":
            for currency, amount in notice.paid.items():
                self.recovered.labels(currency).inc(float(amount))
                self.recoveries.labels(currency).inc()

    def set_runtime(self, lags: Iterable[tuple[str, int, int]], owned: int, last_tick: float | None) -> None:
        """Replaces the per-partition lag series with those of the partitions owned now."""
        self.lag.clear()
        for topic, partition, lag in lags:
            self.lag.labels(topic, str(partition)).set(lag)
        self.owned.set(owned)
        if last_tick is not None:
            self.last_tick.set(last_tick)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
