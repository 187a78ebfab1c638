"""The /api app in-process: error bodies, API keys, the body limit, the BentoML config it builds.

What is answered before a route reaches the engine (validation, routing,
authentication, size) needs no model and no BentoML service, so it is tested
here on the real FastAPI app through ASGI; ``tests/test_service.py`` tests
the same app under ``bentoml serve``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from edge.app import create_app, create_docs_app, service_config
from edge.problems import MAX_ECHOED_CHARS, PROBLEM_JSON
from edge.routes.deps import get_engine
from recipe_ml.config import Settings
from recipe_ml.serving.schemas import MAX_LISTED_ERRORS
from tests.fixtures.tls import self_signed

KEY = "k" * 16 + "-first"
OTHER_KEY = "o" * 16 + "-second"


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg, arg-type]


def _no_engine() -> None:
    """These requests are answered before a route uses the engine: there is none (FastAPI's override)."""


def client(**overrides: object) -> httpx.AsyncClient:
    app = create_app(settings(**overrides))
    app.dependency_overrides[get_engine] = _no_engine
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://api")


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    assert body["instance"] == response.request.url.path
    return body


def fields(body: dict[str, object]) -> list[str]:
    errors = body["errors"]
    assert isinstance(errors, list)
    return [error["field"] for error in errors]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        # The classic cases run against the live server in tests/test_service.py; these are the new ones.
        ("/recommendations/recipes", b'{"user_id": 5,', 400, "body"),
        ("/recommendations/recipes", b'{"user_id": 5, "topk": 3}', 422, "topk"),
        ("/recommendations/recipes", b'{"user_id": 9007199254740992}', 422, "user_id"),
        ("/recommendations/recipes", b'{"user_id": 5, "include_recipe_ids": [1, "x"]}', 422, "include_recipe_ids.1"),
        ("/recommendations/similar-recipes", b'{"top_k": 3}', 422, "recipe_id"),
        ("/recommendations/similar-recipes", b'{"recipe_id": 5, "max_fsa_score": 2}', 422, "max_fsa_score"),
        ("/interactions", b'{"userId": "1", "recipeId": 2, "interactionType": "view"}', 422, "userId"),
        ("/interactions", b'{"userId": 1, "recipeId": 2, "interactionType": "cook", "rating": true}', 422, "rating"),
        # One id bound everywhere: what the recommendation routes refuse, an interaction cannot carry either.
        ("/interactions", b'{"userId": 9223372036854775808, "recipeId": 2, "interactionType": "view"}', 422, "userId"),
        ("/interactions", b'{"userId": 1, "recipeId": 9007199254740992, "interactionType": "view"}', 422, "recipeId"),
        ("/interactions", b'{"userId": ' + b"9" * 4001 + b', "recipeId": 2, "interactionType": "view"}', 422, "userId"),
        # Bodies the JSON parser refuses for other reasons than syntax are the same documented 400.
        ("/recommendations/recipes", b"[" * 10_000, 400, "body"),
        ("/recommendations/recipes", b'{"user_id": 5, "x": "\xff"}', 400, "body"),
        ("/recommendations/recipes", b'{"user_id": ' + b"1" * 5000 + b"}", 400, "body"),
        ("/interactions", b'{"userId": ' + b"1" * 5000 + b', "recipeId": 2, "interactionType": "view"}', 400, "body"),
    ],
)
async def test_invalid_requests_are_problems_naming_the_field(path: str, body: bytes, status: int, field: str) -> None:
    async with client() as api:
        response = await api.post(path, content=body, headers={"Content-Type": "application/json"})

    problem = assert_problem(response, status)
    assert problem["type"] == "urn:recipe-ml:problem:invalid-request"
    assert field in fields(problem) and field in str(problem["detail"])


@pytest.mark.anyio
async def test_a_body_is_json_whatever_its_content_type() -> None:
    """``curl -d`` sends a form Content-Type: the body is still read as JSON, as the API always did."""
    async with client() as api:
        response = await api.post(
            "/recommendations/recipes",
            content=b'{"user_id": 5, "top_k": 0}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    assert fields(assert_problem(response, 422)) == ["top_k"]


@pytest.mark.anyio
async def test_unknown_paths_and_methods_are_problems() -> None:
    async with client() as api:
        no_route = await api.post("/recommendations/nothing", json={})
        wrong_method = await api.get("/recommendations/recipes")
        delete = await api.delete("/health")

    assert "/recommendations/nothing" in str(assert_problem(no_route, 404)["detail"])
    assert assert_problem(wrong_method, 405)["type"] == "about:blank"
    assert wrong_method.headers["allow"] == "POST"
    assert_problem(delete, 405)
    assert delete.headers["allow"] == "GET"


@pytest.mark.anyio
async def test_api_keys_are_required_by_bearer_or_header_except_on_health() -> None:
    async with client(api_keys=f"{KEY}, {OTHER_KEY}") as api:
        missing = await api.post("/recommendations/recipes", json={"user_id": 5, "top_k": 0})
        wrong = await api.post("/recommendations/recipes", json={}, headers={"X-API-Key": "w" * 20})
        wrong_scheme = await api.post("/recommendations/recipes", json={}, headers={"Authorization": f"Basic {KEY}"})
        bearer = await api.post(
            "/recommendations/recipes", json={"user_id": 5, "top_k": 0}, headers={"Authorization": f"Bearer {KEY}"}
        )
        header = await api.post(
            "/recommendations/recipes", json={"user_id": 5, "top_k": 0}, headers={"X-API-Key": OTHER_KEY}
        )
        metrics = await api.get("/metrics")
        no_route = await api.get("/nothing")

    for response in (missing, wrong, wrong_scheme):
        problem = assert_problem(response, 401)
        assert problem["type"] == "urn:recipe-ml:problem:unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert KEY not in response.text and OTHER_KEY not in response.text
    assert "missing" in str(missing.json()["detail"]) and "invalid" in str(wrong.json()["detail"])
    # With a key the request reaches validation (which the keyless request never did).
    assert fields(assert_problem(bearer, 422)) == ["top_k"] and fields(assert_problem(header, 422)) == ["top_k"]
    assert metrics.status_code == 200, "metrics stay open unless METRICS_REQUIRE_API_KEY"
    assert_problem(no_route, 401)


@pytest.mark.anyio
async def test_metrics_can_require_the_key() -> None:
    async with client(api_keys=KEY, metrics_require_api_key=True) as api:
        closed = await api.get("/metrics")
        opened = await api.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})

    assert_problem(closed, 401)
    assert opened.status_code == 200 and "recipe_api_requests_total" in opened.text


@pytest.mark.anyio
async def test_without_api_keys_nothing_is_asked() -> None:
    async with client() as api:
        response = await api.post("/recommendations/recipes", json={"user_id": 5, "top_k": 0})

    assert fields(assert_problem(response, 422)) == ["top_k"]


async def _chunks(size: int, chunk: int = 4096) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        yield b" " * min(chunk, size - sent)
        sent += chunk


@pytest.mark.anyio
async def test_bodies_over_the_limit_are_413_problems() -> None:
    limit = 10_000
    async with client(max_request_bytes=limit) as api:
        declared = await api.post(
            "/recommendations/recipes", content=b" " * (limit + 1), headers={"Content-Type": "application/json"}
        )
        chunked = await api.post("/recommendations/recipes", content=_chunks(limit * 3))
        at_limit = await api.post(
            "/recommendations/recipes",
            content=b'{"user_id": 5, "top_k": 0}'.ljust(limit),
            headers={"Content-Type": "application/json"},
        )

    assert "content-length" not in chunked.request.headers
    for response in (declared, chunked):
        assert "MAX_REQUEST_BYTES" in str(assert_problem(response, 413)["detail"])
    assert fields(assert_problem(at_limit, 422)) == ["top_k"]


def test_service_config_is_bentomls_host_cors_and_ssl(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    plain = service_config(settings(port=8123))
    exposed = service_config(settings(host="0.0.0.0"))
    secured = service_config(
        settings(cors_allow_origins="https://app.example, https://admin.example", ssl_certfile=cert, ssl_keyfile=key)
    )

    # Loopback unless HOST says otherwise; BentoML's own per-path HTTP metrics always off.
    assert plain == {"http": {"host": "127.0.0.1", "port": 8123}, "metrics": {"enabled": False}}
    assert exposed["http"]["host"] == "0.0.0.0"
    cors = secured["http"]["cors"]
    assert cors["enabled"] is True
    assert cors["access_control_allow_origins"] == ["https://app.example", "https://admin.example"]
    assert {"Authorization", "X-API-Key", "Content-Type"} <= set(cors["access_control_allow_headers"])
    assert secured["ssl"] == {"enabled": True, "certfile": str(cert), "keyfile": str(key)}


@pytest.mark.anyio
async def test_an_error_body_is_never_much_larger_than_the_request() -> None:
    """60,000 unknown keys list 20 errors and count the rest; a huge key name comes back clipped."""
    many = b"{" + b", ".join(b'"k%d": 1' % i for i in range(60_000)) + b"}"
    huge_name = b'{"user_id": 5, "' + b"n" * 900_000 + b'": 1}'
    async with client() as api:
        listed = await api.post("/recommendations/recipes", content=many)
        clipped = await api.post("/recommendations/recipes", content=huge_name)
        long_path = await api.post("/" + "p" * 50_000, json={})

    problem = assert_problem(listed, 422)
    assert len(fields(problem)) == MAX_LISTED_ERRORS
    assert problem["errors_omitted"] == 60_001 - MAX_LISTED_ERRORS, "the 60,000 keys and the missing user_id"
    assert f"and {60_001 - MAX_LISTED_ERRORS} more" in str(problem["detail"])
    assert len(listed.content) < 8_000
    problem = assert_problem(clipped, 422)
    assert [len(field) for field in fields(problem)] == [MAX_ECHOED_CHARS]
    assert len(clipped.content) < 2_000
    assert long_path.status_code == 404 and len(long_path.content) < 1_000
    assert long_path.json()["instance"].endswith("\u2026")


@pytest.mark.anyio
async def test_every_api_answer_is_kept_out_of_caches_and_unsniffed() -> None:
    async with client(api_keys=KEY) as api:
        refused = await api.post("/recommendations/recipes", json={"user_id": 5})
        invalid = await api.post("/recommendations/recipes", json={"user_id": -1}, headers={"X-API-Key": KEY})
        unknown = await api.get("/nothing", headers={"X-API-Key": KEY})

    for response in (refused, invalid, unknown):
        assert response.headers["cache-control"] == "no-store", response.request.url
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.anyio
async def test_docs_page_runs_only_its_own_scripts_and_cannot_be_framed() -> None:
    transport = httpx.ASGITransport(app=create_docs_app(settings(api_keys=KEY, metrics_require_api_key=True)))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        page = await api.get("/docs")

    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'"
    inline = re.findall(rb"<script>(.*?)</script>", page.content, flags=re.DOTALL)
    assert len(inline) == 1, "Swagger UI's start-up call"
    digest = base64.b64encode(hashlib.sha256(inline[0]).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'", "exactly the page's own inline script may run"
    assert '"persistAuthorization": false' in page.text, "a key typed into Authorize stays out of localStorage"


@pytest.mark.anyio
@pytest.mark.parametrize("required", [True, False])
async def test_root_metrics_need_the_key_exactly_when_api_metrics_do(required: bool) -> None:
    """BentoML's own root /metrics is off; the root one serves the project's series under the same rule."""
    app = create_docs_app(settings(api_keys=KEY, metrics_require_api_key=required))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        anonymous = await api.get("/metrics")
        keyed = await api.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
        docs = await api.get("/docs")

    if required:
        assert_problem(anonymous, 401)
    else:
        assert anonymous.status_code == 200
    assert keyed.status_code == 200 and "recipe_api_requests_total" in keyed.text
    assert docs.status_code == 200, "the docs page never needs a key"
