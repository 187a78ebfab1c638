"""Kafka SASL / SSL settings: validated at start-up, passed to every kafka-python client.

tansu (the local broker) speaks PLAINTEXT only, so the secured handshake
itself is not exercised here; what is: incomplete settings are refused naming
the variable, kafka-python accepts the options as built, and a consumer
configured for SASL does not silently fall back to PLAINTEXT against a
broker that offers no SASL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from pydantic import ValidationError

from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.consumer import Backoff, InteractionConsumer, kafka_security_config
from recipe_ml.storage import open_cache, open_interaction_store
from tests.fixtures.kafka import TansuBroker, wait_until

PASSWORD = "kafka-secret-0123456789"


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg, arg-type]


def sasl_ssl(cafile: Path) -> Settings:
    return settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="recipe-ml",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=cafile,
    )


def test_plaintext_is_the_default() -> None:
    assert kafka_security_config(settings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_settings_become_kafka_python_options(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text("-----BEGIN CERTIFICATE-----\n")

    config = kafka_security_config(sasl_ssl(cafile))

    assert config == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "recipe-ml",
        "sasl_plain_password": PASSWORD,
        "ssl_check_hostname": True,
        "ssl_cafile": str(cafile),
    }
    assert PASSWORD not in repr(sasl_ssl(cafile)), "the password never shows in the settings' repr"


def test_kafka_python_clients_take_the_options(tmp_path: Path) -> None:
    """Every key is a real option of KafkaConsumer and KafkaProducer (an unknown one raises)."""
    config = kafka_security_config(
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="recipe-ml",
            kafka_sasl_password=PASSWORD,
        )
    )
    # api_version given: the clients are built without contacting a broker.
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(2, 5), **config)
    producer = KafkaProducer(bootstrap_servers="127.0.0.1:1", api_version=(2, 5), **config)
    try:
        for client_config in (consumer.config, producer.config):
            assert client_config["security_protocol"] == "SASL_PLAINTEXT"
            assert client_config["sasl_mechanism"] == "PLAIN"
            assert client_config["sasl_plain_username"] == "recipe-ml"
    finally:
        consumer.close()
        producer.close(timeout=1)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u"},
            "KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_sasl_username": "u", "kafka_sasl_password": PASSWORD}, "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT"),
        ({"kafka_ssl_cafile": __file__}, "KAFKA_SSL_CAFILE needs KAFKA_SECURITY_PROTOCOL=SSL"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
    ],
)
def test_bad_combinations_are_refused_naming_the_setting(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(**overrides)

    assert named in str(refused.value)
    assert PASSWORD not in str(refused.value)


@pytest.mark.integration
def test_a_sasl_consumer_never_falls_back_to_plaintext(
    kafka_broker: TansuBroker, unique_name: Callable[[str], str], redis_url: str
) -> None:
    """Against a PLAINTEXT broker a SASL client fails its handshake and keeps retrying; it joins nothing."""
    secured = settings(
        redis_url=redis_url,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        kafka_topic=unique_name("interactions"),
        kafka_group_id=unique_name("group"),
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="recipe-ml",
        kafka_sasl_password=PASSWORD,
    )
    applier = EventApplier(open_interaction_store(redis_url), open_cache(redis_url))
    consumer = InteractionConsumer(
        secured, applier, backoff=Backoff(initial_seconds=0.05, max_seconds=0.2), bootstrap_timeout_ms=500
    )
    joined: list[bool] = []
    thread = threading.Thread(target=lambda: joined.append(consumer.connect()), daemon=True)
    thread.start()
    try:
        registry = consumer.metrics.registry
        retries = "recipe_consumer_connection_retries_total"
        wait_until(lambda: (registry.get_sample_value(retries) or 0) >= 2, 60, "SASL handshake retried")
    finally:
        consumer.stop()
        thread.join(timeout=30)
    consumer.close()

    assert joined == [False], "connect() gave up only because it was stopped"


@pytest.mark.integration
def test_the_consumer_process_refuses_incomplete_sasl_settings(redis_url: str) -> None:
    env = {key: val for key, val in os.environ.items() if not key.startswith("KAFKA_")}
    env.update(
        REDIS_URL=redis_url,
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_USERNAME="recipe-ml",
        KAFKA_SASL_PASSWORD=PASSWORD,
    )

    result = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "consume"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=60
    )

    assert result.returncode != 0
    assert b"KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM" in result.stderr
    assert PASSWORD.encode() not in result.stderr + result.stdout
