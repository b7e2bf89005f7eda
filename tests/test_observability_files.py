"""Static checks of the observability files: the Grafana dashboard and the Prometheus alert rules and their tests.

- every dashboard query is PromQL that `promtool check rules` accepts (each one becomes a recording rule in a
  temporary rules file, after Grafana's template variables are replaced by sample values);
- the dashboard reads only the metrics the worker exports (METRICS below, which is the worker's contract) or
  `up{job="dunning-worker"}`, uses every one of them, and refers only to the provisioned Prometheus datasource;
- the panels fit the 24-column grid without overlapping, with unique ids;
- alerts.yml has each alert in ALERTS in group `dunning`, with a severity and summary/description annotations,
  passes `promtool check rules`, and alerts_test.yml passes `promtool test rules` with, for each alert, a test
  where it fires and a test where it does not.

Each check is a function returning a list of problems: run on the repository (must be empty) and on copies broken
on purpose (must not be). promtool (Debian package `prometheus`) is needed for the PromQL and rule-file tests
(`make test` installs it; run by hand without it they skip, and the other checks run anyway).
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy/grafana/dashboards/dunning.json"
DATASOURCES = REPO / "deploy/grafana/provisioning/datasources"
ALERTS = REPO / "deploy/prometheus/alerts.yml"
ALERT_TESTS = REPO / "deploy/prometheus/alerts_test.yml"
# The bad-debt rules look back 30 days and more: tested in a file of their own, evaluated hourly (promtool takes
# minutes over 30 days at alerts_test.yml's 15 s).
BAD_DEBT_TESTS = REPO / "deploy/prometheus/bad_debt_test.yml"
COMPOSE = REPO / "docker-compose.yml"
WORKER_JOB = "dunning-worker"

# The worker's metrics and their labels: the contract between streams/runtime/metrics.py and these files.
LABELS: dict[str, set[str]] = {
    "dunning_portfolio_accounts_open": {"currency"},
    "dunning_portfolio_accounts_overdue": {"currency"},
    "dunning_portfolio_open_amount": {"currency"},
    "dunning_portfolio_overdue_amount": {"currency"},
    "dunning_aging_accounts": {"currency", "bucket"},
    "dunning_aging_amount": {"currency", "bucket"},
    "dunning_events_total": {"type"},
    "dunning_notices_total": {"kind", "channel", "rule_id"},
    "dunning_handoffs_total": {"to", "action"},
    "dunning_episodes_started_total": set(),
    "dunning_episodes_cured_total": set(),
    "dunning_arrangements_total": {"kind", "outcome"},
    "dunning_notices_deferred_total": {"reason"},
    "dunning_dead_letters_total": {"reason"},
    "dunning_processing_latency_seconds": set(),
    "dunning_consumer_lag": {"topic", "partition"},
    "dunning_last_tick_timestamp_seconds": set(),
    "dunning_owned_partitions": set(),
    "dunning_ruleset_info": {"version"},
    "dunning_crashes_total": {"what"},
    "dunning_billed_amount_total": {"currency"},
    "dunning_written_off_amount_total": {"currency", "reason"},
    "dunning_write_offs_total": {"currency", "reason"},
    "dunning_recovered_amount_total": {"currency"},
    "dunning_recoveries_total": {"currency"},
    "dunning_settled_amount_total": {"currency"},
    "dunning_contacts_total": {"variant", "rule_id"},
    "dunning_variant_cures_total": {"variant"},
    "dunning_rule_cures_total": {"variant", "rule_id"},
    "dunning_flagged_accounts": {"flag"},
    "dunning_restricted_accounts": {"action"},
    "dunning_reconciliation_differences_total": {"kind"},
    "dunning_deliveries_total": {"channel", "template", "outcome", "reason"},
    "dunning_rocksdb_memory_bytes": {"table", "kind"},
    "dunning_python_allocated_blocks": set(),
    # prometheus_client's process and garbage-collector collectors, on the worker's registry
    "process_virtual_memory_bytes": set(),
    "process_resident_memory_bytes": set(),
    "process_start_time_seconds": set(),
    "process_cpu_seconds_total": set(),
    "process_open_fds": set(),
    "process_max_fds": set(),
    "python_gc_objects_collected_total": {"generation"},
    "python_gc_objects_uncollectable_total": {"generation"},
    "python_gc_collections_total": {"generation"},
}
HISTOGRAMS = {"dunning_processing_latency_seconds"}
METRICS = set(LABELS)
SERIES_LABELS = {**LABELS, "up": set(),
                 **{f"{h}{suffix}": LABELS[h] | ({"le"} if suffix == "_bucket" else set())
                    for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}}
# Series the recording rules of alerts.yml make, and their labels; the dashboard and alerts may read them too.
RECORDED: dict[str, set[str]] = {
    **{name: {"currency"} for window in ("30d", "90d", "365d")
       for name in (f"dunning:billed_amount:increase{window}", f"dunning:written_off_amount:increase{window}",
                    f"dunning:bad_debt_rate:{window}")},
    "dunning:recovery_rate:365d": {"currency"},
    "dunning:offer_take_up:30d": {"rule_id"},
}
SERIES_LABELS.update(RECORDED)
SERIES = set(SERIES_LABELS) - HISTOGRAMS
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series

ALERT_NAMES = [
    "DunningWorkerDown", "DunningOverdueRateJump", "DunningDeadLettersGrowing", "DunningConsumerLagGrowing",
    "DunningTicksStopped", "DunningWorkerCrashed", "DunningBadDebtRateHigh",
]
SEVERITIES = {"critical", "warning"}

# Grafana's built-in variables, and a sample value for each, so the query is PromQL promtool can parse.
BUILTIN_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
GRAFANA_BUILTIN_DATASOURCE = {"type": "grafana", "uid": "-- Grafana --"}


# --------------------------------------------------------------------------------------------------------------------
# reading


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_tests() -> dict[str, Any]:
    """alerts_test.yml with bad_debt_test.yml's tests added (both load alerts.yml: promtool fails otherwise)."""
    merged = load_yaml(ALERT_TESTS)
    merged["tests"] = merged.get("tests", []) + load_yaml(BAD_DEBT_TESTS)["tests"]
    return merged


def provisioned_prometheus_uids(folder: Path = DATASOURCES) -> set[str]:
    uids = set()
    for path in sorted(folder.glob("*.y*ml")):
        for source in (load_yaml(path) or {}).get("datasources") or []:
            if source.get("type") == "prometheus" and source.get("uid"):
                uids.add(source["uid"])
    return uids


def all_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Top-level panels and those inside collapsed rows."""
    for panel in board.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) for every panel target."""
    result = []
    for panel in all_panels(board):
        for target in panel.get("targets") or []:
            result.append((f"panel {panel.get('id')} {panel.get('title')!r} target {target.get('refId')}",
                           target.get("expr") or ""))
    return result


def variable_samples(board: dict[str, Any]) -> dict[str, str]:
    """Template variable -> a sample value to put in its place: the first custom option, else a plain word."""
    samples = dict(BUILTIN_VARIABLES)
    for variable in (board.get("templating") or {}).get("list") or []:
        options = [option.get("value") for option in variable.get("options") or [] if option.get("value")]
        samples[variable["name"]] = str(options[0]) if options else "CNY"
    return samples


def substitute(expr: str, samples: dict[str, str]) -> tuple[str, list[str]]:
    """The expression with variables replaced, and the names of variables that are not defined."""
    unknown: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in samples:
            unknown.append(name)
            return match.group(0)
        return samples[name]

    return VARIABLE.sub(replace, expr), unknown


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'" r"|`[^`]*`")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, keywords, label names or durations)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)       # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)      # range and subquery durations
    text = _GROUPING.sub(" ", text)              # by (...), on (...), group_left (...)
    text = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def label_names(expr: str, legend: str = "") -> set[str]:
    """Label names an expression groups or matches by, and those its legend format shows."""
    text = _STRING.sub('""', expr)
    names = set()
    for clause in _GROUPING.findall(text):
        names |= {name.strip() for name in clause[clause.index("(") + 1:-1].split(",") if name.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", text):
        names |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    names |= set(re.findall(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}", legend))
    return names


def label_problems(expr: str, legend: str = "") -> list[str]:
    """Labels that none of the selected metrics has (a typo such as `by (target)` gives an empty or merged
    series instead of an error)."""
    known = set(TARGET_LABELS)
    for name in metric_names(expr):
        known |= SERIES_LABELS.get(name, set())
    unknown = sorted(label_names(expr, legend) - known)
    return [f"{expr!r}: labels {unknown} are not on {sorted(metric_names(expr))}"] if unknown else []


def up_selectors_problems(expr: str) -> list[str]:
    """`up` is shared by every scrape job: it must be narrowed to the worker's."""
    text = _STRING.sub(lambda m: "_" * len(m.group(0)), expr)
    problems = []
    for match in re.finditer(r"(?<![\w:])up\s*(\{[^}]*\})?", text):
        matchers = expr[match.start(1):match.end(1)] if match.group(1) else ""
        if not re.search(rf'\bjob\s*=\s*"{WORKER_JOB}"', matchers):
            problems.append(f"{expr!r}: up without job=\"{WORKER_JOB}\"")
    return problems


# --------------------------------------------------------------------------------------------------------------------
# checks (each returns a list of problems)


def check_dashboard(board: dict[str, Any], prometheus_uids: set[str]) -> list[str]:
    problems = []
    if board.get("uid") != "dunning-stream":
        problems.append(f"uid is {board.get('uid')!r}, want 'dunning-stream'")
    if not isinstance(board.get("schemaVersion"), int) or board["schemaVersion"] < 36:
        problems.append(f"schemaVersion {board.get('schemaVersion')!r}: want a Grafana 10/11 dashboard (>= 36)")

    # datasources: every reference, wherever it is, is the provisioned Prometheus (or Grafana's own annotations)
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource" and value != GRAFANA_BUILTIN_DATASOURCE:
                    if not isinstance(value, dict) or value.get("type") != "prometheus" \
                            or value.get("uid") not in prometheus_uids:
                        problems.append(f"{where}: datasource {value!r} is not the provisioned Prometheus "
                                        f"(uid {sorted(prometheus_uids)})")
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]")

    walk(board, "dashboard")

    # panels: ids, queries, datasource, grid
    ids: set[Any] = set()
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels(board):
        title = panel.get("title")
        if panel.get("id") in ids or not isinstance(panel.get("id"), int):
            problems.append(f"panel {title!r}: id {panel.get('id')!r} missing or repeated")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos") or {}
        x, y, w, h = (grid.get(key) for key in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)) or x < 0 or y < 0 or w < 1 or h < 1 or x + w > 24:
            problems.append(f"panel {title!r}: gridPos {grid} does not fit the 24-column grid")
        elif panel.get("type") != "row" or not panel.get("collapsed"):
            for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
                if cell in cells:
                    problems.append(f"panel {title!r} overlaps {cells[cell]!r}")
                    break
                cells[cell] = title
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"panel {title!r} has no targets")
        if not isinstance(panel.get("datasource"), dict):
            problems.append(f"panel {title!r} has no datasource")
        refs = [target.get("refId") for target in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"panel {title!r}: refIds {refs} missing or repeated")

    # queries: defined variables, known metrics only, `up` for the worker's job only
    samples = variable_samples(board)
    used: set[str] = set()
    for where, expr in queries(board):
        if not expr.strip():
            problems.append(f"{where}: no expression")
            continue
        _, unknown = substitute(expr, samples)
        if unknown:
            problems.append(f"{where}: undefined variables {unknown}")
        names = metric_names(expr)
        if not names:
            problems.append(f"{where}: {expr!r} selects no metric")
        for name in sorted(names - SERIES):
            problems.append(f"{where}: {name!r} is not a metric the worker exports")
        problems += [f"{where}: {problem}" for problem in up_selectors_problems(expr)]
        used |= names
    for panel in all_panels(board):
        for target in panel.get("targets") or []:
            where = f"panel {panel.get('id')} {panel.get('title')!r} target {target.get('refId')}"
            problems += [f"{where}: {problem}" for problem in label_problems(
                substitute(target.get("expr") or "", samples)[0], target.get("legendFormat") or "")]
    for variable in (board.get("templating") or {}).get("list") or []:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = re.fullmatch(r"\s*label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*(\w+)\s*\)\s*", text)
        if variable.get("type") == "query" and not (match and match.group(1) in SERIES):
            problems.append(f"variable {variable.get('name')!r}: query {text!r} is not label_values(<known metric>, "
                            f"<label>)")
    series_used = {name.removesuffix(suffix) for name in used for suffix in ("_bucket", "_sum", "_count")
                   if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS} | used
    for name in sorted(METRICS - series_used):
        problems.append(f"no panel shows {name}")
    return problems


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (Debian package prometheus; make test installs it)")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def check_promql(expressions: list[tuple[str, str]], samples: dict[str, str]) -> list[str]:
    """Expressions promtool rejects: all go in one temporary rules file; on failure each is tried alone to say
    which."""
    def run(items: list[tuple[str, str]]) -> subprocess.CompletedProcess[str]:
        rules = [{"record": f"dashboard:query_{index}:check", "expr": substitute(expr, samples)[0]}
                 for index, (_, expr) in enumerate(items)]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "dashboard_rules.yml"
            path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False))
            return promtool("check", "rules", str(path))

    if not expressions:
        return ["no expressions"]
    if run(expressions).returncode == 0:
        return []
    problems = []
    for where, expr in expressions:
        result = run([(where, expr)])
        if result.returncode != 0:
            detail = " ".join((result.stdout + result.stderr).split())
            problems.append(f"{where}: {expr!r}: {detail}")
    return problems or ["promtool rejected the expressions together but none alone"]


def tick_interval() -> int:
    worker = (load_yaml(COMPOSE).get("services") or {}).get("worker") or {}
    return int(float((worker.get("environment") or {}).get("DUNNING_TICK_INTERVAL", 3600)))


def seconds(duration: str) -> int:
    """A PromQL duration such as 2h, 90m or 1h30m, in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return int(sum(int(n) * units[u] for n, u in parts))


def check_alerts(rules_doc: dict[str, Any], tests_doc: dict[str, Any], tick_seconds: int) -> list[str]:
    problems = []
    groups = [group for group in (rules_doc or {}).get("groups") or [] if group.get("name") == "dunning"]
    if len(groups) != 1:
        return [f"want one rule group 'dunning', found {len(groups)}"]
    rules = {rule.get("alert"): rule for rule in groups[0].get("rules") or [] if rule.get("alert")}
    for name in ALERT_NAMES:
        rule = rules.get(name)
        if rule is None:
            problems.append(f"alert {name} is missing")
            continue
        if (rule.get("labels") or {}).get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity {(rule.get('labels') or {}).get('severity')!r} not in {SEVERITIES}")
        for key in ("summary", "description"):
            if not str((rule.get("annotations") or {}).get(key) or "").strip():
                problems.append(f"{name}: no {key} annotation")
        if not rule.get("for"):
            problems.append(f"{name}: no `for` duration")
        names = metric_names(str(rule.get("expr") or ""))
        if not names or names - SERIES:
            problems.append(f"{name}: expression selects {sorted(names)}, want only known metrics")
        problems += [f"{name}: {problem}" for problem in up_selectors_problems(str(rule.get("expr") or ""))]
        templates = " ".join(str(value) for value in (rule.get("annotations") or {}).values())
        legend = " ".join("{{%s}}" % label for label in re.findall(r"\$labels\.(\w+)", templates))
        problems += [f"{name}: {problem}" for problem in label_problems(str(rule.get("expr") or ""), legend)]

    ticks = str((rules.get("DunningTicksStopped") or {}).get("expr") or "")
    thresholds = [int(n) for n in re.findall(
        r"time\(\)\s*-\s*max\(dunning_last_tick_timestamp_seconds[^)]*\)\s*>\s*(\d+)", ticks)]
    windows = [seconds(window) for window in re.findall(r"\[(\w+):\w*\]", ticks)]
    if "DunningTicksStopped" in rules and (not thresholds or set(thresholds + windows) != {2 * tick_seconds}):
        problems.append(f"DunningTicksStopped: thresholds {thresholds} s and windows {windows} s, want "
                        f"time() - max(dunning_last_tick_timestamp_seconds ...) > {2 * tick_seconds} "
                        f"(two tick intervals of {tick_seconds} s)")

    # unit tests: for each alert, a test where it fires and a test where it never does
    if "alerts.yml" not in [Path(str(path)).name for path in (tests_doc or {}).get("rule_files") or []]:
        problems.append("alerts_test.yml does not load alerts.yml")
    fires: set[str] = set()
    quiet: set[str] = set()
    for test in (tests_doc or {}).get("tests") or []:
        expected: dict[str, list[bool]] = {}
        for case in test.get("alert_rule_test") or []:
            expected.setdefault(case.get("alertname"), []).append(bool(case.get("exp_alerts")))
        for name, firing in expected.items():
            (fires if any(firing) else quiet).add(name)
    for name in ALERT_NAMES:
        if name not in fires:
            problems.append(f"alerts_test.yml: no test where {name} fires")
        if name not in quiet:
            problems.append(f"alerts_test.yml: no test where {name} stays quiet")
    return problems


# --------------------------------------------------------------------------------------------------------------------
# the repository passes


def test_dashboard_checks_pass() -> None:
    uids = provisioned_prometheus_uids()
    assert uids, "no Prometheus datasource provisioned"
    assert check_dashboard(load_dashboard(), uids) == []


def test_dashboard_datasource_is_the_provisioned_one() -> None:
    board = load_dashboard()
    uids = {panel["datasource"]["uid"] for panel in all_panels(board) if panel.get("type") != "row"}
    assert uids == provisioned_prometheus_uids()


def test_dashboard_queries_pass_promtool() -> None:
    board = load_dashboard()
    assert check_promql(queries(board), variable_samples(board)) == []


def test_alert_checks_pass() -> None:
    assert check_alerts(load_yaml(ALERTS), alert_tests(), tick_interval()) == []


def test_the_recording_rules_are_the_known_ones_and_read_only_worker_metrics() -> None:
    recorded = {rule["record"]: rule["expr"] for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]
                if "record" in rule}
    assert set(recorded) == set(RECORDED)
    assert {name: sorted(metric_names(expr) - SERIES) for name, expr in recorded.items()
            if metric_names(expr) - SERIES} == {}
    assert [f"{name}: {problem}" for name, expr in recorded.items() for problem in label_problems(expr)] == []


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS.relative_to(REPO)), str(BAD_DEBT_TESTS.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------------------------------
# the checks notice breakage


def test_metric_contract_matches_the_worker() -> None:
    """LABELS above is what streams/runtime/metrics.py exports: the same names, and the same labels where visible."""
    pytest.importorskip("prometheus_client", reason="the runtime extra is not installed")
    from streams.runtime.metrics import WorkerMetrics

    worker = WorkerMetrics("v-test", lambda: {"CNY": {}}, marks=lambda: {"restriction:freeze_credit": 1},
                           stores=lambda: {"accounts": []})
    exported: dict[str, set[str]] = {}
    suffix = {"counter": "_total", "info": "_info"}
    for family in worker.registry.collect():
        name = family.name + suffix.get(family.type, "")
        exported[name] = {label for sample in family.samples for label in sample.labels} - {"le"}
    for metric in vars(worker).values():
        if hasattr(metric, "_labelnames") and hasattr(metric, "_name"):
            kind = getattr(metric, "_type", "")
            exported[metric._name + suffix.get(kind, "")] |= set(metric._labelnames)
    assert set(exported) == METRICS
    assert {name: labels for name, labels in exported.items() if labels != LABELS[name]} == {}


def test_label_names() -> None:
    assert label_names('sum by (kind, channel) (rate(dunning_notices_total{rule_id!="x", kind=~"a|b"}[1h]))',
                       "{{kind}} {{ channel }}") == {"kind", "channel", "rule_id"}
    assert label_problems("sum by (target) (dunning_handoffs_total)") != []
    assert label_problems("sum by (to, action, instance) (dunning_handoffs_total)") == []
    assert label_problems("histogram_quantile(0.5, sum by (le) (rate(dunning_processing_latency_seconds_bucket[1h])))"
                          ) == []
    assert label_problems("sum(dunning_consumer_lag)", "{{partition}}") == []
    assert label_problems("sum(dunning_owned_partitions)", "{{partition}}") != []


def test_metric_names() -> None:
    assert metric_names('sum by (currency) (dunning_portfolio_accounts_overdue{currency="CNY"} offset 1h)'
                        ' / on (currency) group_left (x) sum by (currency) (dunning_portfolio_accounts_open)') == {
        "dunning_portfolio_accounts_overdue", "dunning_portfolio_accounts_open"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(dunning_processing_latency_seconds_bucket[1h])))"
                        " * 1e3") == {"dunning_processing_latency_seconds_bucket"}
    assert metric_names('time() - max(dunning_last_tick_timestamp_seconds) > bool 7200 and up{job="x"}') == {
        "dunning_last_tick_timestamp_seconds", "up"}
    assert metric_names('count(dunning_ruleset_info{version=~"v1|by"}) unless node_load1') == {
        "dunning_ruleset_info", "node_load1"}
    assert metric_names("max_over_time(sum(dunning_consumer_lag)[10m:1m])") == {"dunning_consumer_lag"}


def panel_titled(board: dict[str, Any], title: str) -> dict[str, Any]:
    return next(panel for panel in all_panels(board) if panel.get("title") == title)


def set_expr(title: str, expr: str) -> Callable[[dict[str, Any]], None]:
    def apply(board: dict[str, Any]) -> None:
        panel_titled(board, title)["targets"][0]["expr"] = expr
    return apply


def remove_panel(title: str) -> Callable[[dict[str, Any]], None]:
    def apply(board: dict[str, Any]) -> None:
        board["panels"] = [panel for panel in board["panels"] if panel.get("title") != title]
    return apply


def set_key(title: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(board: dict[str, Any]) -> None:
        panel_titled(board, title)[key] = value
    return apply


def set_target_datasource(title: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(board: dict[str, Any]) -> None:
        panel_titled(board, title)["targets"][0]["datasource"] = value
    return apply


DASHBOARD_MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("unknown metric", set_expr("Consumer lag", "sum(kafka_consumergroup_lag)")),
    ("misspelt metric", set_expr("Notices by kind and channel",
                                 "sum by (kind) (rate(dunning_notice_total[1h]))")),
    ("per-worker ratio metric", set_expr("Overdue rate by currency", "avg by (currency) (dunning_overdue_rate)")),
    ("up of any job", set_expr("Workers up", "sum(up)")),
    ("unknown label", set_expr("Handoffs by target and action",
                               "sum by (target, action) (rate(dunning_handoffs_total[1h])) * 3600")),
    ("unknown legend label", set_key("Overdue rate by currency", "targets", [
        {"refId": "A", "datasource": {"type": "prometheus", "uid": "prometheus"}, "legendFormat": "{{curency}}",
         "expr": "sum by (currency) (dunning_portfolio_accounts_overdue)"}])),
    ("undefined variable", set_expr("Open vs overdue amount ($currency)",
                                    'sum(dunning_portfolio_open_amount{currency="$curr"})')),
    ("no expression", set_expr("Last tick age", "")),
    ("metric no longer shown", remove_panel("Deferred notices by reason")),
    ("panel datasource", set_key("Processing latency", "datasource", {"type": "prometheus", "uid": "prom"})),
    ("target datasource", set_target_datasource("Handoffs by target and action",
                                                {"type": "loki", "uid": "prometheus"})),
    ("datasource by name", set_target_datasource("Handoffs by target and action", "Prometheus")),
    ("variable datasource", lambda b: b["templating"]["list"][0].__setitem__("datasource", {"uid": "x"})),
    ("variable query", lambda b: b["templating"]["list"][0]["query"].__setitem__(
        "query", "label_values(dunning_currency_info, currency)")),
    ("uid", lambda b: b.__setitem__("uid", "dunning")),
    ("repeated id", set_key("Ruleset version", "id", 1)),
    ("overlap", set_key("Ruleset version", "gridPos", {"h": 8, "w": 12, "x": 6, "y": 1})),
    ("too wide", set_key("Worker up", "gridPos", {"h": 8, "w": 13, "x": 12, "y": 59})),
]


@pytest.mark.parametrize("mutate", [m for _, m in DASHBOARD_MUTATIONS], ids=[n for n, _ in DASHBOARD_MUTATIONS])
def test_dashboard_check_notices_breakage(mutate: Callable[[dict[str, Any]], None]) -> None:
    board = copy.deepcopy(load_dashboard())
    mutate(board)
    assert check_dashboard(board, provisioned_prometheus_uids())


@pytest.mark.parametrize("expr", [
    "sum by (currency) (dunning_portfolio_accounts_overdue",                      # unbalanced
    "rate(dunning_notices_total[1 hour])",                                        # bad duration
    "histogram_quantile(0.5, sum by (le) (rate(dunning_processing_latency_seconds_bucket[$__rate_interval]))) +",
    "sum(dunning_consumer_lag) by by (topic)",
])
def test_promql_check_notices_breakage(expr: str) -> None:
    board = load_dashboard()
    good = queries(board)[:3]  # a few good ones around it: each is re-run alone when the file fails
    problems = check_promql(good + [("broken", expr)], variable_samples(board))
    assert len(problems) == 1 and problems[0].startswith("broken:"), problems


def drop_alert(name: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def apply(rules: dict[str, Any], tests: dict[str, Any]) -> None:
        group = rules["groups"][0]
        group["rules"] = [rule for rule in group["rules"] if rule.get("alert") != name]
    return apply


def alert(name: str, change: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def apply(rules: dict[str, Any], tests: dict[str, Any]) -> None:
        change(next(rule for rule in rules["groups"][0]["rules"] if rule.get("alert") == name))
    return apply


def drop_tests(name: str, firing: bool) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def apply(rules: dict[str, Any], tests: dict[str, Any]) -> None:
        def keep(test: dict[str, Any]) -> bool:
            cases = [case for case in test.get("alert_rule_test") or [] if case.get("alertname") == name]
            return not cases or any(bool(case.get("exp_alerts")) for case in cases) != firing
        tests["tests"] = [test for test in tests["tests"] if keep(test)]
    return apply


ALERT_MUTATIONS: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], None]]] = [
    *[(f"{name} missing", drop_alert(name)) for name in ALERT_NAMES],
    ("group renamed", lambda rules, tests: rules["groups"][0].__setitem__("name", "dunning-worker")),
    ("no severity", alert("DunningOverdueRateJump", lambda rule: rule["labels"].pop("severity"))),
    ("odd severity", alert("DunningConsumerLagGrowing", lambda rule: rule["labels"].__setitem__("severity", "page"))),
    ("no summary", alert("DunningDeadLettersGrowing", lambda rule: rule["annotations"].pop("summary"))),
    ("no description", alert("DunningTicksStopped", lambda rule: rule["annotations"].pop("description"))),
    ("no for", alert("DunningTicksStopped", lambda rule: rule.pop("for"))),
    ("one tick interval", alert("DunningTicksStopped", lambda rule: rule.__setitem__(
        "expr", "time() - max(dunning_last_tick_timestamp_seconds) > 3600"))),
    ("zero-clause window", alert("DunningTicksStopped", lambda rule: rule.__setitem__(
        "expr", rule["expr"].replace("[2h:5m]", "[1h:5m]")))),
    ("unknown metric", alert("DunningConsumerLagGrowing", lambda rule: rule.__setitem__(
        "expr", "sum(kafka_consumergroup_lag) > 5000"))),
    ("up of any job", alert("DunningWorkerDown", lambda rule: rule.__setitem__("expr", "up == 0"))),
    ("annotation label", alert("DunningDeadLettersGrowing", lambda rule: rule["annotations"].__setitem__(
        "summary", "dead letters on {{ $labels.topic }}"))),
    ("no firing test", drop_tests("DunningOverdueRateJump", firing=True)),
    ("no quiet test", drop_tests("DunningConsumerLagGrowing", firing=False)),
    ("rule file not loaded", lambda rules, tests: tests.__setitem__("rule_files", ["other.yml"])),
]


@pytest.mark.parametrize("mutate", [m for _, m in ALERT_MUTATIONS], ids=[n for n, _ in ALERT_MUTATIONS])
def test_alert_check_notices_breakage(mutate: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    rules, tests = load_yaml(ALERTS), alert_tests()
    mutate(rules, tests)
    assert check_alerts(rules, tests, tick_interval())


@pytest.mark.parametrize(("old", "new"), [
    ("> 0.05", "> 0.07"),                                                    # the 5-point jump
    ("for: 15m", "for: 5m"),
    ("\n          or\n", "\n          and\n"),                              # the first dead letter of a reason
    ("sum(dunning_consumer_lag) > sum(dunning_consumer_lag offset 10m)", "sum(dunning_consumer_lag) > 0"),
    ("> 7200", "> 9000"),
    ("max(dunning_last_tick_timestamp_seconds > 0)", "min(dunning_last_tick_timestamp_seconds > 0)"),
    ("max(dunning_last_tick_timestamp_seconds > 0)", "max(dunning_last_tick_timestamp_seconds)"),  # 0 = no tick yet
    (">= 24", ">= 1"),                                                       # zeros for two hours, not five minutes
    ("increase(dunning_crashes_total[15m])) > 0", "increase(dunning_crashes_total[15m])) > 1"),  # one crash fires
    ("increase(dunning_crashes_total[15m])", "increase(dunning_crashes_total[1h])"),  # a crash is news for 15 minutes
], ids=["jump-threshold", "jump-for", "first-dead-letter", "lag-not-growing", "tick-threshold", "tick-min",
        "tick-zero", "tick-zero-window", "crash-one", "crash-window"])
def test_alert_unit_tests_notice_breakage(tmp_path: Path, old: str, new: str) -> None:
    for path in (ALERTS, ALERT_TESTS):
        shutil.copy2(path, tmp_path / path.name)
    text = (tmp_path / ALERTS.name).read_text()  # the unmodified files pass: test_promtool_test_rules
    assert old in text, f"mutation target {old!r} not in alerts.yml"
    (tmp_path / ALERTS.name).write_text(text.replace(old, new))
    assert promtool("check", "rules", ALERTS.name, cwd=tmp_path).returncode == 0, "the mutation should stay valid"
    assert promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path).returncode != 0


# --------------------------------------------------------------------------------------------------------------------
# tools/render_dashboard.py (docs/dashboard.png)


def load_render_tool() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_dashboard", REPO / "tools" / "render_dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_render_tool_samples_the_simulators_run(tmp_path: Path) -> None:
    from collections import Counter
    from datetime import datetime, timedelta

    from rules.engine import AGING_BUCKETS, Engine
    from rules.loader import load_ruleset
    from rules.simulator import Simulation
    from schemas.events import parse_event
    from streams.generators.generate import generate, to_jsonl_bytes

    tool = load_render_tool()
    start, days, every = datetime.fromisoformat("2026-11-01T00:00:00+08:00"), 40, timedelta(hours=3)
    rules = REPO / "rules" / "default.yaml"
    simulation, samples = tool.simulate_daily(40, days, start, 3, rules, every)

    # fed one by one, the run is the simulator's own
    oracle = Simulation(Engine(load_ruleset(rules)))
    oracle.run([parse_event(line) for line in to_jsonl_bytes(generate(40, days, start, 3))], every,
               start + timedelta(days=days))
    assert [notice.notice_id for notice in simulation.notices] == [notice.notice_id for notice in oracle.notices]
    assert oracle.notices, "the sample run should produce notices"

    assert [s.at for s in samples] == [start + timedelta(days=d) for d in range(1, days + 1)]
    assert samples[-1].notices == Counter(notice.kind for notice in oracle.notices)
    assert sum(samples[-1].handoffs.values()) == samples[-1].notices["handoff"]
    for s in samples:
        for currency, open_ in s.accounts_open.items():
            assert 0 <= s.accounts_overdue[currency] <= open_
            assert sum(s.aging_accounts[(currency, b)] for b in AGING_BUCKETS) == open_
            assert s.aging_accounts[(currency, "current")] == open_ - s.accounts_overdue[currency]
    assert any(s.accounts_overdue["CNY"] for s in samples)
    assert all(a.notices[k] <= b.notices[k] for a, b in zip(samples, samples[1:]) for k in a.notices)
    # the bad-debt figures: billed as invoiced, written off and settled as the decisions say
    issued = [event for event in map(parse_event, to_jsonl_bytes(generate(40, days, start, 3)))
              if event.type == "invoice.issued"]
    assert samples[-1].billed == Counter({c: sum(e.amount for e in issued if e.currency == c)
                                          for c in {e.currency for e in issued}})
    written_off, settled = Counter(), Counter()
    for notice in oracle.notices:
        written_off.update({(c, notice.reason): a for c, a in (notice.written_off or {}).items()})
        settled.update(notice.paid if notice.kind == "settlement" else {})
    assert written_off and samples[-1].written_off == written_off and samples[-1].settled == settled
    rates = [tool.bad_debt_rate(samples, i, "CNY") for i in range(len(samples))]
    assert all(rate is None or 0 <= rate < 1 for rate in rates) and any(rates)

    pytest.importorskip("matplotlib")
    out = tmp_path / "dashboard.png"
    tool.render(samples, out, "test", "CNY")
    header = out.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")) == (1600, 1500)
