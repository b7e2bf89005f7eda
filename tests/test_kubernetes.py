"""Static checks of deploy/kubernetes/: every manifest against the Kubernetes schemas (kubernetes-validate, offline),
then what the schemas cannot see: that the pieces refer to each other and to the worker as it is.

Each check is a function of the manifests that returns a list of problems: run once on the repository's files
(must be empty) and once per mutation, a copy broken on purpose (must not be).
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Callable

import kubernetes_validate
import pytest
import yaml

from streams.runtime.app import LIVENESS_PATH, READINESS_PATH
from streams.runtime.settings import Settings

REPO = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
# The oldest Kubernetes release still supported upstream when this was written, and the newest the package knows.
VERSIONS = ("1.29", kubernetes_validate.latest_version())
ANY_ADDRESS = {"0.0.0.0", "::"}
Manifests = dict[str, dict[str, Any]]  # kind -> the one document of that kind


def load() -> Manifests:
    documents = [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]
    kinds = [doc["kind"] for doc in documents]
    assert len(kinds) == len(set(kinds)), f"one document of each kind expected, got {kinds}"
    return {doc["kind"]: doc for doc in documents}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifest_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        try:
            kubernetes_validate.validate(document, version, strict=True)  # strict: unknown fields are errors
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} is not a valid {document.get('kind')} for Kubernetes {version}: {exc}")


def test_the_schema_check_refuses_a_broken_manifest() -> None:
    statefulset = copy.deepcopy(load()["StatefulSet"])
    statefulset["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {"memory": "1Gi"}  # limits
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, VERSIONS[-1], strict=True)


# --------------------------------------------------------------------------------------------------------------------
# what the pieces refer to


def pod(m: Manifests) -> dict[str, Any]:
    return m["StatefulSet"]["spec"]["template"]


def worker(m: Manifests) -> dict[str, Any]:
    return next(c for c in pod(m)["spec"]["containers"] if c["name"] == "worker")


def env(m: Manifests) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in worker(m).get("env", [])}


def port_named(m: Manifests, name: str | int) -> int | None:
    if isinstance(name, int):
        return name
    return next((p["containerPort"] for p in worker(m).get("ports", []) if p.get("name") == name), None)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def check_selectors(m: Manifests) -> list[str]:
    labels = pod(m)["metadata"].get("labels", {})
    problems = []
    for what, selector in (("the StatefulSet", m["StatefulSet"]["spec"]["selector"]["matchLabels"]),
                           ("the PodDisruptionBudget", m["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]),
                           ("the Service", m["Service"]["spec"].get("selector", {}))):
        if not matches(selector, labels):
            problems.append(f"{what} selects {selector}, the pods are labelled {labels}")
    return problems


def check_service(m: Manifests) -> list[str]:
    service, problems = m["Service"], []
    if m["StatefulSet"]["spec"]["serviceName"] != service["metadata"]["name"]:
        problems.append("the StatefulSet's serviceName is not the Service")
    if service["spec"].get("clusterIP") != "None":
        problems.append("the Service is not headless: pods get no DNS name of their own")
    if not service["spec"].get("publishNotReadyAddresses"):
        problems.append("a restoring (not ready) worker's name would not resolve for the other workers")
    targets = {port_named(m, p.get("targetPort", p["port"])) for p in service["spec"]["ports"]}
    if targets != {Settings(**settings_of(m)).web_port}:
        problems.append(f"the Service points at ports {targets}, not the worker's web port")
    url = env(m).get("DUNNING_ADVERTISED_URL", "")
    if f".{service['metadata']['name']}." not in url or not url.endswith(f":{Settings(**settings_of(m)).web_port}"):
        problems.append(f"DUNNING_ADVERTISED_URL {url!r} is not the pod's name in the Service, on the web port")
    return problems


def settings_of(m: Manifests) -> dict[str, Any]:
    """The container's environment as Settings keyword arguments (the names the worker reads)."""
    fields = {f"DUNNING_{name.upper()}": name for name in Settings.model_fields}
    values = {fields[key]: value for key, value in env(m).items() if key in fields}
    values["bootstrap_servers"] = env(m).get("KAFKA_BOOTSTRAP_SERVERS", "")
    return values


def check_settings(m: Manifests) -> list[str]:
    known = {f"DUNNING_{name.upper()}" for name in Settings.model_fields}
    problems = [f"{key} is not a setting of the worker" for key in env(m) if key.startswith("DUNNING_")
                and key not in known]
    settings = Settings(**settings_of(m))
    mounts = {mount["mountPath"]: mount["name"] for mount in worker(m).get("volumeMounts", [])}
    claims = {claim["metadata"]["name"] for claim in m["StatefulSet"]["spec"].get("volumeClaimTemplates", [])}
    if mounts.get(str(settings.state_dir)) not in claims:
        problems.append(f"the state directory {settings.state_dir} is not on a persistent volume claim")
    if settings.web_host not in ANY_ADDRESS:
        problems.append(f"the web server listens on {settings.web_host} only: probes and scrapes cannot reach it")
    if "DUNNING_STANDBY_REPLICAS" not in env(m):
        problems.append("no DUNNING_STANDBY_REPLICAS: a worker taking over would read the whole changelog")
    if settings.partitions < m["StatefulSet"]["spec"]["replicas"]:
        problems.append("more workers than partitions: some would hold nothing")
    return problems


def check_probes(m: Manifests) -> list[str]:
    problems, web_port = [], Settings(**settings_of(m)).web_port
    for probe, path in (("livenessProbe", LIVENESS_PATH), ("readinessProbe", READINESS_PATH)):
        get = worker(m).get(probe, {}).get("httpGet", {})
        if get.get("path") != path or port_named(m, get.get("port")) != web_port:
            problems.append(f"the {probe} does not ask the worker's {path} on its web port: {get}")
    return problems


def check_scrape(m: Manifests) -> list[str]:
    annotations = pod(m)["metadata"].get("annotations", {})
    wanted = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics",
              "prometheus.io/port": str(Settings(**settings_of(m)).web_port)}
    return [f"annotation {key} is {annotations.get(key)!r}, not {value!r}" for key, value in wanted.items()
            if annotations.get(key) != value]


MEBIBYTES = {"Mi": 1, "Gi": 1024}


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity).groups()
    return float(number) * MEBIBYTES[unit]


def check_resources(m: Manifests) -> list[str]:
    resources, problems = worker(m).get("resources", {}), []
    request = resources.get("requests", {}).get("memory")
    limit = resources.get("limits", {}).get("memory")
    if not request or not limit or mebibytes(limit) < mebibytes(request):
        problems.append(f"memory request {request} and limit {limit}: both wanted, the limit at least the request")
    if "cpu" in resources.get("limits", {}):
        problems.append("a CPU limit throttles a worker catching up; request CPU instead")
    if m["PodDisruptionBudget"]["spec"].get("maxUnavailable") != 1:
        problems.append("the PodDisruptionBudget should let one worker go at a time")
    return problems


CHECKS: dict[str, Callable[[Manifests], list[str]]] = {
    "selectors": check_selectors, "service": check_service, "settings": check_settings, "probes": check_probes,
    "scrape": check_scrape, "resources": check_resources}


@pytest.mark.parametrize("name", CHECKS)
def test_repository_passes(name: str) -> None:
    assert CHECKS[name](load()) == []


def container_env(name: str, value: str | None) -> Callable[[Manifests], None]:
    def apply(m: Manifests) -> None:
        items = worker(m)["env"]
        items[:] = [item for item in items if item["name"] != name]
        if value is not None:
            items.append({"name": name, "value": value})
    return apply


def set_in(path: Callable[[Manifests], dict[str, Any]], key: str, value: Any) -> Callable[[Manifests], None]:
    def apply(m: Manifests) -> None:
        path(m)[key] = value
    return apply


MUTATIONS: list[tuple[str, str, Callable[[Manifests], None]]] = [
    ("selectors", "pdb-selects-other-pods", set_in(lambda m: m["PodDisruptionBudget"]["spec"]["selector"],
                                                   "matchLabels", {"app.kubernetes.io/name": "other"})),
    ("service", "not-headless", set_in(lambda m: m["Service"]["spec"], "clusterIP", "10.0.0.1")),
    ("service", "advertised-elsewhere", container_env("DUNNING_ADVERTISED_URL", "http://$(POD_NAME):6066")),
    ("settings", "misspelt-setting", container_env("DUNNING_STATE_DIRECTORY", "/var/lib/dunning")),
    ("settings", "state-off-the-volume", container_env("DUNNING_STATE_DIR", "/tmp/dunning")),
    ("settings", "no-standbys", container_env("DUNNING_STANDBY_REPLICAS", None)),
    ("probes", "readiness-on-liveness", lambda m: worker(m)["readinessProbe"]["httpGet"].update(path=LIVENESS_PATH)),
    ("probes", "web-port-moved", container_env("DUNNING_WEB_PORT", "7077")),
    ("scrape", "no-scrape-annotation", lambda m: pod(m)["metadata"]["annotations"].pop("prometheus.io/scrape")),
    ("resources", "limit-below-request", lambda m: worker(m)["resources"]["limits"].update(memory="256Mi")),
]


@pytest.mark.parametrize(("check", "mutate"), [(check, mutate) for check, _, mutate in MUTATIONS],
                         ids=[f"{check}-{label}" for check, label, _ in MUTATIONS])
def test_check_notices_breakage(check: str, mutate: Callable[[Manifests], None]) -> None:
    manifests = load()
    mutate(manifests)
    assert CHECKS[check](manifests)


def test_every_check_has_a_mutation() -> None:
    assert {check for check, _, _ in MUTATIONS} == set(CHECKS)
