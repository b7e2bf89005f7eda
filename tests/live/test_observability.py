"""Metrics and account inspection against the real broker and a real Prometheus server."""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from livekit import DUNNING, REPO, eventually, free_port, get, items_from_lines, phases, schedule, \
    simulate_in_order, wait_assignment
from streams.runtime.processor import partition_for

pytestmark = pytest.mark.broker
PROMETHEUS = shutil.which("prometheus")
TOKEN = "s3cret-token"
SCENARIOS = ("01-stages-standard", "04-partial-payment-recall", "05-overpayment-credit", "09-promise-broken",
             "14-outage-grace", "15-dst-window", "18-payment-failures")


def workload():
    lines = []
    for folder in SCENARIOS:
        lines += (REPO / "tests" / "scenarios" / folder / "events.jsonl").read_bytes().splitlines()
    items = sorted(items_from_lines(lines), key=lambda item: item.event.occurred_at)
    until = items[-1].event.occurred_at + timedelta(days=10)
    return schedule(items, timedelta(hours=12), until)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            name, _, labels = name_labels.partition("{")
            samples[(name, tuple(sorted(part for part in labels.rstrip("}").split(",") if part)))] = float(value)
    return samples


def portfolio_from(samples_per_worker: list[dict]) -> dict[tuple[str, str], float]:
    """sum() across workers of the per-currency portfolio gauges."""
    total: dict[tuple[str, str], float] = {}
    for samples in samples_per_worker:
        for (name, labels), value in samples.items():
            if name.startswith("dunning_portfolio_"):
                total[(name, labels[0])] = total.get((name, labels[0]), 0.0) + value
    return {key: value for key, value in total.items() if value}


def expected_portfolio(simulation) -> dict[tuple[str, str], float]:
    total: dict[tuple[str, str], Decimal] = {}
    for state in simulation.accounts.values():
        for currency, position in simulation.engine.portfolio(state, simulation.platform,
                                                              simulation.platform.clock).items():
            label = f'currency="{currency}"'
            for name, value in (("accounts_open", 1), ("open_amount", position.open_amount),
                                ("accounts_overdue", 1 if position.overdue_amount else 0),
                                ("overdue_amount", position.overdue_amount)):
                key = (f"dunning_portfolio_{name}", label)
                total[key] = total.get(key, Decimal(0)) + value
    return {key: float(value) for key, value in total.items() if value}


def start_prometheus(tmp_path: Path, targets: list[int]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
                      "  - job_name: dunning-worker\n    static_configs:\n"
                      f"      - targets: {json.dumps([f'127.0.0.1:{t}' for t in targets])}\n")
    server = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                              stderr=(tmp_path / "prometheus.log").open("wb"))
    return server, port


def answers(port: int, promql: str) -> list[dict]:
    """The query's result, or nothing while the server is still starting (refused, or 503 until it is ready)."""
    try:
        status, body = get(f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(promql)}")
    except OSError:
        return []
    return json.loads(body)["data"]["result"] if status == 200 else []


def query(port: int, promql: str) -> list[dict]:
    status, body = get(f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert status == 200, body
    return json.loads(body)["data"]["result"]


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian package; make test installs it) not installed")
def test_two_workers_report_the_portfolio_and_prometheus_sums_it(namespace, workers, kcat, probe, publisher,
                                                                 tmp_path):
    base_env = namespace.env
    namespace.env = lambda state_dir, port: {**base_env(state_dir, port), "DUNNING_WEB_TOKEN": TOKEN}
    first, second = workers("a"), workers("b")
    shares = wait_assignment(probe, [first, second])
    ordered = workload()
    publisher.run(phases(ordered, namespace.topics), workers=[first, second])
    expected = expected_portfolio(simulate_in_order(ordered))
    assert expected

    # Each worker reports only its own partitions; together they are the whole portfolio.
    samples = [scrape(first.web_port), scrape(second.web_port)]
    assert portfolio_from(samples) == pytest.approx(expected)
    assert [s[("dunning_owned_partitions", ())] for s in samples] == [len(shares["a"]), len(shares["b"])]
    events = sum(v for s in samples for (name, _), v in s.items() if name == "dunning_events_total")
    assert events == sum(1 for item in ordered if not item.platform) + sum(
        namespace.partitions for item in ordered if item.platform)

    # A real Prometheus scrapes both and sums them the way the dashboard does.
    server, port = start_prometheus(tmp_path, [first.web_port, second.web_port])
    try:
        eventually(lambda: len(answers(port, 'up{job="dunning-worker"} == 1')) == 2, 60, "both targets up")
        eventually(lambda: answers(port, "sum by (currency) (dunning_portfolio_open_amount)"), 30, "a scrape")
        summed = {r["metric"]["currency"]: float(r["value"][1])
                  for r in query(port, "sum by (currency) (dunning_portfolio_open_amount)")}
        assert summed == pytest.approx({label.split('"')[1]: value for (name, label), value in expected.items()
                                        if name == "dunning_portfolio_open_amount"})
        checked = subprocess.run(["promtool", "check", "metrics"], input=get(f"http://127.0.0.1:{first.web_port}"
                                                                              "/metrics")[1], capture_output=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        server.terminate()
        server.wait(timeout=20)

    # Any worker answers for any account: the one that does not own it forwards the request.
    account = "K2"
    owner = first if partition_for(account, namespace.partitions) in shares["a"] else second
    other = second if owner is first else first
    status, _ = get(f"http://127.0.0.1:{other.web_port}/accounts/{account}")
    assert status == 401
    status, body = get(f"http://127.0.0.1:{other.web_port}/accounts/{account}", TOKEN)
    assert status == 200, body
    report = json.loads(body)
    assert report["served_by"].endswith(f":{owner.web_port}")
    assert [e["detail"]["rule_id"] for e in report["timeline"] if e["what"] == "notice.urgent_notice"][:2] == [
        "promise-broken", "demand-letter"]
    explained = subprocess.run([str(DUNNING), "explain", account,
                                "--url", f"http://127.0.0.1:{other.web_port}"], capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", "DUNNING_WEB_TOKEN": TOKEN})
    assert explained.returncode == 0, explained.stderr
    assert "rule promise-broken" in explained.stdout  # the open episode's notices, from the worker's state
    assert f"on topic {namespace.topics.audit}, key {account}" in explained.stdout  # and where the rest of the trail is

    # When one worker leaves, the other takes its partitions and reports the whole portfolio alone.
    second.terminate()
    wait_assignment(probe, [first])
    eventually(lambda: portfolio_from([scrape(first.web_port)]) == pytest.approx(expected), 60,
               "the remaining worker to report the whole portfolio")
