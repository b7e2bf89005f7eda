"""`dunning audit-check`'s verdicts on runs made offline: the Processor writes what the worker would send to a
stand-in broker, and the check reads it back. A clean run passes; a lost offset, a notice twin with other content,
a notice the audit records but no topic carries, and a notice the simulator did not send each fail, named."""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation, with_ticks
from schemas.events import parse_event, tick
from streams.tools.audit_check import Message, check, simulated_notices, simulator_order
from streams.generators.generate import generate, to_jsonl_bytes
from streams.runtime.processor import Processor, Source, partition_for
from streams.runtime.settings import DEFAULT_RULES, TopicNames

TOPICS = TopicNames()
PARTITIONS = 3
START = datetime.fromisoformat("2026-11-01T09:00:00+08:00")
EVERY, DAYS = timedelta(days=1), 40


class Broker:
    """Topics as lists of messages per partition, offsets counted."""

    def __init__(self):
        self.logs: dict[str, list[Message]] = defaultdict(list)
        self._next: dict[tuple[str, int], int] = defaultdict(int)

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> Message:
        offset = self._next[(topic, partition)]
        self._next[(topic, partition)] += 1
        message = Message(topic, partition, offset, key, value)
        self.logs[topic].append(message)
        return message

    def read(self, *topics: str) -> list[Message]:
        return [message for topic in topics for message in self.logs[topic]]


class Run:
    """A worker's output for the published messages, batch by batch, on the stand-in broker."""

    def __init__(self):
        self.broker = Broker()
        self.processor = Processor(Engine(load_ruleset(DEFAULT_RULES)), TOPICS, PARTITIONS)
        self.accounts: dict[str, bytes] = {}
        self.platforms: dict[str, bytes] = {}

    def publish_events(self, raws: list[bytes]) -> list[Message]:
        """Each line to its topic and partition (ticks and outages to every clock partition), in order."""
        published = []
        for raw in raws:
            event = json.loads(raw)
            if event["account_id"] == "*":
                published += [self.broker.append(TOPICS.clock, p, b"*", raw) for p in range(PARTITIONS)]
            else:
                topic = TOPICS.for_event_type(event["type"])
                published.append(self.broker.append(topic, partition_for(event["account_id"], PARTITIONS),
                                                    event["account_id"].encode(), raw))
        return published

    def process(self, messages: list[Message], crash_before_state: bool = False) -> None:
        """One batch; with crash_before_state, its notices, audit lines and dead letters go out and the worker
        dies before it stores the state (a restart repeats the batch)."""
        scan = lambda: iter(list(self.accounts.items()))  # noqa: E731 - the Processor's Scan
        for message in messages:
            self.processor.process(Source(message.topic, message.partition, message.offset, message.key,
                                          message.value), self.accounts, self.platforms, scan)
        result = self.processor.finish_batch()
        for out in result.outgoing:
            self.broker.append(out.topic, out.partition, out.key, out.value)
        if crash_before_state:
            self.processor = Processor(self.processor.engine, TOPICS, PARTITIONS)
            return
        for key, (value, _) in result.accounts.items():
            self.accounts[key] = value
        for key, (value, source) in result.platforms.items():
            self.platforms[key] = value
            self.broker.append("platform-changelog", source.partition, key.encode(), value)

    def verdict(self, expected=None, **replaced: list[Message]):
        read = dict(inputs=self.broker.read(*TOPICS.inputs), dead_letters=self.broker.read(TOPICS.dead_letter),
                    notices=self.broker.read(*TOPICS.notices),
                    audit=self.broker.read(TOPICS.audit), platform=self.broker.read("platform-changelog"))
        read.update(replaced)
        return check(**read, expected=expected)


def workload() -> list[bytes]:
    """Generated billing in the simulator's order: a tick a day, on until a month after the last event."""
    events = [parse_event(line) for line in to_jsonl_bytes(generate(12, 10, START, 5))]
    return [event.model_dump_json(exclude_none=True).encode()
            for event in with_ticks(events, EVERY, START + EVERY * (DAYS - 1))]


BAD = [b"{not json", b'{"event_id": "x", "type": "invoice.exploded", "account_id": "A"}', b""]


@pytest.fixture(scope="module")
def clean() -> Run:
    run = Run()
    lines = workload()
    published = run.publish_events(lines[:40])
    published += [run.broker.append(TOPICS.invoices, 0, b"A", value) for value in BAD]
    published += run.publish_events(lines[40:])
    for start in range(0, len(published), 50):
        run.process(published[start:start + 50])
    return run


@pytest.fixture(scope="module")
def expected(clean: Run):
    return simulated_notices(simulator_order(clean.broker.read(*TOPICS.inputs), TOPICS), DEFAULT_RULES)


def test_a_clean_run_passes_with_every_message_accounted_for(clean: Run, expected):
    report = clean.verdict(expected)
    assert report.ok, report.render()
    assert report.inputs == len(clean.broker.read(*TOPICS.inputs))
    assert report.dead_lettered == 3 and report.reasons == {"malformed_json": 1, "invalid_event": 1, "empty": 1}
    assert report.applied + report.platform + report.dead_lettered == report.inputs
    assert report.notices == report.distinct_notices == report.simulated == len(expected) > 10
    assert report.lost == 0 and "OK" in report.render()


def test_the_simulator_order_is_the_published_one(clean: Run, expected):
    oracle = Simulation(Engine(load_ruleset(DEFAULT_RULES)))
    for line in workload():
        oracle.feed(parse_event(line))
    assert [n.notice_id for n in expected] == [n.notice_id for n in oracle.notices]


def test_a_redelivered_batch_repeats_notices_and_passes(expected):
    run = Run()
    published = run.publish_events(workload())
    tail = len(published) - 60  # the last ticks release notices
    run.process(published[:tail])
    run.process(published[tail:], crash_before_state=True)
    run.process(published[tail:])  # the restart repeats the batch
    report = run.verdict(expected)
    assert report.ok, report.render()
    assert report.repeated_notices > 0 and report.notices == report.distinct_notices + report.repeated_notices
    assert report.redelivered == 0  # the same offsets again, not new messages


def test_a_resent_event_is_a_recognised_redelivery(expected):
    run = Run()
    lines = workload()
    invoice = next(line for line in lines if b'"invoice.issued"' in line)
    published = run.publish_events(lines)
    published += run.publish_events([invoice])  # a producer retry: the same event again, at a new offset
    run.process(published)
    report = run.verdict(expected)
    assert report.ok, report.render()
    assert report.redelivered == 1


def test_an_input_offset_with_no_dead_letter_and_no_audit_line_fails(clean: Run):
    letters = clean.broker.read(TOPICS.dead_letter)
    malformed = next(m for m in letters if b"malformed_json" in m.value)
    report = clean.verdict(dead_letters=[m for m in letters if m is not malformed])
    assert not report.ok and report.counts == {"unaccounted": 1} and report.lost == 1
    [line] = report.violations["unaccounted"]
    origin = json.loads(malformed.value)["origin"]
    assert line.startswith(f"{TOPICS.invoices}/0@{origin['offset']}: invalid, and no dead letter names it")

    audit = clean.broker.read(TOPICS.audit)
    applied = next(json.loads(m.value) for m in audit if json.loads(m.value)["what"] == "payment.received")
    report = clean.verdict(audit=[m for m in audit if json.loads(m.value)["id"] != applied["id"]])
    assert report.counts == {"unaccounted": 1}, report.render()
    assert f"payment.received {applied['id']} of account {applied['account_id']}" in report.render()


def test_a_tick_the_platform_table_does_not_hold_fails(clean: Run):
    changelog = clean.broker.read("platform-changelog")
    report = clean.verdict(platform=[m for m in changelog if m.partition != 1])
    platform_events = [line for line in workload() if b'"account_id":"*"' in line]
    assert report.counts["unaccounted"] == len(platform_events), report.render()
    assert "clock.tick tick:" in report.violations["unaccounted"][0]
    assert "not in the platform table of partition 1" in report.violations["unaccounted"][0]


def test_a_notice_twin_with_different_content_fails(clean: Run, expected):
    notices = clean.broker.read(TOPICS.reminders)
    first = notices[0]
    twin = json.loads(first.value)
    twin["days_past_due"] = twin["days_past_due"] + 1
    forged = Message(first.topic, first.partition, 10_000, first.key, json.dumps(twin).encode())
    same = Message(first.topic, first.partition, 10_001, first.key, first.value)
    report = clean.verdict(expected, notices=notices + [same, forged] + clean.broker.read(
        TOPICS.urgent_notices, TOPICS.handoffs))
    assert report.counts == {"notice_twin": 1}, report.render()
    assert report.repeated_notices == 2
    assert report.violations["notice_twin"] == [
        f"notice {twin['notice_id']} at {first.topic}/{first.partition}@{first.offset} and at "
        f"{first.topic}/{first.partition}@10000 differ in days_past_due: {twin['days_past_due'] - 1} vs "
        f"{twin['days_past_due']}"]


def test_a_notice_the_audit_records_but_no_topic_carries_fails(clean: Run):
    notices = clean.broker.read(*TOPICS.notices)
    report = clean.verdict(notices=notices[1:])
    assert report.counts == {"notice_missing": 1} and report.lost == 1
    assert json.loads(notices[0].value)["notice_id"] in report.violations["notice_missing"][0]


def test_notices_other_than_the_simulators_fail(clean: Run, expected):
    report = clean.verdict(expected[1:])
    assert report.counts == {"simulator_unexpected": 1}, report.render()
    report = clean.verdict(expected + [expected[0].model_copy(update={"notice_id": "n-never-sent"})])
    assert report.counts == {"simulator_missing": 1} and report.lost == 1
    changed = [expected[0].model_copy(update={"days_past_due": 99}), *expected[1:]]
    assert clean.verdict(changed).counts == {"simulator_differs": 1}


def test_a_dead_letter_naming_no_input_fails(clean: Run):
    letters = clean.broker.read(TOPICS.dead_letter)
    stray = json.loads(letters[0].value)
    stray["origin"]["offset"] = 99_999
    report = clean.verdict(dead_letters=letters + [Message(TOPICS.dead_letter, 0, 99, b"A",
                                                           json.dumps(stray).encode())])
    assert report.counts == {"stray_dead_letter": 1}
    assert report.violations["stray_dead_letter"] == [f"a dead letter names {TOPICS.invoices}/0@99999, which is "
                                                      "no input message"]


def test_the_render_names_the_first_violations_and_counts_the_rest(clean: Run):
    report = clean.verdict(audit=[])
    text = report.render()
    assert not report.ok and report.counts["unaccounted"] == report.inputs - report.dead_lettered - report.platform
    assert text.count("\n  ") >= 10 and f"... and {report.counts['unaccounted'] - 10} more" in text


def test_cli_exit_codes(monkeypatch, clean: Run, capsys):
    from streams.tools import audit_check, cli

    async def fake(settings, simulate):
        return clean.verdict() if simulate else clean.verdict(audit=[])

    monkeypatch.setattr(audit_check, "check_broker", fake)
    assert cli.main(["audit-check"]) == 0
    assert "OK: every input message" in capsys.readouterr().out
    assert cli.main(["audit-check", "--no-simulator", "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is False and summary["lost"] == summary["violations"]["unaccounted"] > 0


def test_platform_events_enter_the_simulator_once(clean: Run):
    order = simulator_order(clean.broker.read(*TOPICS.inputs), TOPICS)
    ticks = [event for event in order if event.type == "clock.tick"]
    published = [line for line in workload() if b'"clock.tick"' in line]
    assert len(ticks) == len(published) == len({event.event_id for event in ticks}) > 30
