"""Project-wide pytest fixtures. Keep generic: feature fixtures belong in sub-folder conftests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = REPO_ROOT / "tools" / "kafka" / "kafka-local"


def _kafka_local(*args: str) -> str:
    proc = subprocess.run(
        [str(KAFKA_LOCAL), *args],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"kafka-local {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout.strip()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of a real Kafka broker.

    KAFKA_BOOTSTRAP_SERVERS if set; otherwise the local broker of tools/kafka/kafka-local,
    started if needed and stopped at session end only if this session started it
    (and KAFKA_KEEP_BROKER is not set).
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    started = subprocess.run(
        [str(KAFKA_LOCAL), "status"], cwd=REPO_ROOT, capture_output=True, stdin=subprocess.DEVNULL
    ).returncode != 0
    _kafka_local("start")
    try:
        yield _kafka_local("bootstrap")
    finally:
        if started and not os.environ.get("KAFKA_KEEP_BROKER"):
            _kafka_local("stop")


# `make test` passes --no-skip: there a skipped test (a tool or package missing) is a failure, so a run that
# tested less than everything cannot look green. Run by hand without it, a skip stays a skip.
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-skip", action="store_true", help="report every skipped test as failed (make test)")
    parser.addoption("--reliability", action="store_true",
                     help="the fault tests at every kill point and the 1M-event soak (make reliability)")
    parser.addoption("--reliability-out", help="write the fault and soak figures to this JSON file")
    parser.addoption("--soak-messages", type=int, help="messages in the soak (default 1M with --reliability, else 20k)")


def _fail_skip(report: pytest.TestReport | pytest.CollectReport, config: pytest.Config) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and config.getoption("no_skip"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under --no-skip (make test needs everything): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    _fail_skip((yield).get_result(), item.config)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:  # a module-level skip or importorskip
    _fail_skip((yield).get_result(), collector.config)
