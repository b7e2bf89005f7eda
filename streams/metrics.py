"""Prometheus metrics of a worker (served at /metrics on its web port). Labels are bounded: no account ids."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from streams.processor import BatchResult


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("dunning_events_total", "Events processed, by event type", ["type"],
                              registry=self.registry)
        self.notices = Counter("dunning_notices_total", "Notices issued, by kind, channel and rule",
                               ["kind", "channel", "rule_id"], registry=self.registry)
        self.handoffs = Counter("dunning_handoffs_total", "Handoffs, by target and action", ["to", "action"],
                                registry=self.registry)
        self.dead_letters = Counter("dunning_dead_letters_total", "Messages sent to the dead-letter topic, by reason",
                                    ["reason"], registry=self.registry)

    def record(self, result: BatchResult) -> None:
        for event_type, count in result.types.items():
            self.events.labels(event_type).inc(count)
        for notice in result.notices:
            self.notices.labels(notice.kind, notice.channel or "", notice.rule_id).inc()
            if notice.kind == "handoff":
                self.handoffs.labels(notice.to, notice.action).inc()
        for letter in result.dead_letters:
            self.dead_letters.labels(letter.reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
