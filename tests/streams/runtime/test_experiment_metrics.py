"""Prometheus figures per experiment variant and rule: contacts, and cures (episodes ended by a payment) for the
variant and for each rule that contacted the account, as `dunning report` attributes them."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from rules.policy import PolicyEngine, load_policy
from rules.report import CONTACT_KINDS, episodes_of
from rules.simulator import Simulation
from schemas.events import parse_event
from streams.generators.generate import generate, to_jsonl_bytes
from streams.runtime.metrics import WorkerMetrics
from streams.runtime.processor import Processor
from streams.generators.respond import respond
from test_processor import PARTITIONS, REPO, TOPICS, Tables, messages


def samples(text: bytes, name: str) -> dict[tuple[str, ...], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_contacts_and_cures_are_counted_per_variant_and_rule():
    policy = lambda: PolicyEngine(load_policy(REPO / "rules" / "examples" / "experiment.yaml"))  # noqa: E731
    start = datetime.fromisoformat("2026-11-01T00:00:00+08:00")
    until = start + timedelta(days=60)
    base = [parse_event(line) for line in to_jsonl_bytes(generate(150, 30, start, 5))]
    events = respond(base, policy(), timedelta(hours=1), until, chance=0.3, seed=5)
    processor, tables, metrics, notices = Processor(policy(), TOPICS, PARTITIONS), Tables(), WorkerMetrics(
        "v", lambda: {}), []
    for source in messages(events, timedelta(hours=1), until):  # batch by batch, as the agent records them
        processor.process(source, tables.accounts, tables.platforms, tables.scan)
        result = processor.finish_batch()
        tables.apply(result)
        metrics.record(result, 0.0)
        notices += result.notices
    text = metrics.exposition()

    contacts = Counter((n.variant, n.rule_id) for n in notices if n.kind in CONTACT_KINDS)
    assert samples(text, "dunning_contacts_total") == {
        (("rule_id", rule), ("variant", variant)): float(count) for (variant, rule), count in contacts.items()}

    simulation = Simulation(policy(), audit=[])
    simulation.run(events, timedelta(hours=1), until)
    episodes, _, _, _ = episodes_of(simulation.audit)
    cured = [episode for episode in episodes if episode.cured]
    by_variant = Counter(episode.variant for episode in cured)
    assert min(by_variant.values()) >= 10
    assert samples(text, "dunning_variant_cures_total") == {
        (("variant", variant),): float(count) for variant, count in by_variant.items()}
    by_rule = Counter((episode.variant, rule) for episode in cured for rule in episode.first_notice)
    assert samples(text, "dunning_rule_cures_total") == {
        (("rule_id", rule), ("variant", variant)): float(count) for (variant, rule), count in by_rule.items()}
