"""Fixtures for the live tests: each test gets its own topics, consumer group and state directories on the real
broker (tests/conftest.py's kafka_bootstrap), worker subprocesses, kcat, and a probe of the worker group.

Helpers live in livekit.py next to this file."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest

from livekit import KCAT, Kcat, Namespace, PrivateBroker, Probe, Publisher, Worker


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "live_namespace(**options): Namespace options for this test "
                                       "(partitions, session_timeout, commit_interval, private_broker: a "
                                       "broker of the test's own, to stop)")
    config.addinivalue_line("markers", "kill_points(quick, more): the test's kill_point values; `more` only "
                                       "with --reliability (make reliability)")
    config.reliability_figures = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("kill_points")
    if marker is not None:
        points = list(marker.kwargs["quick"])
        if metafunc.config.getoption("reliability"):
            points += marker.kwargs.get("more", [])
        metafunc.parametrize("kill_point", points, ids=str)


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = session.config.getoption("reliability_out")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(reliability_summary(session.config.reliability_figures), indent=2) + "\n")


def reliability_summary(figures: list[dict]) -> dict:
    """The faults and the soak as recorded by the tests, and totals over the faults."""
    faults = [figure for figure in figures if figure["fault"] != "soak"]
    totals = {name: sum(figure[name] for figure in faults)
              for name in ("messages", "dead_letters", "duplicates", "lost")}
    return {"generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "make reliability",
            "faults": faults, "fault_runs": len(faults), "fault_totals": totals,
            "failed": [f"{figure['fault']}[{figure['kill_point']}]" for figure in faults if not figure["ok"]],
            "soak": [figure for figure in figures if figure["fault"] == "soak"]}


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Records a fault test's figures (audit-check's counts) for bench/results/reliability.json."""

    def record(fault: str, report, **extra: object) -> None:
        figure = {"fault": fault, "kill_point": str(request.node.callspec.params.get("kill_point", "-"))
                  if hasattr(request.node, "callspec") else "-",
                  "ok": report.ok, "messages": report.inputs, "dead_letters": report.dead_lettered,
                  "duplicates": report.repeated_notices, "redelivered": report.redelivered, "lost": report.lost,
                  "notices": report.distinct_notices, **extra}
        request.config.reliability_figures.append(figure)

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"live_report_{report.when}", report)


@pytest.fixture
def namespace(kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    """Unique topic names (DUNNING_TOPIC__*), app id and state under tmp_path; topics deleted afterwards."""
    if KCAT is None:
        pytest.skip("kcat not installed (Debian package kafkacat; make test installs it)")
    marker = request.node.get_closest_marker("live_namespace")
    options = {"partitions": 3, "session_timeout": 6.0, **(marker.kwargs if marker else {})}
    broker = PrivateBroker(tmp_path).start() if options.pop("private_broker", False) else None
    ns = Namespace(bootstrap=broker.bootstrap if broker else kafka_bootstrap, root=tmp_path, broker=broker,
                   **options)
    yield ns
    if broker is not None:
        broker.stop()  # its topics go with its state directory
    else:
        ns.cleanup()


@pytest.fixture
def workers(namespace: Namespace, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Worker]]:
    """A factory: workers("a") makes (and, with start=True, starts) a worker with its own state dir and web port.

    Every worker is stopped afterwards; on a failed test the tail of each log is printed."""
    made: list[Worker] = []

    def make(name: str = "w1", start: bool = True) -> Worker:
        worker = Worker(namespace, name, tmp_path)
        made.append(worker)
        return worker.start() if start else worker

    yield make
    for worker in made:
        try:
            worker.terminate(timeout=20)
        except AssertionError as exc:
            print(exc)
    report = getattr(request.node, "live_report_call", None)
    if report is None or report.failed:
        for worker in made:
            print(worker.tail(80))


@pytest.fixture
def kcat(namespace: Namespace) -> Kcat:
    return Kcat(namespace)


@pytest.fixture
def probe(namespace: Namespace) -> Iterator[Probe]:
    probe = Probe(namespace)
    yield probe
    probe.close()


@pytest.fixture
def publisher(namespace: Namespace, kcat: Kcat, probe: Probe) -> Publisher:
    return Publisher(namespace, kcat, probe)
