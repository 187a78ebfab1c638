"""The catalogue routes over HTTP on the shared live server: bad input, last-write-wins, and the tag filters.

``PUT``/``GET /api/recipes/{recipe_id}`` and ``POST /api/recipes/bulk`` as a
client sends them, then what the records do to the recommendation routes
(``require_tags``, ``exclude_tags``, hidden recipes) and to ``/api/health``.
The engine's own tests (``tests/recipe_ml/serving/test_engine_catalogue.py``)
cover the filters down every link of the fallback chain; here it is the HTTP
contract: status codes, the fields a 422 names, what a body says.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from edge.app import create_app
from edge.model_store import load_from_store
from edge.problems import PROBLEM_JSON
from edge.routes.deps import get_engine
from harness.server import LocalServer
from recipe_ml.catalogue.records import MAX_TAG_LENGTH, MAX_TAGS, MAX_TITLE_LENGTH
from recipe_ml.config import Settings
from recipe_ml.events.schema import MAX_REQUEST_ID
from recipe_ml.models.base import Recommender
from tests.fixtures.models import known_user, training_history

pytestmark = pytest.mark.integration

BULK_LIMIT = Settings(_env_file=None).catalogue_bulk_limit  # type: ignore[call-arg]
"""The shared server runs with the default CATALOGUE_BULK_LIMIT."""
UNKNOWN_RECIPE = 10**12
"""No model knows it (the models' ids are Allrecipes ids, under a million)."""
NOBODY = "nobody:has-this-tag"
STAMP = "2026-12-01T09:30:00Z"


@pytest.fixture(scope="module")
def model(model_store: Path) -> Recommender:
    """The fixture store's popularity model: its users, recipes and training history."""
    return load_from_store("recipe_popularity", home=model_store)[0]


@pytest.fixture
def api(server: LocalServer, redis_url: str) -> Iterator[httpx.Client]:
    """A client of the shared server's /api, its Redis database (catalogue, cache, live state) emptied."""
    with httpx.Client(base_url=f"{server.base_url}/api", timeout=15) as client:
        # Version 0: no write since the flush; the server reads the store's version on every request.
        assert client.get("/health").json()["catalogue"] == {"recipes": 0, "hidden": 0, "version": 0, "folded_in": 0}
        yield client


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def named(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


def ids(body: dict[str, Any], key: str = "recommendations") -> list[int]:
    return [r["recipe_id"] for r in body[key]]


def catalogue(client: httpx.Client) -> dict[str, int]:
    counts: dict[str, int] = client.get("/health").json()["catalogue"]
    return counts


def ok(response: httpx.Response) -> dict[str, Any]:
    """The body of a 200 answer."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def put(client: httpx.Client, recipe_id: int, **fields: Any) -> dict[str, Any]:
    return ok(client.put(f"/recipes/{recipe_id}", json=fields))


def bulk(client: httpx.Client, records: list[dict[str, Any]]) -> dict[str, Any]:
    return ok(client.post("/recipes/bulk", json={"recipes": records}))


def recommend(client: httpx.Client, path: str, **request: Any) -> dict[str, Any]:
    return ok(client.post(f"/recommendations/{path}", json=request))


TOO_MANY_TAGS = [f"t{n}" for n in range(MAX_TAGS + 1)]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("put", "/recipes/5", {"tags": ["vegan"], "colour": "red"}, "colour"),
        ("put", "/recipes/5", {"tags": ["Vegan"]}, "tags.0"),
        ("put", "/recipes/5", {"tags": ["vegan", ""]}, "tags.1"),
        ("put", "/recipes/5", {"tags": ["-vegan"]}, "tags.0"),
        ("put", "/recipes/5", {"tags": ["a" * (MAX_TAG_LENGTH + 1)]}, "tags.0"),
        ("put", "/recipes/5", {"tags": TOO_MANY_TAGS}, "tags"),
        ("put", "/recipes/5", {"tags": "vegan"}, "tags"),
        ("put", "/recipes/5", {"title": "t" * (MAX_TITLE_LENGTH + 1)}, "title"),
        ("put", "/recipes/5", {"title": ""}, "title"),
        ("put", "/recipes/5", {"available": "false"}, "available"),
        ("put", "/recipes/5", {"available": 0}, "available"),
        ("put", "/recipes/5", {"updated_at": "yesterday"}, "updated_at"),
        ("put", f"/recipes/{MAX_REQUEST_ID + 1}", {}, "recipe_id"),
        ("put", "/recipes/-1", {}, "recipe_id"),
        ("put", "/recipes/abc", {}, "recipe_id"),
        ("put", "/recipes/1.5", {}, "recipe_id"),
        ("get", f"/recipes/{MAX_REQUEST_ID + 1}", None, "recipe_id"),
        ("get", "/recipes/abc", None, "recipe_id"),
        ("post", "/recipes/bulk", {"recipes": []}, "recipes"),
        ("post", "/recipes/bulk", {"recipes": {"recipe_id": 1}}, "recipes"),
        ("post", "/recipes/bulk", {"recipes": [{"recipe_id": 1}], "dry_run": True}, "dry_run"),
        ("post", "/recipes/bulk", {"recipes": [{"tags": ["vegan"]}]}, "recipes.0.recipe_id"),
        ("post", "/recipes/bulk", {"recipes": [{"recipe_id": "7"}]}, "recipes.0.recipe_id"),
        ("post", "/recipes/bulk", {"recipes": [{"recipe_id": MAX_REQUEST_ID + 1}]}, "recipes.0.recipe_id"),
        ("post", "/recipes/bulk", {"recipes": [{"recipe_id": 1, "colour": "red"}]}, "recipes.0.colour"),
        ("post", "/recommendations/recipes", {"user_id": 5, "require_tags": ["Peanut"]}, "require_tags.0"),
        ("post", "/recommendations/cold-start", {"exclude_tags": TOO_MANY_TAGS}, "exclude_tags"),
        ("post", "/recommendations/batch", {"user_ids": [5], "exclude_tags": "contains:peanut"}, "exclude_tags"),
        ("post", "/recommendations/similar-recipes", {"recipe_id": 5, "require_tags": [""]}, "require_tags.0"),
    ],
)
def test_invalid_catalogue_input_is_a_422_naming_the_field(
    server: LocalServer, method: str, path: str, body: dict[str, Any] | None, field: str
) -> None:
    with httpx.Client(base_url=f"{server.base_url}/api", timeout=15) as client:
        response = client.request(method, path, json=body)

    found = problem(response, 422)
    assert found["type"] == "urn:recipe-ml:problem:invalid-request"
    assert found["instance"] == f"/api{path}"
    assert any(name == field or name.endswith(f".{field}") for name in named(found)), named(found)
    assert field in found["detail"]


def _no_engine() -> None:
    """Answered before a route uses the engine: there is none (FastAPI's override)."""


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/recipes/5", "GET, PUT"),
        ("GET", "/recipes/bulk", "POST"),
        ("PUT", "/recipes/bulk", "POST"),
        ("DELETE", "/recipes/bulk", "POST"),
    ],
)
async def test_a_method_a_catalogue_path_does_not_serve_is_a_405_naming_those_it_does(
    method: str, path: str, allowed: str
) -> None:
    """``/recipes/bulk`` is no recipe id: a method it lacks is a 405, as on every other path, not a 422."""
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    app.dependency_overrides[get_engine] = _no_engine
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        response = await client.request(method, path, json={"recipes": [{"recipe_id": 0}]})

    assert problem(response, 405)["type"] == "about:blank"
    assert response.headers["allow"] == allowed


def test_the_largest_id_is_a_recipe_and_an_unknown_one_is_404_until_it_has_a_record(api: httpx.Client) -> None:
    missing = api.get(f"/recipes/{MAX_REQUEST_ID}")

    found = problem(missing, 404)
    assert found["recipe_id"] == MAX_REQUEST_ID and found["instance"] == f"/api/recipes/{MAX_REQUEST_ID}"
    written = put(api, MAX_REQUEST_ID, tags=["new"], title="A recipe the models never saw")
    assert written["applied"] is True and written["in_catalogue"] is True and written["known_to_models"] is False
    details = api.get(f"/recipes/{MAX_REQUEST_ID}")
    assert details.status_code == 200 and details.json()["tags"] == ["new"]


def test_a_recipe_the_models_know_without_a_record_is_described_anyway(api: httpx.Client, model: Recommender) -> None:
    recipe = int(model.items.ids[3])

    response = api.get(f"/recipes/{recipe}")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "recipe_id": recipe,
        "in_catalogue": False,
        "tags": [],
        "available": True,
        "published_at": None,
        "title": None,
        "updated_at": None,
        "known_to_models": True,
        "live_interactions": 0,
    }


def test_a_put_record_is_what_get_shows_with_the_live_interactions(api: httpx.Client, model: Recommender) -> None:
    recipe, user = int(model.items.ids[4]), known_user(model, 3)
    body = {
        "tags": ["vegan", "contains:peanut", "vegan"],
        "available": True,
        "published_at": "2026-11-30T08:00:00",  # naive = UTC
        "title": "Peanut noodles",
        "updated_at": "2026-12-01T10:30:00+01:00",
    }

    written = put(api, recipe, **body)
    event = {"userId": user, "recipeId": recipe, "interactionType": "like", "eventId": f"cat-{recipe}"}
    assert api.post("/interactions", json=event).status_code == 202
    shown = api.get(f"/recipes/{recipe}").json()

    assert written["applied"] is True and written["live_interactions"] == 0
    assert shown == {
        "recipe_id": recipe,
        "in_catalogue": True,
        "tags": ["contains:peanut", "vegan"],  # repeats count once
        "available": True,
        "published_at": "2026-11-30T08:00:00Z",
        "title": "Peanut noodles",
        "updated_at": "2026-12-01T09:30:00Z",
        "known_to_models": True,
        "live_interactions": 1,
    }


def test_the_same_put_twice_changes_the_catalogue_once(api: httpx.Client, model: Recommender) -> None:
    recipe, unstamped = int(model.items.ids[5]), int(model.items.ids[8])
    body = {"tags": ["vegetarian"], "available": False, "updated_at": STAMP}

    first = put(api, recipe, **body)
    version = catalogue(api)["version"]
    second = put(api, recipe, **body)
    version_after_second = catalogue(api)["version"]
    put(api, unstamped, tags=["vegan"])
    version_with_both = catalogue(api)["version"]
    put(api, unstamped, tags=["vegan"])  # updated_at = when received: a later write, but the same filters

    assert first["applied"] is True and second["applied"] is False
    assert {k: v for k, v in second.items() if k != "applied"} == {k: v for k, v in first.items() if k != "applied"}
    assert 0 < version == version_after_second < version_with_both
    assert catalogue(api) == {"recipes": 2, "hidden": 1, "version": version_with_both, "folded_in": 0}


def test_an_older_write_after_a_newer_one_changes_nothing(api: httpx.Client, model: Recommender) -> None:
    recipe = int(model.items.ids[6])

    newer = put(api, recipe, tags=["newer"], updated_at="2026-12-02T00:00:00")  # naive = UTC
    older = put(api, recipe, tags=["older"], available=False, updated_at="2026-12-02T01:00:00+02:00")  # 23:00Z

    assert newer["applied"] is True
    assert older["applied"] is False and older["tags"] == ["newer"] and older["available"] is True
    shown = api.get(f"/recipes/{recipe}").json()
    assert shown["tags"] == ["newer"] and shown["updated_at"] == "2026-12-02T00:00:00Z"
    assert catalogue(api)["hidden"] == 0


def test_a_bulk_over_the_limit_is_a_422_naming_recipes_and_at_the_limit_is_applied(api: httpx.Client) -> None:
    records = [{"recipe_id": UNKNOWN_RECIPE + n, "tags": ["bulk"]} for n in range(BULK_LIMIT + 1)]

    over = api.post("/recipes/bulk", json={"recipes": records})

    assert named(problem(over, 422)) == ["recipes"]
    assert "CATALOGUE_BULK_LIMIT" in problem(over, 422)["errors"][0]["message"]
    assert catalogue(api)["recipes"] == 0
    problem(api.get(f"/recipes/{UNKNOWN_RECIPE}"), 404)
    at_limit = bulk(api, records[:BULK_LIMIT])
    assert at_limit["applied"] == BULK_LIMIT and at_limit["stale"] == 0
    assert [r["recipe_id"] for r in at_limit["results"]] == [r["recipe_id"] for r in records[:BULK_LIMIT]]
    assert catalogue(api)["recipes"] == BULK_LIMIT


def test_one_invalid_record_refuses_the_whole_bulk(api: httpx.Client, model: Recommender) -> None:
    recipes = [int(r) for r in model.items.ids[10:15]]
    records: list[dict[str, Any]] = [{"recipe_id": r, "tags": ["batch-a"], "available": False} for r in recipes]
    records[3] = {**records[3], "tags": ["batch-a", "Batch-B"]}

    refused = api.post("/recipes/bulk", json={"recipes": records})

    assert named(problem(refused, 422)) == ["recipes.3.tags.1"]
    assert catalogue(api) == {"recipes": 0, "hidden": 0, "version": 0, "folded_in": 0}
    for recipe in recipes:
        assert api.get(f"/recipes/{recipe}").json()["in_catalogue"] is False, recipe
    records[3] = {**records[3], "tags": ["batch-b"]}
    records.append({**records[0], "tags": ["batch-z"], "updated_at": "2000-01-01T00:00:00Z"})  # older: stale
    written = bulk(api, records)
    assert written["applied"] == 5 and written["stale"] == 1
    assert [r["applied"] for r in written["results"]] == [True] * 5 + [False]
    assert catalogue(api)["hidden"] == 5 and api.get(f"/recipes/{recipes[0]}").json()["tags"] == ["batch-a"]


def test_a_tag_nobody_has_matches_nothing_on_every_route(api: httpx.Client, model: Recommender) -> None:
    user, recipe = known_user(model, 4), int(model.items.ids[0])
    put(api, recipe, tags=["somebody"])  # a catalogue that is not empty
    require = {"require_tags": [NOBODY], "top_k": 5}

    answers = [
        recommend(api, "recipes", user_id=user, **require),
        recommend(api, "cold-start", **require),
        recommend(api, "cold-start", recent_recipe_ids=[recipe], **require),
        recommend(api, "batch", user_ids=[user], **require)["results"][0],
    ]
    similar = recommend(api, "similar-recipes", recipe_id=recipe, **require)

    for answer in answers:
        assert answer["recommendations"] == [] and answer["exhausted"] is True, answer
    assert similar["similar_recipes"] == [] and similar["exhausted"] is True, similar


def test_require_tags_on_three_recipes_returns_only_those(api: httpx.Client, model: Recommender) -> None:
    user = known_user(model, 5)
    seen = training_history(model, user)
    three = [int(r) for r in model.items.ids[20:] if int(r) not in seen][:3]
    bulk(api, [{"recipe_id": r, "tags": ["diet:three", "vegan"]} for r in three])
    put(api, int(model.items.ids[0]), tags=["vegan"])  # has one of the two tags only

    personal = recommend(api, "recipes", user_id=user, top_k=10, require_tags=["vegan", "diet:three"])
    trending = recommend(api, "cold-start", top_k=10, require_tags=["diet:three"])
    exact = recommend(api, "cold-start", top_k=3, require_tags=["diet:three"])
    fewer = recommend(api, "cold-start", top_k=10, require_tags=["diet:three"], exclude_recipe_ids=three[:1])

    assert 0 < len(ids(personal)) <= 3 and set(ids(personal)) <= set(three) and personal["exhausted"] is True
    assert sorted(ids(trending)) == sorted(three) and trending["exhausted"] is True
    assert sorted(ids(exact)) == sorted(three) and exact["exhausted"] is False
    assert sorted(ids(fewer)) == sorted(three[1:]) and fewer["exhausted"] is True


def test_an_unknown_excluded_tag_changes_nothing(api: httpx.Client, model: Recommender) -> None:
    user = known_user(model, 6)
    plain = recommend(api, "recipes", user_id=user, top_k=8)

    filtered = recommend(api, "recipes", user_id=user, top_k=8, exclude_tags=[NOBODY])

    assert filtered["cached"] is False, "another request: another key"
    assert ids(filtered) == ids(plain) and len(ids(plain)) == 8
    assert plain["exhausted"] is filtered["exhausted"] is False


def test_hiding_a_recipe_counts_it_in_health_and_takes_it_out_of_answers(api: httpx.Client, model: Recommender) -> None:
    user = known_user(model, 7)
    before = recommend(api, "recipes", user_id=user, top_k=5)
    top = ids(before)[0]
    assert recommend(api, "recipes", user_id=user, top_k=5)["cached"] is True

    put(api, top, available=False, updated_at="2026-12-01T00:00:00Z")
    hidden = catalogue(api)
    after = recommend(api, "recipes", user_id=user, top_k=5)
    put(api, top, available=True, updated_at="2026-12-01T00:00:01Z")
    shown = catalogue(api)
    back = recommend(api, "recipes", user_id=user, top_k=5)

    assert hidden["recipes"] == 1 and hidden["hidden"] == 1 and hidden["version"] > 0
    assert top not in ids(after) and after["cached"] is False and len(ids(after)) == 5
    assert shown["recipes"] == 1 and shown["hidden"] == 0 and shown["version"] > hidden["version"]
    assert ids(back) == ids(before) and back["cached"] is False


def test_a_catalogue_rebuilt_after_redis_lost_its_data_is_the_one_filtered_with(
    api: httpx.Client, test_redis_url: str, model: Recommender
) -> None:
    """Redis flushed (a restart without persistence) and the first write after it: the server filters with
    the new catalogue, never with the view it holds of the lost one (a version counter restarting at 0 gave the
    first write after the loss the version of that view)."""
    lost, rebuilt = (int(r) for r in model.items.ids[30:32])
    put(api, lost, tags=["diet:rebuilt"])
    assert ids(recommend(api, "cold-start", require_tags=["diet:rebuilt"])) == [lost]  # the server's view
    redis.Redis.from_url(test_redis_url).flushdb()
    put(api, rebuilt, tags=["diet:rebuilt"])  # no request in between: the server still holds the lost view

    assert ids(recommend(api, "cold-start", require_tags=["diet:rebuilt"])) == [rebuilt]
