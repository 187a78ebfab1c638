"""Packaging and operations: the Bento, the compose stack, .env.example, the README's commands.

No Docker engine runs here, so the compose file is checked for the structure
that `docker compose up -d --scale api=3` relies on, and the Bento is built
for real and its generated Dockerfile and contents are inspected.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from edge.model_store import promote, promoted_tag, save_to_store, store_entry
from harness.net import free_port
from harness.pods import BENTO_IN_IMAGE, build_bento, image_env
from harness.server import UNSET_BY_DEFAULT
from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.models import REGISTRY
from recipe_ml.models.base import Recommender
from tests.fixtures.tools import REQUIRE_SYSTEM_TOOLS, apt_install, missing

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


def _has_compose_cli() -> bool:
    """A compose CLI that validates without an engine: the v2 plugin or docker-compose (what the Makefile picks)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return True
    return shutil.which("docker-compose") is not None


@pytest.fixture
def clean_tree(tmp_path: Path) -> Path:
    """What a fresh clone holds for compose: the Makefile, docker-compose.yml, deploy/ without secrets.env."""
    for name in ("Makefile", "docker-compose.yml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("secrets.env"))
    return tmp_path


@pytest.mark.integration
def test_compose_config_passes_on_a_clean_tree_and_keeps_its_secrets(clean_tree: Path) -> None:
    """`make compose-config` on a fresh clone: secrets.env written once, then validated by the compose CLI."""
    if not _has_compose_cli():
        missing("a compose CLI (docker compose or docker-compose)", apt_install("docker-compose"))

    first = subprocess.run(["make", "compose-config"], cwd=clean_tree, capture_output=True, text=True, check=False)
    written = (clean_tree / "deploy/secrets.env").read_text()
    again = subprocess.run(["make", "compose-config"], cwd=clean_tree, capture_output=True, text=True, check=False)

    assert first.returncode == 0, first.stdout + first.stderr
    assert again.returncode == 0 and "left as it is" in again.stdout, again.stdout + again.stderr
    assert (clean_tree / "deploy/secrets.env").read_text() == written
    assert (clean_tree / "deploy/secrets.env").stat().st_mode & 0o777 == 0o600
    assert not any(value in first.stdout for value in _env_file_values(clean_tree / "deploy/secrets.env").values())


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


def _published(port: str | int) -> tuple[str, str, str]:
    """A short-syntax port (``[[IP:]HOST_PORT:]CONTAINER_PORT``) as (host IP, host port, container port)."""
    parts = str(port).split(":")
    parts = ["", "", *parts] if len(parts) == 1 else ["", *parts] if len(parts) == 2 else parts
    return parts[0], parts[1], parts[2]


def test_api_scales_without_host_port_clash(services: dict[str, dict[str, Any]]) -> None:
    """`--scale api=3` fails if a replica binds a fixed host port."""
    api = services["api"]
    assert "container_name" not in api
    assert [_published(port) for port in api["ports"]] == [("127.0.0.1", "", "8000")], "an ephemeral host port"


def test_published_ports_are_bound_to_the_hosts_loopback(services: dict[str, dict[str, Any]]) -> None:
    """Kafka's host listener and Prometheus have no authentication: nothing is published beyond the host."""
    published = {name: [_published(port) for port in service.get("ports", [])] for name, service in services.items()}
    assert {name for name, ports in published.items() if ports} == {"api", "kafka", "prometheus", "grafana"}
    for name, ports in published.items():
        for host_ip, _, target in ports:
            assert host_ip == "127.0.0.1", f"{name} publishes {target} on every interface"


def test_containers_listen_on_every_interface_of_their_own(services: dict[str, dict[str, Any]]) -> None:
    """HOST defaults to loopback outside a container; inside one, Docker and Prometheus must reach the API."""
    for name in ("api", "consumer"):
        assert services[name]["environment"]["HOST"] == "0.0.0.0", name
    envs = {e["name"]: e["value"] for e in yaml.safe_load(BENTOFILE.read_text())["envs"]}
    assert envs["HOST"] == "0.0.0.0", "the Bento image serves on the container's interfaces"


def test_grafana_needs_a_login(services: dict[str, dict[str, Any]]) -> None:
    env = services["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert not any(key.startswith("GF_AUTH_ANONYMOUS_ORG") for key in env)


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


IMAGE_USERS = {"apache/kafka": "appuser", "prom/prometheus": "nobody", "grafana/grafana": "grafana"}
"""Images whose own USER is not root (the others set ``user:`` in the compose file)."""


def test_every_service_runs_unprivileged_without_capabilities(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service["image"].split(":")[0]
        user = str(service.get("user", IMAGE_USERS.get(image, "root")))
        assert user.split(":")[0] not in {"", "0", "root"}, f"{name} runs as root"
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"], name
    assert services["redis"]["user"] == "redis", "the image drops root only for a bare redis-server command"


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


@pytest.mark.integration
def test_the_secrets_file_is_git_ignored() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/secrets.env"], cwd=REPO_ROOT, capture_output=True, check=False
    )
    assert ignored.returncode == 0, "deploy/secrets.env must be git-ignored"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("service", "key", "variable"),
    [("redis", "command", "REDIS_PASSWORD"), ("grafana", "entrypoint", "GF_SECURITY_ADMIN_PASSWORD")],
)
@pytest.mark.parametrize("value", ["change-me-from-the-example", None])
def test_redis_and_grafana_refuse_the_example_password_naming_it(
    services: dict[str, dict[str, Any]], service: str, key: str, variable: str, value: str | None
) -> None:
    """Their start commands (run here by sh, as in the container) stop before the server, naming the variable."""
    shell, flag, script = services[service][key]
    env = {"PATH": os.environ["PATH"], **({variable: value} if value else {})}

    # Compose turns $$ into $ before the container runs the command.
    result = subprocess.run(
        [shell, flag, script.replace("$$", "$")], env=env, capture_output=True, text=True, check=False
    )

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"{variable}: unset or the change-me placeholder")
    assert value is None or value not in result.stderr


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
    for rules in config["rule_files"]:  # relative to the config file, in the repository as in the container
        assert mounts[f"/etc/prometheus/{rules}"] == mounts["/etc/prometheus/prometheus.yml"].parent / rules
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
    """`make setup` (the Debian packages too, as root) and `make test`, where a missing system tool fails."""
    ci_lines = (REPO_ROOT / ".ci/run").read_text().splitlines()
    ci_commands = [line.strip() for line in ci_lines if line.startswith("make ")]
    assert ci_commands == ["make setup", "make test"]
    assert f"export {REQUIRE_SYSTEM_TOOLS}=1" in ci_lines
    assert {"system-deps", "setup", "serve", "test"} <= _readme_make_targets()
    assert f"{REQUIRE_SYSTEM_TOOLS}=1" in README.read_text()


@pytest.mark.integration
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


def _listening_addresses(port: int) -> set[str]:
    return {
        conn.laddr.ip
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
    }


@pytest.fixture(scope="module")
def promoted_bento(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Bento built as ``make build`` does, from a store where each model's latest version is not the promoted one."""
    home = tmp_path_factory.mktemp("promoted_bento_home")
    shutil.copytree(model_store / "models", home / "models")
    for kind in REGISTRY.values():
        promoted = store_entry(kind.store_name, home=home)
        promote(str(promoted.tag), kind.name, home=home)
        save_to_store(Recommender.load(Path(promoted.path)), kind.store_name, home=home)  # newer, not promoted
    return build_bento(home, home / "models")


@pytest.mark.integration
def test_make_serve_listens_on_loopback_only(model_store: Path, tmp_path: Path) -> None:
    """BentoML's own default is every interface; `make serve` takes HOST, 127.0.0.1 unless it is set."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(model_store / "models", target_is_directory=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"HOST", *UNSET_BY_DEFAULT}}
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            ["make", "serve", f"PORT={port}"],
            cwd=REPO_ROOT,
            env={**env, "BENTOML_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not (addresses := _listening_addresses(port)) and serve.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(timeout=10)

    assert addresses == {"127.0.0.1"}, (tmp_path / "serve.log").read_text()[-3000:]


# The locks ------------------------------------------------------------------


LOCK = REPO_ROOT / "requirements.lock"
DEV_LOCK = REPO_ROOT / "requirements-dev.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*\\)?$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Package -> (version, hashes) of a pip-compile --generate-hashes file; a failure on any other line."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if match := PIN.match(stripped):
            current = []
            entries[_canonical(match.group(1))] = (match.group(2), current)
        else:
            assert stripped.startswith("--hash=sha256:"), f"{path.name}: not a pin or a hash: {line!r}"
            current.append(stripped.removeprefix("--hash=sha256:").rstrip(" \\"))
    return entries


def _direct_pins(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {_canonical(name): version for name, _, version in (line.partition("==") for line in lines if "==" in line)}


def test_the_locks_pin_every_package_with_its_hashes() -> None:
    for path in (LOCK, DEV_LOCK):
        locked = _locked(path)
        assert locked, path.name
        unhashed = [name for name, (_, hashes) in locked.items() if not hashes]
        assert not unhashed, f"{path.name}: no hash for {unhashed}"


def test_the_locks_hold_the_direct_pins_and_agree_with_each_other() -> None:
    runtime, dev = _locked(LOCK), _locked(DEV_LOCK)
    for pins, locked in ((_direct_pins(REPO_ROOT / "requirements.txt"), runtime),
                         (_direct_pins(REPO_ROOT / "requirements-dev.txt"), dev)):  # fmt: skip
        for name, version in pins.items():
            assert locked[name][0].split("+")[0] == version, f"{name}: pinned {version}, locked {locked[name][0]}"
    assert {name: entry[0] for name, entry in runtime.items()} == {name: dev[name][0] for name in runtime}
    assert runtime["torch"][0] == "2.13.0+cpu", "the CPU build of torch, not PyPI's CUDA one"
    assert not [name for name in runtime if name.startswith(("nvidia-cu", "nvidia-cudnn", "triton"))]


def test_the_environment_is_exactly_the_dev_lock() -> None:
    """`make install` installs the whole tree from requirements-dev.lock: nothing else, nothing different."""
    locked = {name: version for name, (version, _) in _locked(DEV_LOCK).items()}
    installed = {
        _canonical(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
        if _canonical(dist.metadata["Name"]) != "recipe-ml-backend"  # the project itself, `pip install -e .`
    }
    assert {
        name: (version, locked.get(name)) for name, version in installed.items() if locked.get(name) != version
    } == {}


@pytest.mark.integration
def test_make_install_and_the_bento_install_from_the_locks() -> None:
    install = subprocess.run(["make", "-n", "install"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert "pip install --require-hashes -r requirements-dev.lock" in install.stdout
    python = yaml.safe_load(BENTOFILE.read_text())["python"]
    assert python["requirements_txt"] == "./requirements.lock"
    assert python["lock_packages"] is False, "BentoML's own locking would replace the lock (and drop its hashes)"


# The Bento ------------------------------------------------------------------


@pytest.mark.integration
def test_bento_dockerfile_installs_python_311_and_the_cpu_torch(bento: Path) -> None:
    dockerfile = (bento / "env/docker/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\b", dockerfile, flags=re.MULTILINE)
    install = dockerfile.index("pip install -r $BENTO_PATH/env/python/requirements.txt")
    assert -1 < dockerfile.find("ARG UV_TORCH_BACKEND=cpu") < install, "CPU torch backend must be set before install"
    # BentoML appends its own pin, unhashed; the image's uv still checks the hashes of the lock's (same) pin.
    text = (bento / "env/python/requirements.txt").read_text().rstrip()
    appended = f"bentoml=={_locked(LOCK)['bentoml'][0]}"
    assert text.endswith(f"\n{appended}")
    copy = bento / "env/python/requirements-without-bentomls-line.txt"
    copy.write_text(text.removesuffix(appended))
    assert _locked(copy) == _locked(LOCK), "the Bento installs the lock, hashes included"


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
    assert envs["PRECOMPUTE_EMBEDDINGS"] == "true"


@pytest.mark.integration
def test_the_bento_holds_the_promoted_versions_not_the_latest(promoted_bento: Path) -> None:
    """The tags ``bentoml containerize`` copies into the image (BentoML 1.4 resolves them from the store then)."""
    home = promoted_bento.parents[2]
    meta = yaml.safe_load((promoted_bento / "bento.yaml").read_text())
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


@pytest.mark.integration
def test_the_local_pods_run_the_image_environment_and_entrypoint(bento: Path) -> None:
    """What ``harness.pods`` stands in for the image is what the generated Dockerfile sets."""
    dockerfile = (bento / "env/docker/Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, flags=re.MULTILINE))
    envs = {
        name: args.get(value[1:], value) if value.startswith("$") else value
        for name, value in re.findall(r"^ENV (\w+)=(\S+)$", dockerfile, flags=re.MULTILINE)
    }
    assert image_env().items() <= envs.items()
    assert envs["BENTO_PATH"] == BENTO_IN_IMAGE
    entrypoint = re.findall(r'^ENTRYPOINT \[ "([^"]+)" \]$', dockerfile, flags=re.MULTILINE)
    assert entrypoint == [f"{BENTO_IN_IMAGE}/env/docker/entrypoint.sh"]
    assert (bento / "env/docker/entrypoint.sh").is_file()


def test_compose_points_bentoml_home_at_the_bentos_model_store(services: dict[str, dict[str, Any]]) -> None:
    """The image's models are in the Bento, not under the image's BENTOML_HOME (found running the image layout)."""
    for name in ("api", "consumer"):
        assert services[name]["environment"]["BENTOML_HOME"] == BENTO_IN_IMAGE, name
