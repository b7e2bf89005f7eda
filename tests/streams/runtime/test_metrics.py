"""Metrics a worker exports: portfolio figures that add up across workers, flow counters, valid exposition."""
from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from rules.simulator import Simulation
from schemas.events import parse_event
from streams.generators.generate import generate, to_jsonl_bytes
from streams.runtime.metrics import WorkerMetrics
from streams.runtime.processor import Processor, partition_for
from test_processor import PARTITIONS, REPO, TOPICS, Tables, engine, messages, run, scenario_events


def simulate_and_process(batch: int = 50):
    events = scenario_events()
    until = events[-1].occurred_at + timedelta(days=20)
    processor, tables = Processor(engine(), TOPICS, PARTITIONS), Tables()
    notices, _ = run(processor, tables, messages(events, timedelta(hours=1), until), batch)
    simulation = Simulation(engine())
    simulation.run(events, timedelta(hours=1), until)
    return processor, tables, simulation, notices


def expected_portfolio(simulation: Simulation, partitions: set[int]) -> dict[str, dict[str, Decimal]]:
    totals: dict[str, dict[str, Decimal]] = {}
    for account_id, state in simulation.accounts.items():
        if partition_for(account_id, PARTITIONS) not in partitions:
            continue
        for currency, position in simulation.engine.portfolio(state, simulation.platform,
                                                              simulation.platform.clock).items():
            figures = totals.setdefault(currency, {})
            for name, value in (("accounts_open", 1), ("open_amount", position.open_amount)):
                figures[name] = figures.get(name, Decimal(0)) + value
            if position.overdue_amount:
                figures["accounts_overdue"] = figures.get("accounts_overdue", Decimal(0)) + 1
                figures["overdue_amount"] = figures.get("overdue_amount", Decimal(0)) + position.overdue_amount
    return totals


def test_portfolio_of_disjoint_partitions_adds_up_to_the_whole():
    processor, tables, simulation, _ = simulate_and_process()
    everything = set(range(PARTITIONS))
    mine, yours = {0, 1}, everything - {0, 1}
    whole = processor.portfolio(everything, tables.platforms, tables.scan)
    parts = [processor.portfolio(half, tables.platforms, tables.scan) for half in (mine, yours)]
    for currency, figures in whole.items():
        for name, value in figures.items():
            assert value == sum(part.get(currency, {}).get(name, Decimal(0)) for part in parts), (currency, name)
    expected = expected_portfolio(simulation, everything)
    assert {c: {k: v for k, v in f.items() if ":" not in k and v} for c, f in whole.items()} == expected
    assert whole["CNY"]["accounts_overdue"] >= 1


def test_a_new_worker_rebuilds_the_same_portfolio_from_the_tables():
    processor, tables, _, _ = simulate_and_process()
    everything = set(range(PARTITIONS))
    live = processor.portfolio(everything, tables.platforms, tables.scan)
    processor.forget_partitions()  # as after a rebalance
    assert processor.portfolio(everything, tables.platforms, tables.scan) == live
    fresh = Processor(engine(), TOPICS, PARTITIONS)
    assert fresh.portfolio(everything, tables.platforms, tables.scan) == live


def test_figures_kept_up_while_processing_equal_a_rebuild_from_the_tables():
    events = scenario_events()
    until = events[-1].occurred_at + timedelta(days=20)
    sources = list(messages(events, timedelta(hours=1), until))
    processor, tables, everything = Processor(engine(), TOPICS, PARTITIONS), Tables(), set(range(PARTITIONS))
    run(processor, tables, sources[:len(sources) // 3], batch=50)
    early = processor.portfolio(everything, tables.platforms, tables.scan)  # a scrape: from here on, kept up
    run(processor, tables, sources[len(sources) // 3:], batch=50)
    kept_up = processor.portfolio(everything, tables.platforms, tables.scan)
    rebuilt = Processor(engine(), TOPICS, PARTITIONS).portfolio(everything, tables.platforms, tables.scan)

    def nonzero(figures):  # a figure that went back to zero stays as a 0 in the kept-up sums
        return {currency: {name: value for name, value in named.items() if value} for currency, named in figures.items()}

    assert nonzero(kept_up) != nonzero(early) and kept_up["CNY"]["accounts_open"] >= 1
    assert nonzero(kept_up) == nonzero(rebuilt)


def flow_counters(events):
    """Processes the events as one batch; its result and the metrics' exposition."""
    processor, tables = Processor(engine(), TOPICS, PARTITIONS), Tables()
    metrics = WorkerMetrics("2026.11-default", lambda: processor.portfolio(range(PARTITIONS), tables.platforms,
                                                                           tables.scan))
    for source in messages(events, timedelta(hours=1), events[-1].occurred_at + timedelta(days=20)):
        processor.process(source, tables.accounts, tables.platforms, tables.scan)
    result = processor.finish_batch()
    tables.apply(result)
    metrics.record(result, acknowledged_at=2_000_000_000.0)
    return result, metrics.exposition().decode()


def test_flow_counters_follow_what_was_processed():
    result, text = flow_counters(scenario_events())
    handoffs = sum(1 for n in result.notices if n.kind == "handoff" and n.action == "open")
    assert 'dunning_handoffs_total{action="open",to="collector"}' in text
    assert sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('dunning_handoffs_total{action="open"')) == handoffs
    assert 'dunning_ruleset_info{version="2026.11-default"} 1.0' in text
    assert "dunning_episodes_started_total" in text and 'dunning_portfolio_accounts_open{currency="CNY"}' in text
    assert 'dunning_arrangements_total{kind="promise_to_pay",outcome="broken"} 1.0' in text
    assert 'dunning_notices_deferred_total{reason="contact_window"}' in text


def test_a_superseded_promise_is_an_arrangement_outcome():
    lines = (REPO / "tests" / "scenarios" / "21-promise-superseded" / "events.jsonl").read_bytes().splitlines()
    _, text = flow_counters([parse_event(line) for line in lines if line.strip()])
    assert 'dunning_arrangements_total{kind="promise_to_pay",outcome="superseded"} 2.0' in text
    assert 'dunning_arrangements_total{kind="promise_to_pay",outcome="broken"} 1.0' in text


def test_deliveries_count_sent_delivered_and_failed_by_channel_template_and_reason():
    """Scenario 60: an SMS bounced and its e-mail replacement was delivered (the repeated receipt is not counted)."""
    lines = (REPO / "tests" / "scenarios" / "60-bounce-falls-back" / "events.jsonl").read_bytes().splitlines()
    _, text = flow_counters([parse_event(line) for line in lines if line.strip()])
    counted = {line.split()[0]: float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("dunning_deliveries_total{")}
    assert counted == {
        'dunning_deliveries_total{channel="sms",outcome="sent",reason="",template="due_soon"}': 1.0,
        'dunning_deliveries_total{channel="sms",outcome="delivered",reason="",template="due_soon"}': 1.0,
        'dunning_deliveries_total{channel="sms",outcome="sent",reason="",template="overdue"}': 1.0,
        'dunning_deliveries_total{channel="sms",outcome="failed",reason="bounced",template="overdue"}': 1.0,
        'dunning_deliveries_total{channel="email",outcome="sent",reason="",template="overdue"}': 1.0,
        'dunning_deliveries_total{channel="email",outcome="delivered",reason="",template="overdue"}': 1.0,
        'dunning_deliveries_total{channel="email",outcome="sent",reason="",template="overdue_second"}': 1.0,
        'dunning_deliveries_total{channel="letter",outcome="sent",reason="",template="formal_demand"}': 1.0,
    }


def test_episode_counters_count_every_episode_the_steps_started_and_ended():
    start = datetime.fromisoformat("2026-11-01T00:00:00+08:00")
    events = [parse_event(line) for line in to_jsonl_bytes(generate(60, 45, start, 3))]
    until = events[-1].occurred_at + timedelta(days=5)
    processor, tables = Processor(engine(), TOPICS, PARTITIONS), Tables()
    happenings = Counter()
    for source in messages(events, timedelta(hours=1), until):
        processor.process(source, tables.accounts, tables.platforms, tables.scan)
        result = processor.finish_batch()
        tables.apply(result)
        happenings.update(result.happenings)
    simulation = Simulation(engine())
    simulation.run(events, timedelta(hours=1), until)
    started = sum(state.episode_seq for state in simulation.accounts.values())
    ended = started - sum(1 for state in simulation.accounts.values() if state.episode is not None)
    assert ended >= 5
    assert (happenings[("episode.started", "")], happenings[("episode.ended", "")]) == (started, ended)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus; make test installs it) not installed")
def test_the_exposition_passes_promtool():
    processor, tables, _, _ = simulate_and_process()
    metrics = WorkerMetrics("v1", lambda: processor.portfolio(range(PARTITIONS), tables.platforms, tables.scan))
    metrics.set_runtime([("billing.invoices", 0, 5)], owned=4, last_tick=1.7e9)
    checked = subprocess.run(["promtool", "check", "metrics"], input=metrics.exposition(), capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def samples(text: str, name: str) -> dict[str, float]:
    """The exposition's samples of one metric: label text -> value."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, value = line.rsplit(" ", 1)
            found[series[len(name):]] = float(value)
    return found


def test_every_dead_letter_reason_has_a_series_from_the_start():
    from typing import get_args

    from schemas.deadletter import DeadLetterReason
    from streams.runtime.processor import Source

    reasons = set(get_args(DeadLetterReason))
    processor, tables = Processor(engine(), TOPICS, PARTITIONS), Tables()
    metrics = WorkerMetrics("v1", lambda: {})
    before = samples(metrics.exposition().decode(), "dunning_dead_letters_total")
    assert before == {f'{{reason="{reason}"}}': 0.0 for reason in reasons}

    processor.process(Source(TOPICS.invoices, 0, 7, b"A1", b"{not json"), tables.accounts, tables.platforms,
                      tables.scan)
    metrics.record(processor.finish_batch(), acknowledged_at=2_000_000_000.0)
    after = samples(metrics.exposition().decode(), "dunning_dead_letters_total")
    assert after == {**before, '{reason="malformed_json"}': 1.0}


def test_process_metrics_are_exported():
    text = WorkerMetrics("v1", lambda: {}).exposition().decode()
    assert samples(text, "process_resident_memory_bytes")[""] > 10_000_000  # a Python process with pydantic loaded
    assert samples(text, "process_open_fds")[""] >= 3 and samples(text, "process_cpu_seconds_total")[""] > 0
    assert samples(text, "python_gc_collections_total").keys() == {f'{{generation="{g}"}}' for g in "012"}


def test_rocksdb_memory_is_reported_per_table_and_kind(tmp_path):
    import rocksdict

    stores = [rocksdict.Rdict(str(tmp_path / f"accounts-{partition}.db")) for partition in range(2)]
    try:
        for db in stores:
            for number in range(2_000):
                db[f"account-{number}"] = b"x" * 500
        metrics = WorkerMetrics("v1", lambda: {}, stores=lambda: {"accounts": stores, "platform": []})
        found = samples(metrics.exposition().decode(), "dunning_rocksdb_memory_bytes")
        # two stores of 2,000 values of 500 bytes, still in their write buffers (allocated in blocks of up to 1 MiB)
        assert 2 * 2_000 * 500 < found['{kind="memtables",table="accounts"}'] < 2 * (2_000 * 500 + 2 * 2**20)
        assert found['{kind="memtables",table="platform"}'] == 0.0
        assert {key for key in found if "accounts" in key} == {
            f'{{kind="{kind}",table="accounts"}}' for kind in ("memtables", "block_cache", "table_readers")}
        assert samples(metrics.exposition().decode(), "dunning_python_allocated_blocks")[""] > 10_000
    finally:
        for db in stores:
            db.close()


def test_crashes_counted_before_an_exit_are_reported_by_the_restarted_worker(tmp_path):
    from streams.runtime.metrics import CrashRecord

    record = CrashRecord(tmp_path / "state" / "crashes.json")
    zero = samples(WorkerMetrics("v1", lambda: {}, record.counts()).exposition().decode(), "dunning_crashes_total")
    assert zero == {'{what="batch"}': 0.0, '{what="agent"}': 0.0, '{what="clock"}': 0.0}
    record.add("batch")
    record.add("batch")
    record.add("agent")
    restarted = WorkerMetrics("v1", lambda: {}, CrashRecord(record.path).counts())
    assert samples(restarted.exposition().decode(), "dunning_crashes_total") == {
        '{what="batch"}': 2.0, '{what="agent"}': 1.0, '{what="clock"}': 0.0}
    record.path.write_text("{half a file")  # torn or edited by hand: counting starts again, the worker starts
    assert CrashRecord(record.path).counts() == {}


def test_write_offs_recoveries_and_settlements_are_counted_per_currency_and_reason():
    events = []
    for folder in ("23-offer-accepted", "25-settlement-paid", "27-write-off-by-event", "29-recovery-after-write-off"):
        lines = (REPO / "tests" / "scenarios" / folder / "events.jsonl").read_bytes().splitlines()
        events += [parse_event(line) for line in lines if line.strip()]
    result, text = flow_counters(sorted(events, key=lambda e: e.occurred_at))
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    billed = sum(float(e.amount) for e in events if e.type == "invoice.issued")
    assert samples['dunning_billed_amount_total{currency="CNY"}'] == billed
    # 27: 1200.00 for bankruptcy; 29: 500.00 uncollectible; 23 and 25: discounts of 300.00 each
    assert samples['dunning_written_off_amount_total{currency="CNY",reason="bankruptcy"}'] == 1200.0
    assert samples['dunning_written_off_amount_total{currency="CNY",reason="uncollectible"}'] == 500.0
    assert samples['dunning_written_off_amount_total{currency="CNY",reason="settlement"}'] == 600.0
    assert samples['dunning_write_offs_total{currency="CNY",reason="settlement"}'] == 2.0
    assert samples['dunning_settled_amount_total{currency="CNY"}'] == 1200.0  # 700.00 + 500.00
    assert samples['dunning_recovered_amount_total{currency="CNY"}'] == 500.0  # 200.00 + 300.00
    assert samples['dunning_recoveries_total{currency="CNY"}'] == 2.0
    # take-up per rule: the offer and the settlement it led to carry the rule; an agreed one has none
    assert samples['dunning_notices_total{channel="letter",kind="offer",rule_id="settlement-offer"}'] == 1.0
    assert samples['dunning_notices_total{channel="",kind="settlement",rule_id="settlement-offer"}'] == 1.0
    assert samples['dunning_notices_total{channel="",kind="settlement",rule_id=""}'] == 1.0
    assert samples['dunning_arrangements_total{kind="settlement",outcome="kept"}'] == 2.0


def test_flags_restrictions_and_reconciliation_differences_are_counted():
    """Gauges of what stands now (kept up while processing, and rebuilt alike after a rebalance), and a counter of
    what billing's statements showed."""
    from rules.engine import Engine
    from rules.loader import load_ruleset

    def folder_events(*folders):
        return sorted((parse_event(line) for folder in folders
                       for line in (REPO / "tests" / "scenarios" / folder / "events.jsonl").read_bytes().splitlines()
                       if line.strip()), key=lambda e: e.occurred_at)

    def exposition(rules, events, until):
        processor, tables = Processor(Engine(load_ruleset(REPO / rules)), TOPICS, PARTITIONS), Tables()
        metrics = WorkerMetrics("v", lambda: processor.portfolio(range(PARTITIONS), tables.platforms, tables.scan),
                                marks=lambda: processor.marks(range(PARTITIONS)))
        metrics.exposition()  # a first scrape: from here on the figures are kept up
        events = [event for event in events if event.occurred_at < until]
        for result in run_batches(processor, tables, messages(events, timedelta(hours=1), until)):
            metrics.record(result, acknowledged_at=2_000_000_000.0)
        kept_up = metrics.exposition().decode()
        processor.forget_partitions()
        assert _gauges(metrics.exposition().decode()) == _gauges(kept_up)  # rebuilt from the tables
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in kept_up.splitlines()
                if line and not line.startswith("#")}

    # until 07-01: vulnerable (46) and bankruptcy (44) stand, fraud (45) was cleared, the breathing space (40) too
    flags = exposition("rules/default.yaml", folder_events("40-breathing-space", "44-bankruptcy", "45-fraud-cleared",
                                                           "46-vulnerable", "50-statement-lost-payment",
                                                           "51-statement-late", "52-statement-unknown-invoice"),
                       datetime.fromisoformat("2026-07-01T00:00:00+08:00"))
    assert {flag: flags[f'dunning_flagged_accounts{{flag="{flag}"}}'] for flag in
            ("breathing_space", "bankruptcy", "fraud", "vulnerable", "deceased")} == {
        "breathing_space": 1.0, "bankruptcy": 1.0, "fraud": 0.0, "vulnerable": 1.0, "deceased": 0.0}
    differences = {kind: flags.get(f'dunning_reconciliation_differences_total{{kind="{kind}"}}')
                   for kind in ("added", "closed", "corrected", "credit", "stale")}
    assert differences == {"added": 2.0, "closed": 1.0, "corrected": 2.0, "credit": 1.0, "stale": 1.0}
    # 48 until 07-20: written off, the freeze kept; 49 until 07-21: the plan broke and a new episode froze again
    restricted = exposition("rules/examples/credit-line.yaml",
                            folder_events("48-restriction-lifted-on-write-off", "49-restriction-lifted-by-rule"),
                            datetime.fromisoformat("2026-07-21T00:00:00+08:00"))
    assert restricted['dunning_restricted_accounts{action="freeze_credit"}'] == 2.0
    assert restricted['dunning_restricted_accounts{action="block_purchases"}'] == 1.0


def _gauges(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith(("dunning_flagged", "dunning_restricted")))


def run_batches(processor, tables, sources, batch: int = 50):
    pending = 0
    for source in sources:
        processor.process(source, tables.accounts, tables.platforms, tables.scan)
        pending += 1
        if pending >= batch:
            result = processor.finish_batch()
            tables.apply(result)
            yield result
            pending = 0
    result = processor.finish_batch()
    tables.apply(result)
    yield result
