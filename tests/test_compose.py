"""Static checks of the container deployment: docker-compose.yml, Dockerfile, .dockerignore and deploy/.

No Docker engine is needed. Each check is a function of a project root that returns a list of problems, run once
on the repository (must be empty) and once per mutation on a copy of the files broken on purpose (must not be).
promtool (Debian package `prometheus`, which `make test` installs) and the Compose JSON schema (committed in
tests/compose-spec) are used too.
"""
from __future__ import annotations

import base64
import binascii
import fnmatch
import glob
import json
import re
import shlex
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from test_observability_files import promtool  # the alert files' own tests live there

from streams.runtime.settings import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = "docker-compose.yml"
SERVICES = {"kafka", "worker", "prometheus", "grafana"}
WORKER_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka:19092",
    "DUNNING_RULES": "/etc/dunning/rules.yaml",
    "DUNNING_STATE_DIR": "/var/lib/dunning",
    "DUNNING_WEB_HOST": "0.0.0.0",
    "DUNNING_WEB_PORT": "6066",
    "DUNNING_PARTITIONS": "6",
    "DUNNING_TICK_INTERVAL": "3600",
}
WORKER_JOB = "dunning-worker"
DOCKERIGNORED = [".venv", ".cache", "var", ".git", ".pytest_cache", ".hypothesis"]
# an exact release: 3.9.1, v2.53.5, 11.6.3, 3.11.13-slim-bookworm (not 3.9, 11, latest)
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+([-.+_][A-Za-z0-9._-]+)?$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


# --------------------------------------------------------------------------------------------------------------------
# reading the project


@dataclass(frozen=True)
class Mount:
    kind: str  # bind | volume
    source: str | None
    target: str
    read_only: bool


@dataclass(frozen=True)
class Port:
    host_ip: str | None
    published: str | None
    target: str


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root

    @cached_property
    def compose(self) -> dict[str, Any]:
        data = yaml.safe_load((self.root / COMPOSE).read_text())
        assert isinstance(data, dict), f"{COMPOSE} is not a mapping"
        return data

    def service(self, name: str) -> dict[str, Any]:
        return (self.compose.get("services") or {}).get(name) or {}

    def env(self, name: str) -> dict[str, str]:
        raw = self.service(name).get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
        return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()}

    def mounts(self, name: str) -> list[Mount]:
        result = []
        for item in self.service(name).get("volumes") or []:
            if isinstance(item, dict):
                result.append(Mount(item.get("type", "volume"), item.get("source"), item["target"],
                                    bool(item.get("read_only"))))
                continue
            parts = str(item).split(":")
            if len(parts) == 1:
                result.append(Mount("volume", None, parts[0], False))
                continue
            source, target = parts[0], parts[1]
            options = parts[2].split(",") if len(parts) > 2 else []
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            result.append(Mount(kind, source, target, "ro" in options))
        return result

    def ports(self, name: str) -> list[Port]:
        result = []
        for item in self.service(name).get("ports") or []:
            if isinstance(item, dict):
                published = item.get("published")
                result.append(Port(item.get("host_ip"), None if published is None else str(published),
                                   str(item["target"])))
                continue
            text = str(item).split("/")[0]
            host_ip = None
            if text.startswith("["):
                host_ip, _, text = text[1:].partition("]")
                text = text.lstrip(":")
                parts = text.split(":")
                published, target = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
            else:
                parts = text.split(":")
                if len(parts) == 3:
                    host_ip, published, target = parts
                elif len(parts) == 2:
                    published, target = parts
                else:
                    published, target = None, parts[0]
            result.append(Port(host_ip, published or None, target))
        return result

    def host_path(self, name: str, container_path: str) -> Path | None:
        """The repository path bind-mounted at container_path in the service (itself or inside a mounted folder)."""
        want = PurePosixPath(container_path)
        best: tuple[int, Path] | None = None
        for mount in self.mounts(name):
            target = PurePosixPath(mount.target)
            if mount.kind != "bind" or not (want == target or target in want.parents):
                continue
            path = (self.root / mount.source).joinpath(*want.relative_to(target).parts)
            if best is None or len(target.parts) > best[0]:
                best = (len(target.parts), path)
        return None if best is None else best[1]

    def read_yaml(self, path: Path) -> Any:
        return yaml.safe_load(path.read_text())

    @cached_property
    def pyproject(self) -> dict[str, Any]:
        return tomllib.loads((self.root / "pyproject.toml").read_text())

    @cached_property
    def dockerfile(self) -> list[tuple[str, str]]:
        return parse_dockerfile((self.root / dockerfile_path(self)).read_text())

    @cached_property
    def dockerignore(self) -> list[str]:
        path = self.root / ".dockerignore"
        if not path.exists():
            return []
        lines = (line.strip() for line in path.read_text().splitlines())
        return [line for line in lines if line and not line.startswith("#")]


def dockerfile_path(project: Project) -> str:
    build = project.service("worker").get("build")
    if isinstance(build, dict):
        context = build.get("context", ".")
        return str(PurePosixPath(context) / build.get("dockerfile", "Dockerfile"))
    return str(PurePosixPath(build or ".") / "Dockerfile")


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def pinned_image_problem(ref: str) -> str | None:
    """None if the image reference names one exact release (tag like 3.9.1, or a digest)."""
    if DIGEST.search(ref):
        return None
    name = ref.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"image {ref!r} has no tag (means latest)"
    tag = name.rsplit(":", 1)[1]
    if not EXACT_TAG.match(tag):
        return f"image {ref!r}: tag {tag!r} is not an exact release (want e.g. 1.2.3, or a @sha256 digest)"
    return None


def parse_listeners(text: str) -> dict[str, tuple[str, str]]:
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, port)
    return result


def kafka_hostnames(project: Project) -> set[str]:
    kafka = project.service("kafka")
    return {"kafka"} | {kafka[key] for key in ("hostname", "container_name") if kafka.get(key)}


def dockerignored(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore excludes path (relative to the context) or a folder holding it.

    Patterns match from the context root (`var` is ./var only); `**/` also matches zero folders; the last matching
    pattern wins and `!` re-includes. Close enough to Docker's rules for the patterns used here.
    """
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        options = [pattern] + ([pattern[3:]] if pattern.startswith("**/") else [])
        if any(fnmatch.fnmatchcase(candidate, option) for candidate in candidates for option in options):
            excluded = not negate
    return excluded


# --------------------------------------------------------------------------------------------------------------------
# checks: each returns the problems it finds (empty when all is well)


def check_services(p: Project) -> list[str]:
    have = set(p.compose.get("services") or {})
    return [f"service {name!r} is missing" for name in sorted(SERVICES - have)]


def check_images(p: Project) -> list[str]:
    problems = []
    for name, service in (p.compose.get("services") or {}).items():
        if "image" in service:
            problem = pinned_image_problem(str(service["image"]))
            if problem:
                problems.append(f"{name}: {problem}")
        elif "build" not in service:
            problems.append(f"{name}: neither image nor build")
    return problems


def check_worker_build(p: Project) -> list[str]:
    build = p.service("worker").get("build")
    if not build:
        return ["worker has no build:"]
    context = build.get("context", ".") if isinstance(build, dict) else build
    problems = []
    if not (p.root / context).is_dir():
        problems.append(f"worker build context {context!r} is not a folder")
    if not (p.root / dockerfile_path(p)).is_file():
        problems.append(f"worker Dockerfile {dockerfile_path(p)!r} does not exist")
    return problems


def check_mounts(p: Project) -> list[str]:
    problems = []
    declared = set(p.compose.get("volumes") or {})
    root = p.root.resolve()
    for name in p.compose.get("services") or {}:
        for mount in p.mounts(name):
            if mount.kind == "volume":
                if mount.source and mount.source not in declared:
                    problems.append(f"{name}: named volume {mount.source!r} is not declared under volumes:")
                continue
            source = str(mount.source)
            if source.startswith(("/", "~")):
                problems.append(f"{name}: bind mount {source!r} is outside the repository")
                continue
            path = (root / source).resolve()
            if root != path and root not in path.parents:
                problems.append(f"{name}: bind mount {source!r} is outside the repository")
            elif not path.exists():
                problems.append(f"{name}: bind mount {source!r} does not exist")
    return problems


def check_ports(p: Project) -> list[str]:
    problems = []
    for name in p.compose.get("services") or {}:
        for port in p.ports(name):
            if port.host_ip != "127.0.0.1":
                problems.append(f"{name}: port {port.target} is published on {port.host_ip or 'all interfaces'}, "
                                "not 127.0.0.1")
    return problems


def check_kafka(p: Project) -> list[str]:
    env, problems = p.env("kafka"), []
    listeners = parse_listeners(env.get("KAFKA_LISTENERS", ""))
    controllers = set(env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(","))
    roles = set(env.get("KAFKA_PROCESS_ROLES", "").split(","))
    if roles != {"broker", "controller"}:
        problems.append(f"KAFKA_PROCESS_ROLES is {sorted(roles)}, want broker and controller")
    node_id = env.get("KAFKA_NODE_ID")
    voters = [voter.split("@") for voter in env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(",") if voter]
    controller_ports = {listeners[name][1] for name in controllers if name in listeners}
    if not controller_ports:
        problems.append("no CONTROLLER listener in KAFKA_LISTENERS")
    if len(voters) != 1 or voters[0][0] != node_id:
        problems.append(f"KAFKA_CONTROLLER_QUORUM_VOTERS should be this one node ({node_id})")
    else:
        host, _, port = voters[0][1].rpartition(":")
        if host not in kafka_hostnames(p) or port not in controller_ports:
            problems.append(f"quorum voter {voters[0][1]} is not this node's controller listener")
    if not any(port == "9092" for name, (_, port) in listeners.items() if name not in controllers):
        problems.append("no host listener on 9092")
    if not any(port.published == "9092" for port in p.ports("kafka")):
        problems.append("9092 is not published")
    for key, value in env.items():
        if key.endswith(("REPLICATION_FACTOR", "MIN_ISR")) and value != "1":
            problems.append(f"{key}={value}: a single node needs 1")
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        if key not in env:
            problems.append(f"{key} missing (default 3 cannot be met by one node)")
    if env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") != "false":
        problems.append("KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false")
    if env.get("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS") != "0":
        problems.append("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS must be 0")
    try:
        if len(base64.urlsafe_b64decode(env.get("CLUSTER_ID", "") + "==")) != 16:
            raise ValueError
    except (ValueError, binascii.Error):
        problems.append("CLUSTER_ID is not a base64 UUID (kafka-storage.sh random-uuid)")
    test = (p.service("kafka").get("healthcheck") or {}).get("test") or []
    command = " ".join(test) if isinstance(test, list) else str(test)
    if "/opt/kafka/bin/kafka-broker-api-versions.sh" not in command:
        problems.append("kafka healthcheck does not run kafka-broker-api-versions.sh")
    else:
        match = re.search(r"--bootstrap-server[ =](\S+):(\d+)", command)
        if not match or match.group(2) not in {port for _, port in listeners.values()}:
            problems.append("kafka healthcheck does not target one of its listeners")
    return problems


def check_kafka_bootstrap(p: Project) -> list[str]:
    servers = p.env("worker").get("KAFKA_BOOTSTRAP_SERVERS", "")
    kafka = p.env("kafka")
    listeners = parse_listeners(kafka.get("KAFKA_LISTENERS", ""))
    advertised = parse_listeners(kafka.get("KAFKA_ADVERTISED_LISTENERS", ""))
    controllers = set(kafka.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(","))
    if not servers:
        return ["worker has no KAFKA_BOOTSTRAP_SERVERS"]
    problems = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if host not in kafka_hostnames(p):
            problems.append(f"bootstrap {server}: {host!r} is not the kafka service")
        names = [name for name, (_, lport) in listeners.items() if lport == port]
        if not names:
            problems.append(f"bootstrap {server}: port {port} is not in KAFKA_LISTENERS")
        elif names[0] in controllers:
            problems.append(f"bootstrap {server}: port {port} is the controller listener")
        elif advertised.get(names[0]) != (host, port):
            # clients reconnect to the advertised address, so it must be reachable from the worker's network too
            problems.append(f"bootstrap {server}: listener {names[0]} advertises {advertised.get(names[0])}")
    return problems


def check_worker(p: Project) -> list[str]:
    worker, env, problems = p.service("worker"), p.env("worker"), []
    for key, value in WORKER_ENV.items():
        if env.get(key) != value:
            problems.append(f"worker {key}={env.get(key)!r}, want {value!r}")
    depends = worker.get("depends_on") or {}
    if not isinstance(depends, dict) or (depends.get("kafka") or {}).get("condition") != "service_healthy":
        problems.append("worker does not wait for kafka: condition: service_healthy")
    rules = [m for m in p.mounts("worker") if m.target == env.get("DUNNING_RULES")]
    if not rules or rules[0].kind != "bind" or not rules[0].read_only:
        problems.append("DUNNING_RULES is not a read-only bind mount")
    elif PurePosixPath(rules[0].source) != PurePosixPath("rules/default.yaml"):
        problems.append(f"DUNNING_RULES mounts {rules[0].source}, want ./rules/default.yaml")
    else:
        problems += _calendar_mounted(p, rules[0], env["DUNNING_RULES"])
    state = [m for m in p.mounts("worker") if m.target == env.get("DUNNING_STATE_DIR")]
    if not state or state[0].kind != "volume" or not state[0].source:
        problems.append("DUNNING_STATE_DIR is not on a named volume")
    if not any(port.target == env.get("DUNNING_WEB_PORT") for port in p.ports("worker")):
        problems.append("worker's DUNNING_WEB_PORT is not published")
    return problems


def _calendar_mounted(p: Project, rules: Mount, target: str) -> list[str]:
    """The blackout calendar the mounted ruleset names must be in the container beside it (the loader reads it
    relative to the ruleset): a read-only bind mount of the host's file."""
    ruleset = yaml.safe_load((p.root / rules.source).read_text())
    name = (ruleset.get("blackout") or {}).get("calendar")
    if name is None:
        return []
    wanted = PurePosixPath(target).parent / name
    for mount in p.mounts("worker"):
        inside = PurePosixPath(mount.target)
        if mount.kind == "bind" and mount.read_only and (wanted == inside or inside in wanted.parents):
            if (p.root / mount.source / wanted.relative_to(inside)).is_file():
                return []
    return [f"the ruleset's blackout calendar {name} is not mounted read-only at {wanted}"]


def prometheus_config(p: Project) -> tuple[str, Path | None]:
    """Container path of the config file Prometheus reads, and its source in the repository."""
    command = p.service("prometheus").get("command") or []
    args = shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]
    path = "/etc/prometheus/prometheus.yml"
    for i, arg in enumerate(args):
        if arg.startswith("--config.file="):
            path = arg.split("=", 1)[1]
        elif arg == "--config.file" and i + 1 < len(args):
            path = args[i + 1]
    return path, p.host_path("prometheus", path)


def worker_scrape_jobs(config: dict[str, Any], target: str) -> list[dict[str, Any]]:
    return [job for job in config.get("scrape_configs") or []
            if any(target in (static.get("targets") or []) for static in job.get("static_configs") or [])]


def check_prometheus(p: Project) -> list[str]:
    path, source = prometheus_config(p)
    if source is None or not source.is_file():
        return [f"prometheus config {path} is not mounted from the repository"]
    config, problems = p.read_yaml(source), []
    target = f"worker:{p.env('worker').get('DUNNING_WEB_PORT')}"
    jobs = worker_scrape_jobs(config, target)
    if not jobs:
        problems.append(f"no scrape job targets {target}")
    for job in jobs:
        if job.get("metrics_path", "/metrics") != "/metrics":
            problems.append(f"job {job.get('job_name')} scrapes {job.get('metrics_path')}, not /metrics")
        interval = job.get("scrape_interval", (config.get("global") or {}).get("scrape_interval", "1m"))
        if interval != "15s":
            problems.append(f"job {job.get('job_name')} scrapes every {interval}, want 15s")
        if job.get("job_name") != WORKER_JOB:
            problems.append(f"job {job.get('job_name')!r} should be {WORKER_JOB!r} (alerts and dashboard use it)")
    for rule_file in config.get("rule_files") or []:
        in_container = PurePosixPath(path).parent / rule_file
        host = p.host_path("prometheus", str(in_container))
        if host is None or not host.is_file():
            problems.append(f"rule file {rule_file} ({in_container}) is not mounted from the repository")
    if not config.get("rule_files"):
        problems.append("prometheus.yml loads no rule_files")
    return problems


def alert_files(p: Project) -> list[Path]:
    path, source = prometheus_config(p)
    config = p.read_yaml(source)
    return [p.host_path("prometheus", str(PurePosixPath(path).parent / name)) for name in config.get("rule_files")]


def check_alerts(p: Project) -> list[str]:
    problems, groups = [], []
    for path in alert_files(p):
        groups += (p.read_yaml(path) or {}).get("groups") or []
    dunning = [group for group in groups if group.get("name") == "dunning"]
    if len(dunning) != 1:
        return [f"want one rule group 'dunning', found {len(dunning)}"]
    rules = {rule.get("alert"): rule for rule in dunning[0].get("rules") or []}
    down = rules.get("DunningWorkerDown")
    if not down:
        return ["alert DunningWorkerDown is missing"]
    if re.sub(r"\s+", "", str(down.get("expr"))) != f'up{{job="{WORKER_JOB}"}}==0':
        problems.append(f"DunningWorkerDown expr is {down.get('expr')!r}")
    if down.get("for") != "2m":
        problems.append(f"DunningWorkerDown for: {down.get('for')!r}, want 2m")
    return problems


def check_grafana(p: Project) -> list[str]:
    problems = []
    env = p.env("grafana")
    if env.get("GF_AUTH_ANONYMOUS_ENABLED") != "true" or env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer":
        problems.append("anonymous viewer access is not enabled")
    prometheus_ports = {port.target for port in p.ports("prometheus")} or {"9090"}

    # datasources
    uids = set()
    folder = p.host_path("grafana", "/etc/grafana/provisioning/datasources")
    files = sorted(folder.glob("*.y*ml")) if folder and folder.is_dir() else []
    if not files:
        problems.append("no datasource provisioning mounted at /etc/grafana/provisioning/datasources")
    for path in files:
        doc = p.read_yaml(path) or {}
        if doc.get("apiVersion") != 1:
            problems.append(f"{path.name}: apiVersion is not 1")
        for source in doc.get("datasources") or []:
            missing = {"name", "type", "url", "uid"} - set(source)
            if missing:
                problems.append(f"{path.name}: datasource lacks {sorted(missing)}")
                continue
            uids.add(source["uid"])
            url = urlsplit(source["url"])
            wrong = url.hostname != "prometheus" or str(url.port) not in prometheus_ports
            if source["type"] == "prometheus" and wrong:
                problems.append(f"{path.name}: datasource url {source['url']} is not the prometheus service")
    if not uids:
        problems.append("no datasource provisioned")

    # dashboard providers and the dashboards they load
    folder = p.host_path("grafana", "/etc/grafana/provisioning/dashboards")
    files = sorted(folder.glob("*.y*ml")) if folder and folder.is_dir() else []
    if not files:
        problems.append("no dashboard provider mounted at /etc/grafana/provisioning/dashboards")
    dashboards: list[Path] = []
    for path in files:
        doc = p.read_yaml(path) or {}
        if doc.get("apiVersion") != 1:
            problems.append(f"{path.name}: apiVersion is not 1")
        for provider in doc.get("providers") or []:
            where = (provider.get("options") or {}).get("path")
            if provider.get("type") != "file" or not provider.get("name") or not where:
                problems.append(f"{path.name}: provider needs name, type: file and options.path")
                continue
            source = p.host_path("grafana", where)
            if source is None or not source.is_dir():
                problems.append(f"{path.name}: {where} is not mounted from a repository folder")
                continue
            dashboards += sorted(source.glob("*.json"))
    if not dashboards:
        problems.append("no dashboard JSON is provisioned")
    seen: dict[str, str] = {}
    for path in dashboards:
        try:
            board = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name}: not JSON ({exc})")
            continue
        uid = board.get("uid")
        if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
            problems.append(f"{path.name}: uid {uid!r} is missing or invalid")
        elif uid in seen:
            problems.append(f"{path.name}: uid {uid} also used by {seen[uid]}")
        else:
            seen[uid] = path.name
        if not board.get("title") or not board.get("panels"):
            problems.append(f"{path.name}: needs a title and panels")
        for panel in board.get("panels") or []:
            for ref in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets") or []]:
                if isinstance(ref, dict) and ref.get("uid") not in uids:
                    problems.append(f"{path.name}: panel {panel.get('title')!r} uses unknown datasource {ref}")
            if panel.get("type") != "row" and not any(t.get("expr") for t in panel.get("targets") or []):
                problems.append(f"{path.name}: panel {panel.get('title')!r} has no query")
    if "dunning-stream" not in seen:
        problems.append("no dashboard with uid dunning-stream")
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home and not ((source := p.host_path("grafana", home)) and source.is_file()):
        problems.append(f"home dashboard {home} is not mounted")
    return problems


def check_dockerfile(p: Project) -> list[str]:
    problems, stages, final = [], set(), []
    bases = []
    for keyword, args in p.dockerfile:
        if keyword == "FROM":
            words = args.split()
            image = next(word for word in words if not word.startswith("--"))
            if image not in stages:
                bases.append(image)
                problem = pinned_image_problem(image)
                if problem:
                    problems.append(f"FROM {problem}")
            if len(words) >= 3 and words[-2].upper() == "AS":
                stages.add(words[-1])
            final = []
        final.append((keyword, args))
    if not any(re.match(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$", base) for base in bases):
        problems.append(f"base images {bases}: none is python:3.11.<patch>-slim-bookworm")

    runs = " ".join(args for keyword, args in p.dockerfile if keyword == "RUN")
    extras = (p.pyproject.get("project") or {}).get("optional-dependencies") or {}
    if not re.search(r"pip install[^&;|]*['\"]?\.\[runtime\]", runs):
        problems.append("no RUN pip install '.[runtime]'")
    if "runtime" not in extras:
        problems.append("pyproject.toml has no `runtime` extra")

    def last(name: str) -> str | None:
        values = [args for keyword, args in final if keyword == name]
        return values[-1] if values else None

    user = last("USER")
    if user is None or user.split(":")[0] in {"root", "0"}:
        problems.append(f"final stage runs as {user or 'root (no USER)'}")
    if last("ENTRYPOINT") != '["dunning"]':
        problems.append(f"ENTRYPOINT is {last('ENTRYPOINT')}, want [\"dunning\"]")
    if "dunning" not in ((p.pyproject.get("project") or {}).get("scripts") or {}):
        problems.append("pyproject.toml has no `dunning` console script")
    if last("CMD") != '["worker"]':
        problems.append(f"CMD is {last('CMD')}, want [\"worker\"]")
    volumes = " ".join(args for keyword, args in final if keyword == "VOLUME")
    state_dir = p.env("worker").get("DUNNING_STATE_DIR", "/var/lib/dunning")
    if f'"{state_dir}"' not in volumes and state_dir not in volumes.split():
        problems.append(f"{state_dir} is not a VOLUME")
    exposed = {word.split("/")[0] for keyword, args in final if keyword == "EXPOSE" for word in args.split()}
    if p.env("worker").get("DUNNING_WEB_PORT", "6066") not in exposed:
        problems.append(f"EXPOSE {sorted(exposed)} lacks the worker's DUNNING_WEB_PORT")
    return problems


def check_dockerignore(p: Project) -> list[str]:
    patterns, problems = p.dockerignore, []
    for path in DOCKERIGNORED:
        if not dockerignored(patterns, path):
            problems.append(f".dockerignore does not exclude {path}")
    if not dockerignored(patterns, "tests/__pycache__/x.pyc"):
        problems.append(".dockerignore does not exclude __pycache__ folders")
    context = p.root / (PurePosixPath(dockerfile_path(p)).parent)
    for keyword, args in p.dockerfile:
        words = args.split()
        if keyword not in {"COPY", "ADD"} or any(word.startswith("--from") for word in words):
            continue
        sources = [word for word in words[:-1] if not word.startswith("--")]
        matched = False
        for source in sources:
            hits = glob.glob(source, root_dir=context) if glob.has_magic(source) else (
                [source] if (context / source).exists() else [])
            if not hits and not glob.has_magic(source):
                problems.append(f"{keyword} {source}: not in the build context")
            for hit in hits:
                if dockerignored(patterns, hit.rstrip("/")):
                    problems.append(f"{keyword} {hit}: excluded by .dockerignore")
                else:
                    matched = True
        if not matched:
            problems.append(f"{keyword} {args}: copies nothing")
    return problems


CHECKS: dict[str, Callable[[Project], list[str]]] = {
    "services": check_services,
    "images": check_images,
    "worker_build": check_worker_build,
    "mounts": check_mounts,
    "ports": check_ports,
    "kafka": check_kafka,
    "kafka_bootstrap": check_kafka_bootstrap,
    "worker": check_worker,
    "prometheus": check_prometheus,
    "alerts": check_alerts,
    "grafana": check_grafana,
    "dockerfile": check_dockerfile,
    "dockerignore": check_dockerignore,
}


@pytest.mark.parametrize("name", CHECKS)
def test_repository_passes(name: str) -> None:
    assert CHECKS[name](Project(REPO)) == []


# --------------------------------------------------------------------------------------------------------------------
# each check notices a broken copy


COPIED = ["docker-compose.yml", "Dockerfile", ".dockerignore", "pyproject.toml", "deploy", "rules", "schemas",
          "streams"]


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / name)
    assert all(check(Project(tmp_path)) == [] for check in CHECKS.values()), "the copy should pass before mutation"
    return tmp_path


def edit_yaml(relative: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / relative
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return apply


def edit_text(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / relative
        text = path.read_text()
        assert old in text, f"mutation target {old!r} not in {relative}"
        path.write_text(text.replace(old, new))
    return apply


def service(name: str, change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    return edit_yaml(COMPOSE, lambda data: change(data["services"][name]))


def setitem(mapping: dict[str, Any], key: str, value: Any) -> None:
    mapping[key] = value


def first_dashboard(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "deploy/grafana/dashboards/dunning.json"
        board = json.loads(path.read_text())
        change(board)
        path.write_text(json.dumps(board))
    return apply


PROM = "deploy/prometheus/prometheus.yml"
MUTATIONS: list[tuple[str, str, Callable[[Path], None]]] = [
    ("services", "grafana removed", edit_yaml(COMPOSE, lambda d: d["services"].pop("grafana"))),
    ("images", "latest", service("kafka", lambda s: setitem(s, "image", "apache/kafka:latest"))),
    ("images", "no tag", service("prometheus", lambda s: setitem(s, "image", "prom/prometheus"))),
    ("images", "floating tag", service("grafana", lambda s: setitem(s, "image", "grafana/grafana:11"))),
    ("worker_build", "no build", service("worker", lambda s: s.pop("build"))),
    ("worker_build", "missing Dockerfile", service("worker", lambda s: setitem(s["build"], "dockerfile", "Nope"))),
    ("mounts", "missing source", edit_text(COMPOSE, "./deploy/prometheus/alerts.yml:", "./deploy/alerts.yml:")),
    ("mounts", "outside repo", service("grafana", lambda s: s["volumes"].append("/etc/passwd:/x:ro"))),
    ("mounts", "escapes repo", service("grafana", lambda s: s["volumes"].append("../outside:/x:ro"))),
    ("mounts", "undeclared volume", edit_yaml(COMPOSE, lambda d: d["volumes"].pop("grafana-data"))),
    ("ports", "all interfaces", service("grafana", lambda s: setitem(s, "ports", ["3000:3000"]))),
    ("ports", "0.0.0.0", service("prometheus", lambda s: setitem(s, "ports", ["0.0.0.0:9090:9090"]))),
    ("ports", "long syntax", service("worker", lambda s: setitem(s, "ports", [{"target": 6066, "published": 6066}]))),
    ("kafka", "auto-create", service("kafka", lambda s: setitem(s["environment"],
                                                                "KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true"))),
    ("kafka", "replication 3", service("kafka", lambda s: setitem(s["environment"],
                                                                  "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", 3))),
    ("kafka", "voter port", edit_text(COMPOSE, "1@kafka:9093", "1@kafka:9094")),
    ("kafka", "no healthcheck", service("kafka", lambda s: s.pop("healthcheck"))),
    ("kafka", "cluster id", service("kafka", lambda s: setitem(s["environment"], "CLUSTER_ID", "dunning"))),
    ("kafka", "no host listener", edit_text(COMPOSE, "PLAINTEXT_HOST://0.0.0.0:9092", "PLAINTEXT_HOST://0.0.0.0:9095")),
    ("kafka_bootstrap", "other host", edit_text(COMPOSE, "KAFKA_BOOTSTRAP_SERVERS: kafka:",
                                                "KAFKA_BOOTSTRAP_SERVERS: x:")),
    ("kafka_bootstrap", "no listener", edit_text(COMPOSE, "KAFKA_BOOTSTRAP_SERVERS: kafka:19092",
                                                 "KAFKA_BOOTSTRAP_SERVERS: kafka:29092")),
    ("kafka_bootstrap", "host listener", edit_text(COMPOSE, "KAFKA_BOOTSTRAP_SERVERS: kafka:19092",
                                                   "KAFKA_BOOTSTRAP_SERVERS: kafka:9092")),
    ("kafka_bootstrap", "controller", edit_text(COMPOSE, "KAFKA_BOOTSTRAP_SERVERS: kafka:19092",
                                                "KAFKA_BOOTSTRAP_SERVERS: kafka:9093")),
    ("worker", "partitions", service("worker", lambda s: setitem(s["environment"], "DUNNING_PARTITIONS", 3))),
    ("worker", "no healthy wait", service("worker", lambda s: setitem(s, "depends_on", ["kafka"]))),
    ("worker", "rules writable", edit_text(COMPOSE, "/etc/dunning/rules.yaml:ro", "/etc/dunning/rules.yaml")),
    ("worker", "no calendar", edit_text(COMPOSE, "./rules/calendars:/etc/dunning/calendars:ro", "./rules:/srv:ro")),
    ("worker", "state not a volume", service("worker", lambda s: s["volumes"].pop())),
    ("prometheus", "wrong port", edit_text(PROM, "worker:6066", "worker:6067")),
    ("prometheus", "wrong path", edit_text(PROM, "metrics_path: /metrics", "metrics_path: /stats")),
    ("prometheus", "interval", edit_text(PROM, "    scrape_interval: 15s", "    scrape_interval: 1m")),
    ("prometheus", "rules not mounted", edit_text(PROM, "- alerts.yml", "- rules/alerts.yml")),
    ("prometheus", "config not mounted", edit_text(COMPOSE, ":/etc/prometheus/prometheus.yml:ro", ":/etc/p.yml:ro")),
    ("alerts", "alert renamed", edit_text("deploy/prometheus/alerts.yml", "DunningWorkerDown", "WorkerDown")),
    ("alerts", "wrong job", edit_text("deploy/prometheus/alerts.yml", 'job="dunning-worker"', 'job="worker"')),
    ("grafana", "anonymous off", service("grafana", lambda s: s["environment"].pop("GF_AUTH_ANONYMOUS_ENABLED"))),
    ("grafana", "datasource host", edit_text("deploy/grafana/provisioning/datasources/prometheus.yml",
                                             "http://prometheus:9090", "http://localhost:9090")),
    ("grafana", "provider path", edit_text("deploy/grafana/provisioning/dashboards/dunning.yml",
                                           "path: /var/lib/grafana/dashboards", "path: /dashboards")),
    ("grafana", "provider type", edit_text("deploy/grafana/provisioning/dashboards/dunning.yml",
                                           "type: file", "type: files")),
    ("grafana", "dashboard not JSON", edit_text("deploy/grafana/dashboards/dunning.json", '"panels": [', '"panels": ')),
    ("grafana", "dashboard uid", first_dashboard(lambda b: b.pop("uid"))),
    ("grafana", "panel datasource", first_dashboard(lambda b: setitem(b["panels"][0], "datasource",
                                                                       {"type": "prometheus", "uid": "nope"}))),
    ("dockerfile", "base latest", edit_text("Dockerfile", "python:3.11.13-slim-bookworm", "python:3.11-slim")),
    ("dockerfile", "no runtime extra", edit_text("Dockerfile", "'.[runtime]'", ".")),
    ("dockerfile", "root", edit_text("Dockerfile", "USER 10001:10001", "USER root")),
    ("dockerfile", "port", edit_text("Dockerfile", "EXPOSE 6066", "EXPOSE 8080")),
    ("dockerfile", "entrypoint", edit_text("Dockerfile", 'ENTRYPOINT ["dunning"]', "ENTRYPOINT dunning")),
    ("dockerfile", "volume", edit_text("Dockerfile", 'VOLUME ["/var/lib/dunning"]', 'VOLUME ["/data"]')),
    ("dockerignore", "venv shipped", edit_text(".dockerignore", ".venv\n", "")),
    ("dockerignore", "source excluded", lambda root: (root / ".dockerignore").open("a").write("streams\n")),
    ("dockerignore", "copy missing", lambda root: shutil.rmtree(root / "schemas")),
]


@pytest.mark.parametrize(("check", "mutate"), [(check, mutate) for check, _, mutate in MUTATIONS],
                         ids=[f"{check}-{label}" for check, label, _ in MUTATIONS])
def test_check_notices_breakage(project_copy: Path, check: str, mutate: Callable[[Path], None]) -> None:
    mutate(project_copy)
    assert CHECKS[check](Project(project_copy)), f"check_{check} did not notice"


def test_every_check_has_a_mutation() -> None:
    assert {check for check, _, _ in MUTATIONS} == set(CHECKS)


def test_pinned_image_problem() -> None:
    good = ["apache/kafka:3.9.1", "prom/prometheus:v2.53.5", "python:3.11.13-slim-bookworm",
            "registry:5000/team/app:1.2.3", "redis@sha256:" + "a" * 64]
    bad = ["apache/kafka", "apache/kafka:latest", "grafana/grafana:11", "python:3.11-slim", "registry:5000/app"]
    assert [ref for ref in good if pinned_image_problem(ref)] == []
    assert [ref for ref in bad if not pinned_image_problem(ref)] == []


def test_dockerignore_matching() -> None:
    patterns = [".venv", "var", "*.egg-info", "**/__pycache__", "docs", "!docs/keep.md"]
    assert dockerignored(patterns, ".venv/bin/python")
    assert dockerignored(patterns, "var/worker")
    assert not dockerignored(patterns, "rules/var")
    assert dockerignored(patterns, "dunning_stream.egg-info/PKG-INFO")
    assert dockerignored(patterns, "__pycache__/a.pyc") and dockerignored(patterns, "streams/__pycache__/a.pyc")
    assert dockerignored(patterns, "docs/x.md") and not dockerignored(patterns, "docs/keep.md")
    assert not dockerignored(patterns, "streams/tools/cli.py")


def test_port_and_volume_syntax() -> None:
    project = Project(REPO)
    project.compose = {"services": {"s": {  # type: ignore[misc]  # overrides the cached property
        "ports": ["80", "8080:80", "127.0.0.1:9000:9000/udp", "[::1]:81:81", {"target": 82, "host_ip": "127.0.0.1"}],
        "volumes": ["/anon", "named:/data", "./x:/x:ro,z", {"type": "bind", "source": "./y", "target": "/y"}],
    }}}
    assert [(p.host_ip, p.published, p.target) for p in project.ports("s")] == [
        (None, None, "80"), (None, "8080", "80"), ("127.0.0.1", "9000", "9000"), ("::1", "81", "81"),
        ("127.0.0.1", None, "82")]
    assert [(m.kind, m.source, m.target, m.read_only) for m in project.mounts("s")] == [
        ("volume", None, "/anon", False), ("volume", "named", "/data", False), ("bind", "./x", "/x", True),
        ("bind", "./y", "/y", False)]


# --------------------------------------------------------------------------------------------------------------------
# the mounted rules load, and the worker understands the environment it is given


def test_mounted_rules_load() -> None:
    from rules.loader import load_ruleset

    project = Project(REPO)
    source = project.host_path("worker", project.env("worker")["DUNNING_RULES"])
    assert source is not None and source.is_file()
    assert load_ruleset(source).rules


def test_worker_settings_read_the_compose_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = Project(REPO).env("worker")
    fields = {f"DUNNING_{name.upper()}" for name in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS"}
    assert sorted(key for key in env if key.startswith("DUNNING_") and key not in fields) == []
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert str(settings.rules) == env["DUNNING_RULES"]
    assert str(settings.state_dir) == env["DUNNING_STATE_DIR"]
    assert (settings.web_host, settings.web_port) == (env["DUNNING_WEB_HOST"], int(env["DUNNING_WEB_PORT"]))
    assert settings.partitions == int(env["DUNNING_PARTITIONS"])
    assert settings.tick_interval == float(env["DUNNING_TICK_INTERVAL"])


# --------------------------------------------------------------------------------------------------------------------
# promtool (Debian package `prometheus`; make test installs it)


def test_promtool_check_config() -> None:
    result = promtool("check", "config", PROM)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    for path in alert_files(Project(REPO)):
        result = promtool("check", "rules", str(path.relative_to(REPO)))
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("args", "mutate"), [
    (("check", "rules", "deploy/prometheus/alerts.yml"),
     edit_text("deploy/prometheus/alerts.yml", "== 0", "== ")),
    (("check", "config", PROM), edit_text(PROM, "evaluation_interval: 15s", "evaluation_interval: soon")),
    (("check", "config", PROM), edit_text("deploy/prometheus/alerts.yml", "for: 2m", "for: 2 minutes")),
    (("test", "rules", "deploy/prometheus/alerts_test.yml"), edit_text("deploy/prometheus/alerts.yml", "2m", "5m")),
], ids=["broken-expr", "broken-config", "broken-rule-file", "alert-timing"])
def test_promtool_notices_breakage(project_copy: Path, args: tuple[str, ...], mutate: Callable[[Path], None]) -> None:
    assert promtool(*args, cwd=project_copy).returncode == 0
    mutate(project_copy)
    assert promtool(*args, cwd=project_copy).returncode != 0


# --------------------------------------------------------------------------------------------------------------------
# the Compose specification's JSON schema (compose-spec, Apache-2.0: tests/compose-spec/LICENSE), committed as the
# check-jsonschema 0.39.0 wheel on PyPI vendors it (sha256 d549057e...); that package itself can't be a dev dependency:
# it needs click>=8.5, faust-streaming click<8.4
COMPOSE_SCHEMA = json.loads((REPO / "tests" / "compose-spec" / "compose-spec.json").read_text())


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.validators.validator_for(COMPOSE_SCHEMA)(COMPOSE_SCHEMA)  # the draft the schema names
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


def test_compose_file_matches_schema() -> None:
    assert schema_errors(Project(REPO).compose) == []


def test_schema_notices_breakage() -> None:
    document = yaml.safe_load((REPO / COMPOSE).read_text())
    document["services"]["worker"]["depends_on"]["kafka"]["condition"] = "service_ready"
    document["services"]["grafana"]["port"] = ["3000:3000"]
    errors = schema_errors(document)  # a 2020-12 schema also reports the worker's other keys as unevaluated
    assert any(error.startswith("$.services.worker.depends_on:") for error in errors), errors
    assert any(error.startswith("$.services.grafana:") and "'port'" in error for error in errors), errors
