"""The containers of the rendered Kubernetes manifests (``deploy/k8s/``), run as local processes.

A stand-in for the kubelet on one machine, for the distributed-topology tests
and ``make bench-scale-out``: each container starts with the command, the
arguments and the environment its manifest gives it, read from
``kubectl kustomize`` output, never retyped. What a cluster provides and one
machine does not is translated, and only that:

- **the image**: the Bento built from this checkout (``build_bento``), run
  through its own entrypoint (``env/docker/entrypoint.sh``, the image's
  ENTRYPOINT) with the container's ``args``, under the environment the
  generated Dockerfile sets (``IMAGE_ENV``, checked against it by
  ``tests/test_packaging.py``); Python and the packages are this
  virtualenv's, first on ``PATH``, where the image has its own.
- **the filesystem**: each pod gets a directory that stands for the Bento
  (``/home/bentoml/bento``): the Bento's files linked in, shared, and a real
  empty directory for each ``emptyDir`` mounted below it; the ``/tmp`` mount
  is the pod's own ``TMPDIR``. ``models`` is linked to the model store the
  image would carry.
- **the network**: every ``host:port`` the caller maps (a Service's DNS name,
  an external broker) is replaced by its local address wherever it appears
  in the environment; an environment value equal to one of the container's
  ports (``PORT=8000``) becomes that port's local stand-in.
- **Secrets**: ``secretKeyRef`` values come from the caller (the Secret is not
  in the render); an optional key the caller lacks stays unset, as the
  kubelet leaves it. ``configMapRef`` values come from the rendered ConfigMap.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from harness.net import ProcessExitedError, free_port, wait_for_200
from recipe_ml.config import REPO_ROOT

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
BENTO_IN_IMAGE = "/home/bentoml/bento"
"""``BENTO_PATH`` of the Bento image: its WORKDIR, where the Bento's files are."""
TMP_IN_IMAGE = "/tmp"
IMAGE_ENV = {
    "BENTO_PATH": BENTO_IN_IMAGE,
    "BENTOML_HOME": "/home/bentoml/",
    "BENTOML_CONTAINERIZED": "true",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONIOENCODING": "UTF-8",
    "PYTHONUNBUFFERED": "1",
}
"""What the generated Dockerfile sets with ``ENV`` besides bentofile.yaml's ``envs`` (added by ``image_env``)."""
HOST_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
"""Kept from this machine's environment: OpenBLAS needs them on some processors (never changed here)."""
START_TIMEOUT_SECONDS = 180.0


def k8s_name(service: str) -> str:
    """The Deployment and Service of a BentoML service: its name with "-" for "_" (DNS labels allow no "_")."""
    return service.replace("_", "-")


class PodStartError(RuntimeError):
    """A container exited or never became ready; the message ends with its log."""


def render(overlay: str, kubectl: str) -> list[dict[str, Any]]:
    """The resources ``kubectl kustomize deploy/k8s/overlays/<overlay>`` renders."""
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S_DIR / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed: {done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def image_env() -> dict[str, str]:
    """The environment of the Bento image: ``IMAGE_ENV`` and bentofile.yaml's ``envs``."""
    bentofile = yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text())
    return {**IMAGE_ENV, **{env["name"]: str(env["value"]) for env in bentofile.get("envs", [])}}


def build_bento(home: Path, models: Path) -> Path:
    """``make build`` of this checkout into the store at ``home``, whose models are ``models``; the Bento's path."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(models, target_is_directory=True)
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    bentofile = home / "bentofile.yaml"  # as `make build`: the versions the store serves, not simply the latest
    recipe_ml_cli = Path(sys.executable).with_name("recipe-ml")
    subprocess.run([str(recipe_ml_cli), "bentofile", "--out", str(bentofile)], cwd=REPO_ROOT, env=env, check=True)
    bentoml = Path(sys.executable).with_name("bentoml")
    done = subprocess.run(
        [str(bentoml), "build", "-f", str(bentofile), "-o", "tag", str(REPO_ROOT)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bentoml build failed:\n{done.stdout}{done.stderr}")
    name, version = done.stdout.strip().splitlines()[-1].removeprefix("__tag__:").split(":")
    bento = home / "bentos" / name / version
    # What `bentoml containerize` adds to the image: the Bento's models, in its models/.
    (bento / "models").symlink_to(models, target_is_directory=True)
    return bento


@dataclass(frozen=True)
class Manifests:
    """Rendered resources, looked up by kind and name."""

    resources: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for resource in self.of_kind(kind):
            if resource["metadata"]["name"] == name:
                return resource
        raise LookupError(f"no {kind} {name!r} in the render")

    def container(self, deployment: str) -> dict[str, Any]:
        """The (only) container of ``deployment``'s pod template."""
        containers: list[dict[str, Any]] = self.get("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
        if len(containers) != 1:
            raise ValueError(f"{deployment}: expected one container, found {len(containers)}")
        return containers[0]

    def config_map(self, name: str) -> dict[str, str]:
        """The data of the ConfigMap ``name`` (Kustomize suffixes generated names with a hash)."""
        data: dict[str, str] = self.get("ConfigMap", name)["data"]
        return data

    def container_env(self, deployment: str, secrets: Mapping[str, str]) -> dict[str, str]:
        """The container's environment as the kubelet builds it: ``envFrom`` first, then ``env`` over it."""
        container = self.container(deployment)
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(self.config_map(source["configMapRef"]["name"]))
            else:
                raise ValueError(f"{deployment}: unsupported envFrom {source}")
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            ref = item["valueFrom"]["secretKeyRef"]
            if ref["key"] in secrets:
                env[item["name"]] = secrets[ref["key"]]
            elif not ref.get("optional", False):
                raise KeyError(f"{deployment}: {item['name']} needs key {ref['key']} of Secret {ref['name']}")
        return env


@dataclass
class Pod:
    """One replica of a Deployment, as a local process tree (see the module doc)."""

    manifests: Manifests
    deployment: str
    bento: Path
    root: Path
    hosts: Mapping[str, str] = field(default_factory=dict)
    """``host:port`` of the cluster -> ``127.0.0.1:port`` here."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    """Set over the container's environment (a fault a test injects); empty for a faithful pod."""
    ports: dict[int, int] = field(default_factory=dict)
    """Container port -> local port; free ports are picked for those not given."""
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        for port in self.manifests.container(self.deployment).get("ports", []):
            self.ports.setdefault(int(port["containerPort"]), free_port())

    @property
    def log_path(self) -> Path:
        return self.root / "pod.log"

    def url(self, container_port: int = 8000) -> str:
        return f"http://127.0.0.1:{self.ports[container_port]}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def _filesystem(self) -> tuple[Path, Path]:
        """The pod's stand-in for the Bento directory, and its /tmp (see the module doc)."""
        bento_dir, tmp = self.root / "bento", self.root / "tmp"
        shutil.rmtree(bento_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        bento_dir.mkdir(parents=True)
        tmp.mkdir()
        mounts = [m["mountPath"] for m in self.manifests.container(self.deployment).get("volumeMounts", [])]
        for mount in mounts:
            if mount == TMP_IN_IMAGE:
                continue
            if not mount.startswith(BENTO_IN_IMAGE + "/") or "/" in mount.removeprefix(BENTO_IN_IMAGE + "/"):
                raise ValueError(f"{self.deployment}: mount {mount} is not /tmp nor a directory of the Bento")
            (bento_dir / mount.removeprefix(BENTO_IN_IMAGE + "/")).mkdir()
        for entry in self.bento.iterdir():
            if not (bento_dir / entry.name).exists():
                (bento_dir / entry.name).symlink_to(entry)
        return bento_dir, tmp

    def _translate(self, value: str, bento_dir: Path) -> str:
        for remote, local in self.hosts.items():
            value = value.replace(remote, local)
        if value.startswith(BENTO_IN_IMAGE):
            value = str(bento_dir) + value.removeprefix(BENTO_IN_IMAGE)
        for container_port, local_port in self.ports.items():
            if value == str(container_port):
                value = str(local_port)
        return value

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        """The process's argv, environment and working directory."""
        container = self.manifests.container(self.deployment)
        if "command" in container:
            raise ValueError(f"{self.deployment}: `command` would replace the image's entrypoint")
        bento_dir, tmp = self._filesystem()
        declared = {**image_env(), **self.manifests.container_env(self.deployment, self.secrets)}
        env = {name: self._translate(value, bento_dir) for name, value in declared.items()}
        env.update({name: os.environ[name] for name in HOST_ENV if name in os.environ})
        env.update(PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin", HOME=str(self.root), TMPDIR=str(tmp))
        env.update(self.extra_env)
        workdir = self._translate(container.get("workingDir", BENTO_IN_IMAGE), bento_dir)
        argv = ["bash", str(bento_dir / "env" / "docker" / "entrypoint.sh"), *container.get("args", [])]
        return argv, env, Path(workdir)

    def start(self) -> Pod:
        argv, env, workdir = self.command()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_ready(self, path: str = "/readyz", container_port: int = 8000) -> Pod:
        """Return once ``path`` answers 200 (the readiness probe's), else raise ``PodStartError``."""
        assert self.process is not None, "start() first"
        try:
            if wait_for_200(self.url(container_port) + path, self.process, START_TIMEOUT_SECONDS):
                return self
        except ProcessExitedError as exc:
            raise PodStartError(f"{self.deployment} {exc}:\n{self.log_tail()}") from None
        self.stop()
        raise PodStartError(f"{self.deployment} not ready after {START_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        """End the pod as the kubelet ends a container: none of its processes is left.

        SIGTERM to the main process (its entrypoint's), SIGKILL to the whole
        tree after 20 s; with ``kill``, SIGKILL to the whole tree at once.
        The tree, not the process group: BentoML's workers run in sessions of
        their own and would go on serving on the socket they inherited.
        """
        if self.process is None:
            return
        try:
            tree = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree if kill else tree[:1]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=20)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)
        self.process.wait(timeout=10)


@dataclass
class Cluster:
    """A rendered overlay, the Bento, and the pods started from them on this machine."""

    manifests: Manifests
    bento: Path
    root: Path
    secrets: dict[str, str]
    hosts: dict[str, str]
    """Service ``host:port`` -> ``127.0.0.1:port``: the cluster's DNS as the pods registered so far make it."""
    pods: list[Pod] = field(default_factory=list)

    def pod(self, deployment: str, ports: dict[int, int] | None = None, extra_env: dict[str, str] | None = None) -> Pod:
        """A new replica of ``deployment`` (not started), seeing the Services registered so far."""
        pod = Pod(
            self.manifests,
            deployment,
            self.bento,
            self.root / f"{deployment}-{len(self.pods)}",
            hosts=dict(self.hosts),
            secrets=self.secrets,
            extra_env=extra_env or {},
            ports=dict(ports or {}),
        )
        self.pods.append(pod)
        return pod

    def register(self, deployment: str, local_port: int) -> None:
        """Make ``deployment``'s Service resolve to ``local_port`` for the pods created from now on."""
        service = self.manifests.get("Service", deployment)
        self.hosts[f"{deployment}:{service['spec']['ports'][0]['port']}"] = f"127.0.0.1:{local_port}"

    def settings(self, deployment: str) -> dict[str, str]:
        """The ConfigMap ``deployment``'s container reads its settings from."""
        [source] = [s for s in self.manifests.container(deployment).get("envFrom", []) if "configMapRef" in s]
        return self.manifests.config_map(source["configMapRef"]["name"])

    def stop(self) -> None:
        for pod in self.pods:
            pod.stop()
