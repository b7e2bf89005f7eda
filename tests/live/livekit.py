"""Helpers for the live tests: a namespace of topics per test, worker subprocesses, kcat in and out, a probe of
the worker group, and the simulator run on the same schedule (the oracle, notices and audit trail).

Everything talks to the real broker. Time is driven by publishing ticks; every wait polls with a deadline.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Sequence

import yaml

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation, with_ticks
from rules.state import AccountState, dump_account
from schemas.events import PLATFORM_ACCOUNT, InputEvent, parse_event, tick
from schemas.export import SCHEMA_DIR
from schemas.notices import Notice
from streams.tools.audit_check import Report, check_broker
from streams.generators.generate import generate, to_jsonl_bytes
from streams.tools.live import group_caught_up, trail_differences, trails
from streams.runtime.settings import DEFAULT_RULES, Settings, TopicNames

REPO = Path(__file__).resolve().parents[2]
KCAT = shutil.which("kcat") or shutil.which("kafkacat")
DUNNING = Path(sys.executable).with_name("dunning")
NOTICE_FIELDS = ("kind", "rule_id", "issued_at", "account_id")
AUDIT_SCHEMA = SCHEMA_DIR / "audit.schema.json"


def eventually(check: Callable[[], object], timeout: float, what: str, every: float = 0.05,
               on_timeout: Callable[[], str] | None = None) -> object:
    """Polls `check` until it returns something truthy; fails with `what` (and on_timeout's text) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{extra}")
        time.sleep(every)


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------- namespace

@dataclass
class Namespace:
    """One test's topics, consumer group and state directories, all under a unique prefix."""

    bootstrap: str
    root: Path
    partitions: int = 3
    session_timeout: float = 6.0
    commit_interval: float | None = None  # None: the worker's default (1 s)
    broker: "PrivateBroker | None" = None  # the test's own broker, when it stops one
    prefix: str = field(default_factory=lambda: f"live-{uuid.uuid4().hex[:10]}")

    def __post_init__(self) -> None:
        names = {name: f"{self.prefix}.{default}" for name, default in TopicNames().model_dump().items()}
        self.topics = TopicNames(**names)
        self.app_id = f"{self.prefix}-app"
        self.settings = Settings(KAFKA_BOOTSTRAP_SERVERS=self.bootstrap, app_id=self.app_id,
                                 partitions=self.partitions, topic=self.topics, clock_enabled=False,
                                 session_timeout=self.session_timeout)

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-dunning-accounts-changelog"

    def env(self, state_dir: Path, web_port: int) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("DUNNING_")}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            DUNNING_APP_ID=self.app_id,
            DUNNING_PARTITIONS=str(self.partitions),
            DUNNING_STATE_DIR=str(state_dir),
            DUNNING_WEB_PORT=str(web_port),
            DUNNING_CLOCK_ENABLED="false",
            DUNNING_SESSION_TIMEOUT=str(self.session_timeout),
            PYTHONUNBUFFERED="1",
        )
        if self.commit_interval is not None:
            env["DUNNING_COMMIT_INTERVAL"] = str(self.commit_interval)
        for name, topic in self.topics.model_dump().items():
            env[f"DUNNING_TOPIC__{name.upper()}"] = topic
        return env

    def cleanup(self) -> None:
        """Deletes every topic of this namespace (the worker's, and Faust's changelogs and leader topic)."""

        async def delete() -> None:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            try:
                mine = [name for name in await admin.list_topics() if name.startswith(self.prefix)]
                if mine:
                    await admin.delete_topics(mine)
            finally:
                await admin.close()

        try:
            asyncio.run(delete())
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the test's own outcome
            print(f"live: could not delete the topics of {self.prefix}: {exc!r}", file=sys.stderr)


# --------------------------------------------------------------------------------------------- worker

class Worker:
    """`dunning worker` as a subprocess with the namespace's environment; its log goes to a file."""

    READY = "[^Worker]: Ready"

    def __init__(self, namespace: Namespace, name: str, root: Path):
        self.namespace, self.name = namespace, name
        self.state_dir = root / f"{name}-state"
        self.web_port = free_port()
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self._log_from = 0
        self.starts = 0
        self.env: dict[str, str] = {}  # on top of the namespace's (a ruleset: DUNNING_RULES)

    def is_member(self, url: str) -> bool:
        """Whether a group member's Faust URL (http://host:web_port) is this worker's."""
        return url.rstrip("/").endswith(f":{self.web_port}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: bool = True, timeout: float = 60) -> "Worker":
        assert not self.alive, f"{self.name} is already running"
        self._log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            log.write(f"\n===== live test: start #{self.starts + 1} of {self.name} =====\n".encode())
            env = {**self.namespace.env(self.state_dir, self.web_port), **self.env}
            self.proc = subprocess.Popen([str(DUNNING), "worker"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        if wait:
            self.wait_ready(timeout)
        return self

    def log_text(self, since_start: bool = True) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_from if since_start else 0)
            return handle.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.READY in self.log_text():
                return True
            if not self.alive:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before it was ready\n"
                                     + self.tail())
            return False

        eventually(ready, timeout, f"{self.name} to log {self.READY!r}", every=0.1, on_timeout=self.tail)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no leaving the group."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait for a clean stop (SIGKILL if it hangs)."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
                raise AssertionError(f"{self.name} did not stop within {timeout:.0f} s of SIGTERM\n" + self.tail())
        return self.proc.returncode if self.proc else None

    def stop(self, signal_name: str) -> None:
        """Stops the worker with SIGKILL ("KILL") or SIGTERM ("TERM")."""
        self.kill() if signal_name == "KILL" else self.terminate()

    def restart(self, wait: bool = True) -> "Worker":
        self.terminate()
        return self.start(wait=wait)

    def tail(self, lines: int = 60) -> str:
        text = self.log_text(since_start=False).splitlines()[-lines:]
        return f"----- last {len(text)} lines of {self.log_path} -----\n" + "\n".join(text)


# --------------------------------------------------------------------------------------------- private broker

class PrivateBroker:
    """A second kafka-local broker with its own state directory and port, for a test that stops it."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.env = {**os.environ, "KAFKA_STATE_DIR": str(root / "kafka"), "KAFKA_PORT": str(self.port),
                    "KAFKA_CONTROLLER_PORT": str(free_port())}
        self.env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _run(self, command: str) -> None:
        proc = subprocess.run([str(REPO / "tools" / "kafka" / "kafka-local"), command], cwd=REPO, env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"kafka-local {command} failed:\n{proc.stdout}\n{proc.stderr}"

    def start(self) -> "PrivateBroker":
        self._run("start")
        return self

    def stop(self) -> None:
        self._run("stop")


# --------------------------------------------------------------------------------------------- kcat

class Kcat:
    """kcat in (keyed, Java-compatible murmur2 partitioning, or an explicit partition) and out (read_committed)."""

    def __init__(self, namespace: Namespace):
        self.namespace = namespace
        self.bootstrap = namespace.bootstrap

    def _run(self, args: list[str], stdin: bytes | None = None, timeout: float = 60) -> bytes:
        proc = subprocess.run([KCAT, "-b", self.bootstrap, *args], input=stdin, capture_output=True,
                              timeout=timeout)
        assert proc.returncode == 0, f"kcat {args} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}"
        return proc.stdout

    def _produce_args(self, topic: str, partition: int | None) -> list[str]:
        args = ["-P", "-t", topic, "-K", "\t", "-X", "partitioner=murmur2_random", "-X", "acks=all",
                "-X", "enable.idempotence=true"]
        return args + (["-p", str(partition)] if partition is not None else [])

    def produce(self, topic: str, records: Sequence[tuple[bytes, bytes]], partition: int | None = None) -> None:
        """One kcat call for many keyed records, in order; neither key nor value may hold a tab or a newline."""
        for key, value in records:
            assert b"\t" not in key and b"\n" not in key + value, (key, value)
        self._run(self._produce_args(topic, partition), stdin=b"".join(k + b"\t" + v + b"\n" for k, v in records))

    def produce_many(self, batches: dict[tuple[str, int | None], list[tuple[bytes, bytes]]]) -> None:
        """Several kcat producers at once (one per topic or partition); returns when all have delivered."""
        procs = []
        for (topic, partition), records in batches.items():
            proc = subprocess.Popen([KCAT, "-b", self.bootstrap, *self._produce_args(topic, partition)],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            proc.stdin.write(b"".join(k + b"\t" + v + b"\n" for k, v in records))
            proc.stdin.close()
            procs.append((topic, partition, proc))
        for topic, partition, proc in procs:
            err = proc.stderr.read()
            assert proc.wait(timeout=60) == 0, f"kcat -P {topic} -p {partition} failed:\n{err.decode(errors='replace')}"

    def consume_bytes(self, topic: str, fmt: str = "%k\t%s\n") -> list[bytes]:
        """Everything committed on a topic, from the beginning to the current end, a line per message."""
        out = self._run(["-C", "-t", topic, "-o", "beginning", "-e", "-q", "-X", "isolation.level=read_committed",
                         "-X", "fetch.wait.max.ms=10", "-f", fmt])  # the default 500 ms wait per empty fetch
        return [line for line in out.split(b"\n") if line]

    def consume_records(self, topic: str) -> list[tuple[bytes, bytes]]:
        """Every committed (key, value) on a topic, binary-safe: each field comes after its length."""
        out = self._run(["-C", "-t", topic, "-o", "beginning", "-e", "-q", "-X", "isolation.level=read_committed",
                         "-X", "fetch.wait.max.ms=10", "-f", "%K:%k%S:%s"])
        records, position = [], 0
        while position < len(out):
            fields = []
            for _ in range(2):
                colon = out.index(b":", position)
                length = int(out[position:colon])
                fields.append(out[colon + 1:colon + 1 + length])
                position = colon + 1 + length
            records.append((fields[0], fields[1]))
        return records

    def consume(self, topic: str, fmt: str = "%k\t%s\n") -> list[str]:
        return [line.decode() for line in self.consume_bytes(topic, fmt)]

    def notices(self) -> list[Notice]:
        """Every notice on the notice topics (reminders, urgent notices, handoffs, offers, decisions; repeats
        included), keyed by account."""
        found = []
        for topic in self.namespace.topics.notices:
            for line in self.consume(topic):
                key, value = line.split("\t", 1)
                notice = Notice.model_validate_json(value)
                assert key == notice.account_id, (key, notice.account_id)
                assert topic == self.namespace.topics.for_notice_kind(notice.kind), (topic, notice.kind)
                found.append(notice)
        return found

    def audit(self) -> dict[str, list[bytes]]:
        """Each account's lines on the audit topic, in order, as sent; each valid against the exported JSON Schema
        and keyed by its account_id."""
        import jsonschema

        validator = jsonschema.Draft202012Validator(json.loads(AUDIT_SCHEMA.read_text()))
        records = []
        for line in self.consume_bytes(self.namespace.topics.audit):
            key, value = line.split(b"\t", 1)
            record = json.loads(value)
            assert [error.message for error in validator.iter_errors(record)] == [], value
            assert key.decode() == record["account_id"], (key, value)
            records.append((record["account_id"], value))
        return trails(records)


# --------------------------------------------------------------------------------------------- group probe

class Probe:
    """An admin client and a consumer on one private event loop: is the worker group caught up, who owns what."""

    def __init__(self, namespace: Namespace):
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        self.namespace = namespace
        self.loop = asyncio.new_event_loop()
        options = namespace.settings.kafka_client_options()

        async def start():  # aiokafka clients bind to the loop running when they are made
            admin, consumer = AIOKafkaAdminClient(**options), AIOKafkaConsumer(**options)
            await admin.start()
            await consumer.start()
            return admin, consumer

        self.admin, self.consumer = self.loop.run_until_complete(start())

    def close(self) -> None:
        self.loop.run_until_complete(self.consumer.stop())
        self.loop.run_until_complete(self.admin.close())
        self.loop.close()

    def caught_up(self) -> bool:
        return self.loop.run_until_complete(group_caught_up(self.namespace.settings, self.admin, self.consumer))

    def wait_caught_up(self, timeout: float = 60, workers: Iterable[Worker] = ()) -> None:
        workers = list(workers)

        running = [worker for worker in workers if worker.alive]

        def check() -> bool:
            for worker in running:
                if not worker.alive:
                    raise AssertionError(f"{worker.name} exited ({worker.proc.returncode}) while the test needed it"
                                         f"\n{worker.tail()}")
            return self.caught_up()

        eventually(check, timeout, f"the group {self.namespace.app_id} to commit every input message",
                   on_timeout=lambda: "\n".join(w.tail(30) for w in workers))

    def committed(self, topics: Iterable[str]) -> int:
        """The sum of the worker group's committed offsets on these topics: how many messages it has done."""
        from aiokafka import TopicPartition

        partitions = [TopicPartition(t, p) for t in topics for p in range(self.namespace.partitions)]
        offsets = self.loop.run_until_complete(self.admin.list_consumer_group_offsets(
            self.namespace.app_id, partitions=partitions))
        return sum(max(0, meta.offset) for meta in offsets.values() if meta is not None)

    def end_offsets(self, topics: Iterable[str]) -> int:
        """The sum of the end offsets of these topics' partitions: how many messages they hold."""
        from aiokafka import TopicPartition

        partitions = [TopicPartition(t, p) for t in topics for p in range(self.namespace.partitions)]
        return sum(self.loop.run_until_complete(self.consumer.end_offsets(partitions)).values())

    def group_state(self) -> str:
        """The worker group's state as the coordinator reports it (Stable, PreparingRebalance, ...)."""
        [response] = self.loop.run_until_complete(self.admin.describe_consumer_groups([self.namespace.app_id]))
        return response.groups[0][2]

    def assignment(self) -> list[tuple[str, set[tuple[str, int]]]]:
        """Per member of the stable group: its Faust URL (http://host:web_port, which worker it is) and the input
        partitions it was assigned. Empty while the group is rebalancing."""
        from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

        [response] = self.loop.run_until_complete(self.admin.describe_consumer_groups([self.namespace.app_id]))
        group = response.groups[0]
        state, members = group[2], group[5]
        if state != "Stable":
            return []
        owned = []
        inputs = set(self.namespace.topics.inputs)
        for member in members:
            metadata, assignment = member[-2], member[-1]
            url = json.loads(ConsumerProtocolMemberMetadata.decode(metadata).user_data)["url"]
            decoded = ConsumerProtocolMemberAssignment.decode(assignment)
            owned.append((url, {(topic, p) for topic, parts in decoded.assignment for p in parts if topic in inputs}))
        return owned


def wait_assignment(probe: Probe, members: Sequence[Worker], timeout: float = 60) -> dict[str, set[int]]:
    """Waits until exactly these workers form the stable group, each with a share of the partitions, every input
    topic's partition n at the same worker (co-partitioned), all partitions owned; returns name -> partitions."""
    inputs = probe.namespace.topics.inputs
    everything = set(range(probe.namespace.partitions))

    def check() -> dict[str, set[int]] | None:
        for worker in members:
            if not worker.alive:
                raise AssertionError(f"{worker.name} exited ({worker.proc.returncode})\n{worker.tail()}")
        owned = probe.assignment()
        if len(owned) != len(members):
            return None
        shares: dict[str, set[int]] = {}
        for url, tps in owned:
            worker = next((w for w in members if w.is_member(url)), None)
            numbers = {p for _, p in tps}
            if worker is None or worker.name in shares or not numbers or tps != {(t, p) for t in inputs
                                                                                   for p in numbers}:
                return None
            shares[worker.name] = numbers
        split = list(shares.values())
        if sum(len(s) for s in split) != len(everything) or set().union(*split) != everything:
            return None
        return shares

    return eventually(check, timeout, f"the group to be {[w.name for w in members]} sharing every partition",
                      every=0.2, on_timeout=lambda: f"last seen: {probe.assignment()}")


# --------------------------------------------------------------------------------------------- workload

@dataclass(frozen=True)
class Item:
    """One message to publish: the raw JSON the simulator also parses, and the event."""

    event: InputEvent
    raw: bytes

    @property
    def platform(self) -> bool:
        return self.event.account_id == PLATFORM_ACCOUNT


def items_from_lines(lines: Iterable[bytes]) -> list[Item]:
    return [Item(parse_event(line), line.strip()) for line in lines if line.strip()]


WORKLOAD_START = datetime.fromisoformat("2026-11-01T09:00:00+08:00")


def generated(accounts: int, days: int, seed: int) -> list[Item]:
    """A generated billing stream (streams.generators.generate) from WORKLOAD_START, as items to publish."""
    return items_from_lines(to_jsonl_bytes(generate(accounts, days, WORKLOAD_START, seed)))


def tick_item(at: datetime) -> Item:
    event = tick(at)
    return Item(event, event.model_dump_json(exclude_none=True).encode())


def schedule(items: list[Item], every: timedelta | None, until: datetime | None) -> list[Item]:
    """The simulator's order (Simulation.run): ticks every `every` from the first event's time, a tick at or
    before an event first, and ticks up to `until` after the last event."""
    by_event = {id(item.event): item for item in items}
    return [by_event.get(id(event)) or tick_item(event.at)
            for event in with_ticks([item.event for item in items], every, until)]


def phases(ordered: list[Item], topics: TopicNames) -> list[list[Item]]:
    """Splits the simulator's order into runs whose relative order the broker keeps without help.

    Topics interleave freely, so a phase changes at every switch between platform messages (every partition of
    the clock topic) and account events, and also when an account's next event is on another topic than its
    earlier one in the same phase (an invoice, then a payment for it). Within a phase, each account's events
    are on one partition of one topic, in order; different accounts do not affect each other."""
    result: list[list[Item]] = []
    platform: bool | None = None
    topic_of: dict[str, str] = {}
    for item in ordered:
        topic = topics.for_event_type(item.event.type)
        if item.platform != platform or (not item.platform and topic_of.get(item.event.account_id, topic) != topic):
            result.append([])
            platform, topic_of = item.platform, {}
        if not item.platform:
            topic_of[item.event.account_id] = topic
        result[-1].append(item)
    return result


def split_ticks(plan: list[list[Item]], size: int) -> list[list[Item]]:
    """The same plan with long runs of platform messages cut into phases of at most `size` (still in order)."""
    result = []
    for phase in plan:
        step = size if phase[0].platform else len(phase)
        result.extend(phase[i:i + step] for i in range(0, len(phase), step))
    return result


class Publisher:
    """Publishes phases with kcat and waits, between phases, until the worker group has committed them."""

    def __init__(self, namespace: Namespace, kcat: Kcat, probe: Probe):
        self.namespace, self.kcat, self.probe = namespace, kcat, probe
        self.sent = 0

    def publish_phase(self, phase: list[Item]) -> None:
        topics = self.namespace.topics
        batches: dict[tuple[str, int | None], list[tuple[bytes, bytes]]] = defaultdict(list)
        if phase[0].platform:
            for partition in range(self.namespace.partitions):
                batches[(topics.clock, partition)] = [(b"*", item.raw) for item in phase]
        else:
            for item in phase:
                batches[(topics.for_event_type(item.event.type), None)].append(
                    (item.event.account_id.encode(), item.raw))
        self.kcat.produce_many(batches)
        self.sent += len(phase)

    def run(self, phase_list: list[list[Item]], workers: Iterable[Worker] = (), timeout: float = 60) -> None:
        """Each phase, then a wait until the group has committed it (failing early if a worker dies)."""
        workers = list(workers)
        for phase in phase_list:
            self.publish_phase(phase)
            self.probe.wait_caught_up(timeout, workers=workers)


# --------------------------------------------------------------------------------------------- oracle

def simulate(items: list[Item], every: timedelta | None, until: datetime | None,
             rules: Path = DEFAULT_RULES) -> Simulation:
    simulation = Simulation(Engine(load_ruleset(rules)), audit=[])
    simulation.run([item.event for item in items], every, until)
    return simulation


def simulate_in_order(ordered: list[Item], rules: Path = DEFAULT_RULES) -> Simulation:
    """The simulator fed exactly this order of events and ticks (for deliberately crossed messages)."""
    simulation = Simulation(Engine(load_ruleset(rules)), audit=[])
    for item in ordered:
        simulation.feed(item.event)
    return simulation


def state_diff(live: AccountState, expected: AccountState) -> str:
    """The top-level fields in which two account states differ, for assertion messages."""
    return "\n".join(f"{name}: live={getattr(live, name)!r} simulator={getattr(expected, name)!r}"
                     for name in AccountState.__slots__ if getattr(live, name) != getattr(expected, name))


def stored_accounts(kcat: Kcat, namespace: Namespace) -> dict[str, AccountState]:
    """The state each account ended with, as the workers stored it: the last value in the changelog."""
    from streams.runtime.processor import decode_account

    stored = {}
    for key, value in kcat.consume_records(namespace.changelog):
        stored[key.decode()] = decode_account(value)
    return stored


def compare_states(live: dict[str, AccountState], expected: dict[str, AccountState]) -> None:
    assert set(live) == set(expected), set(live) ^ set(expected)
    for account, state in expected.items():
        assert dump_account(live[account]) == dump_account(state), f"{account}:\n{state_diff(live[account], state)}"


def notices_by_phase(plan: list[list[Item]], rules: Path = DEFAULT_RULES) -> list[list[Notice]]:
    """The simulator's notices, by the phase whose messages released them."""
    simulation = Simulation(Engine(load_ruleset(rules)))
    result = []
    for phase in plan:
        before = len(simulation.notices)
        for item in phase:
            simulation.feed(item.event)
        result.append(simulation.notices[before:])
    return result


def summary(notice: Notice) -> tuple:
    return tuple(getattr(notice, name) for name in NOTICE_FIELDS)


def describe(notice: Notice) -> str:
    return f"{notice.issued_at.isoformat()} {notice.account_id} {notice.kind} {notice.rule_id} [{notice.notice_id}]"


def compare_notices(live: list[Notice], expected: list[Notice], allow_repeats: bool = False) -> Counter:
    """Asserts the live notices are the expected ones: same notice_ids, same content for each id (the four
    fields named in the issue, then the whole notice). Repeats are allowed only with `allow_repeats`, and then
    every copy must equal the first. Returns how many times each notice_id was seen."""
    counts = Counter(n.notice_id for n in live)
    expected_ids = [n.notice_id for n in expected]
    assert len(expected_ids) == len(set(expected_ids)), "the simulator repeated a notice_id"
    by_id = {n.notice_id: n for n in expected}
    missing = [describe(by_id[i]) for i in expected_ids if i not in counts]
    extra = [describe(n) for n in live if n.notice_id not in by_id]
    assert not missing and not extra, (f"{len(missing)} notices missing, {len(extra)} unexpected\nmissing:\n  "
                                       + "\n  ".join(missing[:40]) + "\nunexpected:\n  " + "\n  ".join(extra[:40]))
    if not allow_repeats:
        repeated = {i: c for i, c in counts.items() if c > 1}
        assert not repeated, f"notices sent more than once: {repeated}"
    for notice in live:
        want = by_id[notice.notice_id]
        assert summary(notice) == summary(want), (notice.notice_id, summary(notice), summary(want))
        assert notice.model_dump(mode="json") == want.model_dump(mode="json"), (
            f"{notice.notice_id}: content differs\nlive:      {notice.model_dump_json()}\n"
            f"simulator: {want.model_dump_json()}")
    return counts


def compare_audit(live: dict[str, list[bytes]], simulation: Simulation) -> None:
    """Asserts each account's live audit trail is the simulator's, line for line (as `dunning simulate --audit`
    writes them)."""
    expected = trails((record.account_id, record.to_json()) for record in simulation.audit)
    differences = trail_differences(live, expected)
    assert not differences, (f"{len(differences)} of {len(expected)} accounts' audit trails differ from the "
                             "simulator's:\n" + "\n".join(f"{a}: {d}" for a, d in list(differences.items())[:20]))


def audit_check(namespace: Namespace, expected: list[Notice] | None) -> Report:
    """`dunning audit-check` over the namespace's topics: every input message applied or dead-lettered, no notice
    twin differs, and the notices are `expected` (the simulator's). Fails naming the violations."""
    report = asyncio.run(check_broker(namespace.settings, simulate=False, expected=expected))
    print(report.render())
    assert report.ok, report.render()
    return report


# --------------------------------------------------------------------------------------------- scenario files live

SCENARIOS = REPO / "tests" / "scenarios"
sys.path.insert(0, str(SCENARIOS))
from test_scenarios import audited, expected_lines  # noqa: E402
from test_scenarios import describe as described  # noqa: E402


@dataclass
class ScenarioFile:
    """One folder of the scenario suite: its events (ticks it carries included), end and accounts."""

    folder: str
    items: list[Item]
    until: datetime
    accounts: set[str]

    @classmethod
    def read(cls, folder: str) -> "ScenarioFile":
        items = items_from_lines((SCENARIOS / folder / "events.jsonl").read_bytes().splitlines())
        until = datetime.fromisoformat(str(yaml.safe_load((SCENARIOS / folder / "scenario.yaml").read_text())["until"]))
        return cls(folder, items, until, {item.event.account_id for item in items} - {PLATFORM_ACCOUNT})


def check_oracle(oracle: Simulation, files: Iterable[ScenarioFile]) -> None:
    """The simulation of several scenario files together gives each file's own expected notices (and audit.txt's
    lines, where it has one) up to its end: the files share no account, so the live run of all of them at once is
    checked against the scenario suite too."""
    notices = oracle.sorted_notices()
    for file in files:
        folder = SCENARIOS / file.folder
        mine = [described(n) for n in notices if n.account_id in file.accounts and n.issued_at <= file.until]
        assert mine == expected_lines(folder), file.folder
        if (folder / "audit.txt").exists():
            lines = [audited(r) for r in oracle.audit if r.account_id in file.accounts and r.at <= file.until]
            assert [line for line in lines if line] == expected_lines(folder, "audit.txt"), file.folder


def compare_with_oracle(kcat: Kcat, namespace: Namespace, oracle: Simulation) -> list[Notice]:
    """What the workers sent and stored is the simulator's: notices (each on its kind's topic), no dead letter,
    each account's audit trail line for line, and the states in the changelog. Returns the live notices."""
    live = kcat.notices()
    compare_notices(live, oracle.notices)
    assert kcat.consume(namespace.topics.dead_letter) == []
    compare_audit(kcat.audit(), oracle)
    compare_states(stored_accounts(kcat, namespace), oracle.accounts)
    return live
