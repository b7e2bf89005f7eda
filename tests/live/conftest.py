"""Fixtures for the live tests: each test gets its own topics, consumer group and state directories on the real
broker (tests/conftest.py's kafka_bootstrap), worker subprocesses, kcat, and a probe of the worker group.

Helpers live in livekit.py next to this file."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from livekit import KCAT, Kcat, Namespace, Probe, Publisher, Worker


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "live_namespace(**options): Namespace options for this test "
                                       "(partitions, session_timeout, commit_interval)")


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
    ns = Namespace(bootstrap=kafka_bootstrap, root=tmp_path, **options)
    yield ns
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
