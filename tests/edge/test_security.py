"""The security settings on a real server: TLS, API keys, CORS, Redis with a password (and over TLS).

Every measure is off by default (``tests/test_service.py`` runs the embedded
default); here ``secured`` switches them all on at once.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis

from edge.model_store import load_from_store
from harness.redis_server import RedisServer
from harness.server import ServerStartError, start_local_server
from recipe_ml.storage import open_cache
from tests.edge.conftest import ALLOWED_ORIGIN, API_KEY, REDIS_PASSWORD, SECOND_KEY, Secured
from tests.fixtures.tls import self_signed

pytestmark = pytest.mark.integration


def client(secured: Secured, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=secured.base_url, verify=str(secured.cafile), headers=headers, timeout=15)


def test_the_api_speaks_tls_only_with_the_configured_certificate(secured: Secured, model_store: Path) -> None:
    recipes = [int(r) for r in load_from_store("recipe_popularity", home=model_store)[0].items.ids[:3]]
    with client(secured, Authorization=f"Bearer {API_KEY}") as api:
        health = api.get("/api/health")
        folded = api.post("/api/recommendations/cold-start", json={"top_k": 3, "recent_recipe_ids": recipes})
    plain = secured.base_url.replace("https://", "http://")

    assert secured.base_url.startswith("https://")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["redis"] == "ok", "REDIS_URL with the password must connect"
    assert folded.json()["model_used"] == "two_tower+ease", "the runners still answer behind a TLS front"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/api/health", timeout=5)
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate refuses it
        httpx.get(f"{secured.base_url}/api/health", timeout=5)


def test_api_keys_guard_every_route_but_health(secured: Secured) -> None:
    request = {"user_id": 880574, "top_k": 3}
    with client(secured) as anonymous:
        missing = anonymous.post("/api/recommendations/recipes", json=request)
        metrics = anonymous.get("/api/metrics")
        health = anonymous.get("/api/health")
    with client(secured, Authorization="Bearer not-a-key-0123456789") as wrong:
        invalid = wrong.post("/api/recommendations/cold-start", json={})
    with client(secured, Authorization=f"Bearer {API_KEY}") as bearer:
        by_bearer = bearer.post("/api/recommendations/cold-start", json={"top_k": 2})
        metrics_with_key = bearer.get("/api/metrics")
    with client(secured, **{"X-API-Key": SECOND_KEY}) as header:
        by_header = header.post("/api/recommendations/cold-start", json={"top_k": 2})

    for response in (missing, metrics, invalid):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:recipe-ml:problem:unauthorized"
    assert health.status_code == 200
    assert by_bearer.status_code == 200 and by_header.status_code == 200
    assert len(by_bearer.json()["recommendations"]) == 2
    assert metrics_with_key.status_code == 200 and "recipe_api_requests_total" in metrics_with_key.text


def test_keys_and_passwords_never_reach_the_log(secured: Secured) -> None:
    with client(secured, Authorization=f"Bearer {API_KEY}") as api:
        api.post("/api/recommendations/recipes", json={"user_id": 999_999_999})
        api.post("/api/recommendations/recipes", content=b"{not json")
    with client(secured, **{"X-API-Key": "wrong-key-0123456789abc"}) as wrong:
        wrong.get("/api/metrics")

    log = secured.server.log_tail(chars=2_000_000)
    assert "/api/recommendations/recipes" in log or "recipe_ml" in log, "the log is the server's"
    for secret in (API_KEY, SECOND_KEY, "wrong-key-0123456789abc", REDIS_PASSWORD):
        assert secret not in log


def test_cors_preflight_allows_the_configured_origin_only(secured: Secured) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with client(secured) as api:
        allowed = api.options("/api/recommendations/recipes", headers={"Origin": ALLOWED_ORIGIN, **preflight})
        refused = api.options("/api/recommendations/recipes", headers={"Origin": "https://evil.example", **preflight})
        simple = api.get("/api/health", headers={"Origin": ALLOWED_ORIGIN})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:recipe-ml:problem:cors-refused"
    assert "https://evil.example" in refused.json()["detail"] and "CORS_ALLOW_ORIGINS" in refused.json()["detail"]
    assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_redis_needs_its_password(password_redis: RedisServer) -> None:
    wrong_url = password_redis.url().replace(REDIS_PASSWORD, "not-the-password")
    good = open_cache(password_redis.url())
    wrong = open_cache(wrong_url)

    good.set("probe", b"1", 60)
    assert good.ping() and good.get("probe") == b"1"
    assert wrong.ping() is False and wrong.get("probe") is None  # degraded (a miss), never an error
    with pytest.raises(redis.AuthenticationError) as refused:
        redis.Redis.from_url(wrong_url).ping()
    assert REDIS_PASSWORD not in str(refused.value)


def test_rediss_with_a_password(tls_redis: str, tmp_path: Path) -> None:
    other_ca, _ = self_signed(tmp_path)
    cache = open_cache(tls_redis)
    untrusted = open_cache(tls_redis.replace(tls_redis.split("ssl_ca_certs=")[1], str(other_ca)))
    plaintext = open_cache(tls_redis.replace("rediss://", "redis://").split("?")[0])

    cache.set("probe", b"1", 60)
    assert cache.ping() and cache.get("probe") == b"1"
    assert untrusted.ping() is False, "a server certificate from another CA is refused"
    assert plaintext.ping() is False, "the TLS port speaks no plain Redis"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"SSL_CERTFILE": "/nonexistent/cert.pem", "SSL_KEYFILE": "/nonexistent/key.pem"}, "SSL_CERTFILE"),
        ({"SSL_CERTFILE": __file__, "SSL_KEYFILE": __file__}, "SSL_CERTFILE"),
        ({"API_KEYS": "Xq9-shortkey"}, "API_KEYS"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": "Zr7-kafka-secret"}, "KAFKA_SASL_MECHANISM"),
    ],
)
def test_a_bad_security_setting_stops_the_start_naming_it(
    env: dict[str, str], setting: str, model_store: Path, tmp_path: Path
) -> None:
    with pytest.raises(ServerStartError) as failed:
        start_local_server(model_store, tmp_path / "server.log", env=env, timeout_seconds=90)

    assert setting in str(failed.value)
    assert "Xq9-shortkey" not in str(failed.value) and "Zr7-kafka-secret" not in str(failed.value)
