"""Packaging and operations: the Bento, the compose stack, .env.example, the README's commands.

No Docker engine runs here, so the compose file is checked for the structure
that `docker compose up -d --scale api=3` relies on, and the Bento is built
for real and its generated Dockerfile and contents are inspected.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.model_store import promote, promoted_tag, save_to_store, store_entry
from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.models import REGISTRY
from recipe_ml.models.base import Recommender

COMPOSE = REPO_ROOT / "docker-compose.yml"
SECRETS_EXAMPLE = REPO_ROOT / "deploy/secrets.env.example"
SECRETS_IN_COMPOSE = "./deploy/secrets.env"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEYS|CREDENTIAL", re.IGNORECASE)
ENV_EXAMPLE = REPO_ROOT / ".env.example"
README = REPO_ROOT / "README.md"
BENTOFILE = REPO_ROOT / "bentofile.yaml"
BENTO_SRC_IN_IMAGE = "/home/bentoml/bento/src"
"""Where a Bento image keeps the build's source (its WORKDIR is the parent)."""
MODEL_NAMES = {kind.store_name for kind in REGISTRY.values()}
LONG_RUNNING = {"api", "consumer", "redis", "kafka", "prometheus", "grafana"}
ENV_LINE = re.compile(r"^#?([A-Z][A-Z0-9_]*)=(.*)$")


# .env.example ---------------------------------------------------------------


def _env_example_keys() -> list[str]:
    return [m.group(1) for line in ENV_EXAMPLE.read_text().splitlines() if (m := ENV_LINE.match(line))]


def test_env_example_lists_every_setting_once() -> None:
    keys = _env_example_keys()
    assert len(keys) == len(set(keys)), f"duplicated keys: {sorted(k for k in keys if keys.count(k) > 1)}"
    assert set(keys) == {name.upper() for name in Settings.model_fields}


def test_env_example_explains_every_setting() -> None:
    """Each setting is preceded by a comment line saying what it does."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    previous = {lines[i + 1]: lines[i] for i in range(len(lines) - 1)}
    for line in lines:
        if ENV_LINE.match(line):
            before = previous.get(line, "")
            assert before.startswith("# ") or ENV_LINE.match(before), f"no comment above {line!r}"


def test_copying_env_example_to_env_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    from_example = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example == defaults


# docker-compose.yml ---------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _compose_cli() -> list[str] | None:
    """A compose CLI that validates without an engine: the v2 plugin or docker-compose."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_validates_with_the_compose_cli() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI on this machine; the structure tests below still run")
    result = subprocess.run([*cli, "config", "-q"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_compose_has_the_whole_stack(services: dict[str, dict[str, Any]]) -> None:
    assert {"api", "consumer", "redis", "kafka", "kafka-init", "prometheus"} <= set(services)


def test_long_running_services_have_health_checks_and_restart(services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING & set(services):
        service = services[name]
        assert service.get("restart") in {"always", "unless-stopped", "on-failure"}, name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"


def test_depends_on_waits_for_health_of_existing_services(services: dict[str, dict[str, Any]]) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        deps = service.get("depends_on", {})
        for dep in deps:
            assert dep in services, f"{name} depends on unknown {dep}"
        if isinstance(deps, dict):
            for dep, spec in deps.items():
                assert spec["condition"] in conditions, f"{name} -> {dep}"
                if spec["condition"] == "service_healthy":
                    assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health, which has no check"
    for app in ("api", "consumer"):
        deps = services[app]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["kafka-init"]["condition"] == "service_completed_successfully"


def test_api_scales_without_host_port_clash(services: dict[str, dict[str, Any]]) -> None:
    """`--scale api=3` fails if a replica binds a fixed host port."""
    api = services["api"]
    assert "container_name" not in api
    for port in api.get("ports", []):
        spec = port if isinstance(port, dict) else {"target": str(port)}
        assert "published" not in spec and ":" not in str(spec["target"]), f"fixed host port {port!r}"
    assert {str(p) for p in api["ports"]} == {"8000"}


def test_api_listens_where_the_bento_serves(services: dict[str, dict[str, Any]]) -> None:
    """The Bento entrypoint serves on $PORT; compose, health check and bentofile agree on it."""
    envs = {e["name"]: e["value"] for e in yaml.safe_load(BENTOFILE.read_text())["envs"]}
    assert envs["PORT"] == "8000"
    assert "127.0.0.1:8000/api/health" in " ".join(services["api"]["healthcheck"]["test"])


def test_api_and_consumer_share_one_image_and_redis(services: dict[str, dict[str, Any]]) -> None:
    api, consumer = services["api"], services["consumer"]
    assert api["image"] == consumer["image"]
    secrets = _env_file_values(SECRETS_EXAMPLE)
    assert re.fullmatch(r"redis://:[^@]+@redis:6379/0", secrets["REDIS_URL"])
    assert f":{secrets['REDIS_PASSWORD']}@" in secrets["REDIS_URL"], "REDIS_URL carries the redis service's password"
    for app in (api, consumer):
        assert app["env_file"] == [SECRETS_IN_COMPOSE]
        assert app["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert app["environment"]["OPENBLAS_NUM_THREADS"] == "1"


def _env_file_values(path: Path) -> dict[str, str]:
    return {m.group(1): m.group(2) for line in path.read_text().splitlines() if (m := ENV_LINE.match(line))}


def test_every_service_has_cpu_and_memory_limits(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert float(limits.get("cpus", 0)) > 0, f"{name} has no CPU limit"
        assert re.fullmatch(r"\d+[MG]", str(limits.get("memory", ""))), f"{name} has no memory limit"


def test_api_and_consumer_run_unprivileged(services: dict[str, dict[str, Any]]) -> None:
    for name in ("api", "consumer"):
        service = services[name]
        user = str(service.get("user", "root"))
        assert user.split(":")[0] not in {"", "0", "root"}, f"{name} runs as root"
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"], name


def test_secrets_come_from_the_env_file_not_the_compose_file(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        environment = service.get("environment") or {}
        for key, val in environment.items():
            assert not SECRET_NAME.search(key), f"{name}: secret {key} written inline"
            assert not re.search(r"://[^/@\s]*:[^/@\s]+@", str(val)), f"{name}: {key} holds a password"
    redis = services["redis"]
    assert redis["env_file"] == [SECRETS_IN_COMPOSE]
    assert '--requirepass "$$REDIS_PASSWORD"' in " ".join(redis["command"])
    assert "$$REDIS_PASSWORD" in " ".join(redis["healthcheck"]["test"])
    assert services["grafana"]["env_file"] == [SECRETS_IN_COMPOSE]
    example = _env_file_values(SECRETS_EXAMPLE)
    assert {"REDIS_PASSWORD", "REDIS_URL", "API_KEYS", "GF_SECURITY_ADMIN_PASSWORD"} <= set(example)
    assert all(value.startswith(("change-me", "redis://:change-me")) for value in example.values())
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/secrets.env"], cwd=REPO_ROOT, capture_output=True, check=False
    )
    assert ignored.returncode == 0, "deploy/secrets.env must be git-ignored"


def test_consumer_runs_the_consumer_module_from_the_bento_source(services: dict[str, dict[str, Any]]) -> None:
    consumer = services["consumer"]
    assert consumer["command"] == ["python", "-m", "scripts.cli", "consume"]
    assert consumer["working_dir"] == BENTO_SRC_IN_IMAGE
    assert "ports" not in consumer, "consumers scale too: no fixed host port"


def test_the_trainer_retrains_into_the_store_the_api_watches(services: dict[str, dict[str, Any]]) -> None:
    trainer, api = services["trainer"], services["api"]
    assert trainer["command"] == ["python", "-m", "scripts.cli", "trainer"]
    assert trainer["working_dir"] == BENTO_SRC_IN_IMAGE and trainer["image"] == api["image"]
    assert trainer["environment"]["RETRAIN_INTERVAL"] == "${RETRAIN_INTERVAL:-24h}"
    store = f"model-store:{BENTO_SRC_IN_IMAGE.rsplit('/', 1)[0]}/models"  # the Bento's store (BENTOML_HOME)
    assert store in trainer["volumes"] and store in api["volumes"]
    assert trainer["env_file"] == [SECRETS_IN_COMPOSE]  # REDIS_URL: the live interactions
    assert trainer["depends_on"]["redis"]["condition"] == "service_healthy"
    assert trainer["cap_drop"] == ["ALL"] and str(trainer["user"]).split(":")[0] not in {"0", "root"}


def test_kafka_is_single_node_kraft_without_zookeeper(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name, service in services.items():
        assert "zookeeper" not in f"{name} {service.get('image', '')}".lower(), name
        assert not any("ZOOKEEPER" in key for key in service.get("environment") or {}), name


def test_kafka_init_creates_the_topics_the_settings_name(services: dict[str, dict[str, Any]]) -> None:
    script = " ".join(services["kafka-init"]["command"])
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert f"--topic {settings.kafka_topic} --partitions 3" in script
    assert f"--topic {settings.kafka_dlq_topic} " in script
    assert script.count("--if-not-exists") == 2, "a restart of kafka-init must not fail on existing topics"


def test_prometheus_scrapes_every_api_replica_and_consumer(services: dict[str, dict[str, Any]]) -> None:
    mounts = {v.split(":")[1]: REPO_ROOT / v.split(":")[0] for v in services["prometheus"]["volumes"] if "./" in v}
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_job = jobs["recipe-ml-api"]
    assert api_job["metrics_path"] == "/api/metrics"
    # DNS service discovery returns every replica of a scaled service.
    assert api_job["dns_sd_configs"] == [{"names": ["api"], "type": "A", "port": 8000, "refresh_interval": "15s"}]
    consumer_sd = jobs["recipe-ml-consumer"]["dns_sd_configs"][0]
    assert consumer_sd["names"] == ["consumer"]
    consumer = services["consumer"]
    assert str(consumer_sd["port"]) == consumer["environment"]["CONSUMER_METRICS_PORT"]
    assert str(consumer_sd["port"]) in {str(p) for p in consumer["expose"]}
    assert str(consumer_sd["port"]) in " ".join(consumer["healthcheck"]["test"])


def test_grafana_provisioning_and_dashboard_are_valid(services: dict[str, dict[str, Any]]) -> None:
    for volume in services["grafana"]["volumes"]:
        assert (REPO_ROOT / volume.split(":")[0]).exists(), volume
    dashboards = list((REPO_ROOT / "deploy/grafana/dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        assert exprs, f"{path.name} has no queries"
        assert all(t["datasource"]["uid"] == "prometheus" for p in dashboard["panels"] for t in p.get("targets", []))


def test_dashboard_queries_metrics_the_code_exports() -> None:
    """A renamed metric must not leave a silently empty panel behind."""
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "recipe_ml").rglob("*.py"))
    declared = {name.removesuffix("_total") for name in re.findall(r"[\"'](recipe_[a-z_]+)[\"']", source)}
    for path in (REPO_ROOT / "deploy/grafana/dashboards").glob("*.json"):
        for metric in set(re.findall(r"\brecipe_[a-z_]+", path.read_text())):
            base = re.sub(r"_(bucket|total|sum|count)$", "", metric)
            assert base in declared, f"{path.name} queries {metric}, which no code in recipe_ml/ exports"


# README and .ci/run -----------------------------------------------------------


DOCS = REPO_ROOT / "docs"
CONFIGURATION_DOC = DOCS / "configuration.md"
MAKE_COMMAND = re.compile(r"^\s*(?:\$ )?make ([a-z-]+)", flags=re.MULTILINE)
FENCED_BLOCK = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
EXTERNAL_LINK = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", flags=re.IGNORECASE)


def _readme_and_docs() -> list[Path]:
    """The README and every page under docs/: each is checked the same way."""
    pages = [README, *sorted(DOCS.glob("*.md"))]
    assert len(pages) > 1, "docs/ has no pages"
    return pages


def test_readme_configuration_table_lists_every_setting() -> None:
    """The configuration table moved from the README to docs/configuration.md, which the README links."""
    documented = set(re.findall(r"^\| `([A-Z_]+)`", CONFIGURATION_DOC.read_text(), flags=re.MULTILINE))
    assert {name.upper() for name in Settings.model_fields} <= documented
    assert "(docs/configuration.md)" in README.read_text()


def _make_targets(*pages: Path) -> set[str]:
    return {target for page in pages for target in MAKE_COMMAND.findall(page.read_text())}


def _readme_make_targets() -> set[str]:
    return _make_targets(README)


def test_ci_runs_exactly_the_readme_commands() -> None:
    ci_lines = (REPO_ROOT / ".ci/run").read_text().splitlines()
    ci_commands = [line.strip() for line in ci_lines if line.startswith("make ")]
    assert ci_commands == ["make system-deps", "make setup", "make test"]
    assert {"system-deps", "setup", "serve", "test"} <= _readme_make_targets()


def test_every_make_target_in_the_readme_exists() -> None:
    """Every `make X` that the README or a docs/ page tells a reader to run is a target of the Makefile."""
    targets = sorted(_make_targets(*_readme_and_docs()))
    result = subprocess.run(["make", "-n", *targets], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert ".venv/bin/pytest tests/" in result.stdout


def _relative_links(page: Path) -> list[str]:
    """The targets of the page's relative markdown links (not URLs, not same-page anchors, not in code blocks)."""
    text = FENCED_BLOCK.sub("", page.read_text())
    return [target for target in MARKDOWN_LINK.findall(text) if not EXTERNAL_LINK.match(target)]


def test_every_relative_link_in_the_readme_and_docs_resolves() -> None:
    """A page moved or renamed cannot leave a dead link in the README or in docs/."""
    dead = [
        f"{page.relative_to(REPO_ROOT)}: {target}"
        for page in _readme_and_docs()
        for target in _relative_links(page)
        if not (page.parent / target.split("#", 1)[0]).exists()
    ]
    assert not dead, dead
    linked = {(README.parent / target.split("#", 1)[0]).resolve() for target in _relative_links(README)}
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


# The Bento ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bento(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A Bento built as ``make build`` does, in a scratch store where each model's latest version is not promoted."""
    home = tmp_path_factory.mktemp("bento_home")
    shutil.copytree(model_store / "models", home / "models")
    for kind in REGISTRY.values():
        promoted = store_entry(kind.store_name, home=home)
        promote(str(promoted.tag), kind.name, home=home)
        save_to_store(Recommender.load(Path(promoted.path)), kind.store_name, home=home)  # newer, not promoted
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    bin_dir = Path(sys.executable).parent
    bentofile = home / "bentofile.yaml"
    subprocess.run(
        [str(bin_dir / "recipe-ml"), "bentofile", "--out", str(bentofile)], cwd=REPO_ROOT, env=env, check=True
    )
    result = subprocess.run(
        [str(bin_dir / "bentoml"), "build", "-f", str(bentofile), "-o", "tag", str(REPO_ROOT)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    name, version = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:").split(":")
    assert name == "recipe_ml_service"
    yield home / "bentos" / name / version
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.integration
def test_bento_dockerfile_installs_python_311_and_the_cpu_torch(bento: Path) -> None:
    dockerfile = (bento / "env/docker/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\b", dockerfile, flags=re.MULTILINE)
    install = dockerfile.index("pip install -r $BENTO_PATH/env/python/requirements.txt")
    assert -1 < dockerfile.find("ARG UV_TORCH_BACKEND=cpu") < install, "CPU torch backend must be set before install"
    requirements = (bento / "env/python/requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in requirements
    ours = [r for r in (REPO_ROOT / "requirements.txt").read_text().splitlines() if r and not r.startswith("#")]
    assert set(ours) <= set(requirements)


@pytest.mark.integration
def test_bento_holds_service_runners_consumer_and_models(bento: Path) -> None:
    src = bento / "src"
    for path in ("service.py", "runners", "recipe_ml/events/consumer.py", "training_artifacts/data/recipe_health.csv"):
        assert (src / path).exists(), path
    for path in ("tests", ".venv", "bentoml_home", "loadtests"):
        assert not (src / path).exists(), path
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert {m["tag"].split(":")[0] for m in meta["models"]} == MODEL_NAMES
    envs = {e["name"]: e["value"] for e in meta["envs"]}
    assert envs["OPENBLAS_NUM_THREADS"] == "1"
    assert envs["BENTOML_HOME"] == str(BENTO_SRC_IN_IMAGE.rsplit("/", 1)[0])  # the Bento's own store
    assert envs["PRECOMPUTE_EMBEDDINGS"] == "true"


@pytest.mark.integration
def test_the_bento_holds_the_promoted_versions_not_the_latest(bento: Path) -> None:
    """The tags ``bentoml containerize`` copies into the image (BentoML 1.4 resolves them from the store then)."""
    home = bento.parents[2]
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    promoted = {promoted_tag(kind.store_name, home=home) for kind in REGISTRY.values()}
    latest = {str(store_entry(kind.store_name, home=home).tag) for kind in REGISTRY.values()}
    assert {m["tag"] for m in meta["models"]} == promoted and not promoted & latest


@pytest.mark.integration
def test_consumer_command_resolves_inside_the_bento_source(bento: Path) -> None:
    """What compose's `python -m scripts.cli consume` imports from src/ is the Bento's copy."""
    code = "import importlib.util as u; print(u.find_spec('recipe_ml.events.consumer').origin)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=bento / "src", env=env, capture_output=True, text=True, check=True
    )
    assert Path(out.stdout.strip()) == bento / "src/recipe_ml/events/consumer.py"
