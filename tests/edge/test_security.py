"""The security settings on a real server: TLS, API keys, CORS, Redis with a password (and over TLS).

Every measure is off by default (``tests/test_service.py`` runs the embedded
default); here ``secured`` switches them all on at once.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
import redis

from edge.model_store import load_from_store
from harness.redis_server import RedisServer
from harness.server import ServerStartError, start_local_server
from recipe_ml.storage import open_cache
from tests.edge.conftest import ALLOWED_ORIGIN, API_KEY, HEADER_TIMEOUT_SECONDS, REDIS_PASSWORD, SECOND_KEY, Secured
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
    assert folded.json()["model_used"] == "two_tower", "the runners still answer behind a TLS front"
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


# What an unauthenticated caller can still do to a secured server (issue 22) --------------------------


def worker_rss(secured: Secured) -> int:
    """Resident memory of the API worker (the process that answers every request first)."""
    return secured.server.rss_by_process()["recipe_ml_service"]


def test_unknown_paths_leave_the_metrics_and_the_worker_memory_flat(secured: Secured) -> None:
    """No metric label takes its value from the request: a stream of distinct paths grows nothing."""

    def probe(api: httpx.Client, count: int, length: int = 36) -> None:
        for _ in range(count):
            name = uuid.uuid4().hex.ljust(length, "x")
            assert api.get(f"/api/{name}").status_code == 401
            assert api.get(f"/{name}").status_code == 404

    with client(secured) as anonymous, client(secured, Authorization=f"Bearer {API_KEY}") as keyed:
        probe(anonymous, 100)  # the first requests' one-off allocations (pools, caches) are not growth
        size, rss = len(keyed.get("/api/metrics").content), worker_rss(secured)
        probe(anonymous, 1500)
        probe(anonymous, 50, length=15_000)
        exposition = keyed.get("/api/metrics")
        grown_size, grown_rss = len(exposition.content) - size, worker_rss(secured) - rss

    assert exposition.status_code == 200 and "recipe_api_requests_total" in exposition.text
    assert grown_size < 2_000, f"the exposition grew by {grown_size} bytes"
    assert grown_rss < 32 * 2**20, f"the API worker grew by {grown_rss / 2**20:.1f} MiB"
    assert "bentoml_" not in exposition.text, "BentoML's per-path HTTP series are off"


def test_no_route_serves_metrics_without_a_key(secured: Secured) -> None:
    """METRICS_REQUIRE_API_KEY is on: the root /metrics (no longer BentoML's) needs the key as /api/metrics does."""
    with client(secured) as anonymous:
        root, api = anonymous.get("/metrics"), anonymous.get("/api/metrics")
    with client(secured, Authorization=f"Bearer {API_KEY}") as keyed:
        root_with_key = keyed.get("/metrics")

    for response in (root, api):
        assert response.status_code == 401 and response.headers["content-type"] == "application/problem+json"
    assert root_with_key.status_code == 200 and "recipe_api_requests_total" in root_with_key.text
    assert "bentoml_" not in root_with_key.text


def test_errors_outside_api_are_problems_and_health_answers_head(secured: Secured) -> None:
    with client(secured) as anonymous:
        unknown = anonymous.get("/no-such-page")
        wrong_method = anonymous.post("/docs")
        head = anonymous.head("/api/health")

    for response, status in ((unknown, 404), (wrong_method, 405)):
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == status and response.json()["instance"] == response.request.url.path
    assert "/no-such-page" in unknown.json()["detail"]
    assert "GET" in wrong_method.headers["allow"]
    assert head.status_code == 200 and head.content == b"", "load balancers probe with HEAD"


def test_personal_answers_are_not_cached_or_sniffed(secured: Secured) -> None:
    with client(secured, Authorization=f"Bearer {API_KEY}") as api:
        answer = api.post("/api/recommendations/cold-start", json={"top_k": 2})
        docs = api.get("/docs")

    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store" and answer.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"


def test_control_characters_in_a_request_cannot_forge_a_log_line(secured: Secured) -> None:
    marker = uuid.uuid4().hex
    forged = f"2026-01-01T00:00:00+0000 [INFO] [entry_service:recipe_ml_service:1] FORGED-{marker}"
    with client(secured) as anonymous:
        anonymous.get("/api/x" + quote(f"\r\n{forged}", safe=""))
        anonymous.get("/api/nul" + quote(f"\x00{marker}", safe=""))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = secured.server.log_path.read_bytes()
        if log.count(marker.encode()) >= 2:  # both requests' access log lines are written
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the access log never showed the requests:\n{secured.server.log_tail()}")

    lines = log.decode(errors="replace").splitlines()
    assert not [line for line in lines if line.startswith(forged[:40])], "a request wrote a log entry of its own"
    assert any(f"\\x0d\\x0a{forged}" in line for line in lines), "the path is logged, escaped, on its line"
    assert b"\x00" not in log and f"\\x00{marker}" in log.decode(errors="replace")


def raw_connection(secured: Secured) -> ssl.SSLSocket:
    """A TLS connection to the server, for requests no HTTP client would send."""
    url = urlsplit(secured.base_url)
    assert url.hostname is not None and url.port is not None
    context = ssl.create_default_context(cafile=str(secured.cafile))
    return context.wrap_socket(
        socket.create_connection((url.hostname, url.port), timeout=15), server_hostname="127.0.0.1"
    )


def read_until_closed(connection: ssl.SSLSocket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection; a failure if it is still open at ``deadline``."""
    connection.settimeout(0.5)
    received = b""
    while time.monotonic() < deadline:
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            continue
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError):
            return received
        if not chunk:
            return received
        received += chunk
    pytest.fail(f"the server still holds the connection; it sent {received[:200]!r}")


def problem_answer(raw: bytes, status: int) -> dict[str, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head[:100]
    assert b"content-type: application/problem+json" in head.lower()
    problem: dict[str, object] = json.loads(body)
    assert problem["status"] == status
    return problem


def test_connections_that_never_finish_their_headers_are_closed_with_408(secured: Secured) -> None:
    connections = [raw_connection(secured) for _ in range(16)]
    for connection in connections:
        connection.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")

    deadline = time.monotonic() + HEADER_TIMEOUT_SECONDS + 60
    answers = [read_until_closed(connection, deadline) for connection in connections]

    for answer in answers:
        assert "headers not received" in str(problem_answer(answer, 408)["detail"])
    with client(secured) as api:
        assert api.get("/api/health").status_code == 200, "the server still answers everyone else"


@pytest.mark.parametrize("drip", [False, True], ids=["short-body", "slow-body"])
def test_a_body_that_does_not_arrive_is_a_408_problem(secured: Secured, drip: bool) -> None:
    """A Content-Length larger than what is sent, or a body sent a byte at a time: bounded, and a problem."""
    connection = raw_connection(secured)
    connection.sendall(
        b"POST /api/interactions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {API_KEY}\r\nContent-Length: 1000\r\n\r\n".encode()
        + b'{"userId": 1'
    )
    deadline = time.monotonic() + 90
    answer = b""
    while drip and not answer and time.monotonic() < deadline:
        try:
            connection.sendall(b" ")
        except OSError:  # answered and closed between two bytes: read what was answered
            break
        connection.settimeout(0.5)
        try:
            answer = connection.recv(65536)
        except TimeoutError:
            continue
    answer += read_until_closed(connection, deadline)

    assert "request body not received" in str(problem_answer(answer, 408)["detail"])


def test_a_malformed_request_is_a_400_problem(secured: Secured) -> None:
    connection = raw_connection(secured)
    connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    answer = read_until_closed(connection, time.monotonic() + 60)

    assert problem_answer(answer, 400)["title"] == "Bad Request"
