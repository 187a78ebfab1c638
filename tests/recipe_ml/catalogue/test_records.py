"""The catalogue record models: the HTTP bodies (strict, snake_case) and the ``recipes`` topic's record."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from recipe_ml.catalogue.records import (
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_TITLE_LENGTH,
    RecipeFields,
    RecipeUpsert,
    parse_recipe_event,
    records_of,
)
from recipe_ml.events.schema import MAX_REQUEST_ID, InvalidEvent
from recipe_ml.storage.base import RecipeRecord

RECEIVED = datetime(2026, 12, 2, 12, 0, 0, 250_000, tzinfo=UTC)
PUBLISHED = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
UPDATED = datetime(2026, 12, 1, 9, 30, 0, 123_456, tzinfo=UTC)


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time 5:45 east of UTC, so that a naive time read as local time shows."""
    monkeypatch.setenv("TZ", "XYZ-05:45")
    time.tzset()
    assert datetime(2026, 1, 1).timestamp() != datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    yield
    monkeypatch.undo()
    time.tzset()


def test_tags_are_deduplicated_and_sorted() -> None:
    fields = RecipeFields(tags=["vegetarian", "course:dessert", "vegetarian", "contains:peanut"])
    assert fields.record(1, RECEIVED).tags == ("contains:peanut", "course:dessert", "vegetarian")
    raw = json.dumps({"recipeId": 1, "tags": ["b", "a", "b", "a"]}).encode()
    assert parse_recipe_event(raw, RECEIVED).tags == ("a", "b")


def test_a_record_carries_every_field_as_epoch_seconds() -> None:
    body = {
        "recipe_id": 10813,
        "tags": ["vegetarian"],
        "available": False,
        "published_at": "2026-11-30T08:00:00Z",
        "title": "Peanut butter brownies",
        "updated_at": "2026-12-01T09:30:00.123456Z",
    }
    [record] = records_of([RecipeUpsert.model_validate(body)], RECEIVED)
    assert record == RecipeRecord(
        10813, ("vegetarian",), False, PUBLISHED.timestamp(), "Peanut butter brownies", UPDATED.timestamp()
    )
    assert record.stamp == round(UPDATED.timestamp() * 1_000_000), "microseconds kept"


def test_defaults_are_available_untagged_untitled_unpublished() -> None:
    assert RecipeFields(tags=[]).record(5, RECEIVED) == RecipeRecord(5, (), True, None, None, RECEIVED.timestamp())


def test_naive_datetimes_are_read_as_utc(local_time_not_utc: None) -> None:
    fields = RecipeFields.model_validate({"published_at": "2026-11-30T08:00:00", "updated_at": "2026-12-01T09:30:00"})
    assert fields.published_at == PUBLISHED
    assert fields.updated_at == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    record = fields.record(1, RECEIVED)
    assert record.published_at == PUBLISHED.timestamp()
    assert record.updated_at == datetime(2026, 12, 1, 9, 30, tzinfo=UTC).timestamp()

    event = parse_recipe_event(b'{"recipeId": 1, "publishedAt": "2026-11-30T08:00:00"}', RECEIVED)
    assert event.published_at == PUBLISHED.timestamp()


def test_an_offset_is_kept() -> None:
    fields = RecipeFields(published_at=datetime(2026, 11, 30, 9, 0, tzinfo=timezone(timedelta(hours=1))))
    assert fields.record(1, RECEIVED).published_at == PUBLISHED.timestamp()


def test_a_missing_updated_at_takes_received_at() -> None:
    assert RecipeFields(title="t").record(1, RECEIVED).updated_at == RECEIVED.timestamp()
    assert RecipeFields(updated_at=UPDATED).record(1, RECEIVED).updated_at == UPDATED.timestamp()
    assert parse_recipe_event(b'{"recipeId": 1, "tags": []}', RECEIVED).updated_at == RECEIVED.timestamp()


def test_records_of_keeps_each_upserts_id_in_order() -> None:
    upserts = [RecipeUpsert(recipe_id=2, tags=["a"]), RecipeUpsert(recipe_id=1, available=True)]
    records = records_of(upserts, RECEIVED)
    assert [(record.recipe_id, record.tags) for record in records] == [(2, ("a",)), (1, ())]
    assert records_of([], RECEIVED) == []


def test_the_bounds_themselves_are_accepted() -> None:
    fields = RecipeFields(
        tags=[f"t{n}" for n in range(MAX_TAGS - 1)] + ["a" * MAX_TAG_LENGTH], title="x" * MAX_TITLE_LENGTH
    )
    assert len(fields.record(1, RECEIVED).tags) == MAX_TAGS
    assert fields.title is not None and len(fields.title) == MAX_TITLE_LENGTH
    assert RecipeUpsert(recipe_id=MAX_REQUEST_ID, tags=[]).recipe_id == MAX_REQUEST_ID
    assert RecipeUpsert(recipe_id=0, tags=["0-9:._-x"]).tags == ["0-9:._-x"]


FIELD_ERRORS: list[tuple[dict[str, Any], tuple[str | int, ...]]] = [
    ({"tgas": ["vegan"]}, ("tgas",)),
    ({"tags": ["Vegan"]}, ("tags", 0)),
    ({"tags": ["vegan", ""]}, ("tags", 1)),
    ({"tags": ["-vegan"]}, ("tags", 0)),
    ({"tags": ["gluten free"]}, ("tags", 0)),
    ({"tags": ["a" * (MAX_TAG_LENGTH + 1)]}, ("tags", 0)),
    ({"tags": [f"t{n}" for n in range(MAX_TAGS + 1)]}, ("tags",)),
    ({"tags": "vegan"}, ("tags",)),
    ({"title": "x" * (MAX_TITLE_LENGTH + 1)}, ("title",)),
    ({"title": ""}, ("title",)),
    ({"available": "yes"}, ("available",)),
    ({"updated_at": "yesterday"}, ("updated_at",)),
]


@pytest.mark.parametrize(("body", "loc"), FIELD_ERRORS)
def test_the_http_fields_refuse_naming_the_field(body: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    for model, full in ((RecipeFields, body), (RecipeUpsert, {"recipe_id": 1, **body})):
        with pytest.raises(ValidationError) as raised:
            model.model_validate(full)
        assert [error["loc"] for error in raised.value.errors()] == [loc], model.__name__


@pytest.mark.parametrize("recipe_id", [True, False, "5", 5.0, -1, MAX_REQUEST_ID + 1, None])
def test_the_http_upsert_refuses_a_recipe_id_that_is_not_one(recipe_id: object) -> None:
    with pytest.raises(ValidationError) as raised:
        RecipeUpsert.model_validate({"recipe_id": recipe_id, "tags": ["vegan"]})
    assert [error["loc"] for error in raised.value.errors()] == [("recipe_id",)]


def test_the_http_upsert_requires_a_recipe_id_and_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError) as raised:
        RecipeUpsert.model_validate({"tags": ["vegan"], "recipeId": 1})
    assert sorted(error["loc"] for error in raised.value.errors()) == [("recipeId",), ("recipe_id",)]


def test_the_http_upsert_reads_a_json_body() -> None:
    raw = b'{"recipe_id": 3, "tags": ["b", "a"], "updated_at": "2026-12-01T09:30:00.123456Z"}'
    assert RecipeUpsert.model_validate_json(raw).record(3, RECEIVED) == RecipeRecord(
        3, ("a", "b"), True, None, None, UPDATED.timestamp()
    )
    with pytest.raises(ValidationError) as raised:
        RecipeUpsert.model_validate_json(b'{"recipe_id": "3"}')
    assert [error["loc"] for error in raised.value.errors()] == [("recipe_id",)]


EXPECTED_EVENT = RecipeRecord(7, ("a", "b"), False, PUBLISHED.timestamp(), "T", UPDATED.timestamp())


def test_a_recipe_event_is_read_in_camel_case() -> None:
    raw = json.dumps(
        {
            "recipeId": 7,
            "tags": ["b", "a"],
            "available": False,
            "publishedAt": "2026-11-30T08:00:00Z",
            "title": "T",
            "updatedAt": "2026-12-01T09:30:00.123456Z",
        }
    ).encode()
    assert parse_recipe_event(raw, RECEIVED) == EXPECTED_EVENT


def test_a_recipe_event_is_read_in_snake_case() -> None:
    raw = json.dumps(
        {
            "recipe_id": 7,
            "tags": ["b", "a"],
            "available": False,
            "published_at": "2026-11-30T08:00:00Z",
            "title": "T",
            "updated_at": "2026-12-01T09:30:00.123456Z",
        }
    ).encode()
    assert parse_recipe_event(raw, RECEIVED) == EXPECTED_EVENT


def test_a_recipe_event_ignores_unknown_fields() -> None:
    raw = json.dumps(
        {
            "recipeId": 7,
            "tags": ["b", "a"],
            "available": False,
            "publishedAt": "2026-11-30T08:00:00Z",
            "title": "T",
            "updatedAt": "2026-12-01T09:30:00.123456Z",
            "cuisine": "thai",
            "author": {"id": 3},
        }
    ).encode()
    assert parse_recipe_event(raw, RECEIVED) == EXPECTED_EVENT


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"recipeId": 1, "tags": ["Vegan"]}, "tags.0"),
        ({"recipeId": 1, "tags": ["vegan", "a" * (MAX_TAG_LENGTH + 1)]}, "tags.1"),
        ({"recipeId": 1, "tags": [f"t{n}" for n in range(MAX_TAGS + 1)]}, "tags"),
        ({"recipeId": 1, "title": "x" * (MAX_TITLE_LENGTH + 1)}, "title"),
        ({"recipeId": 1, "updatedAt": "yesterday"}, "updatedAt"),
        ({"recipeId": 1, "publishedAt": "soon"}, "publishedAt"),
        ({"recipeId": 1, "available": "no"}, "available"),
        ({"recipeId": True}, "recipeId"),
        ({"recipeId": "1"}, "recipeId"),
        ({"recipeId": MAX_REQUEST_ID + 1}, "recipeId"),
        ({"tags": ["vegan"]}, "recipeId"),
    ],
)
def test_an_invalid_recipe_event_says_which_field(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        parse_recipe_event(json.dumps(fields).encode(), RECEIVED)
    assert raised.value.reason.startswith("validation failed: ")
    assert [part.split(": ")[0] for part in raised.value.reason.removeprefix("validation failed: ").split("; ")] == [
        named
    ]


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b'{"recipeId": 1,}', b"recipeId=1"])
def test_bytes_that_are_not_json_are_invalid_json(raw: bytes) -> None:
    with pytest.raises(InvalidEvent) as raised:
        parse_recipe_event(raw, RECEIVED)
    assert raised.value.reason.startswith("Invalid JSON")


def test_a_record_naming_no_field_is_refused_so_an_empty_body_wipes_nothing() -> None:
    for model, body in ((RecipeFields, {}), (RecipeUpsert, {"recipe_id": 5})):
        with pytest.raises(ValidationError, match="names at least one of tags"):
            model.model_validate(body)
    with pytest.raises(InvalidEvent, match="names at least one of tags"):
        parse_recipe_event(b'{"recipeId": 5}', RECEIVED)


def test_times_may_be_unix_seconds_as_jackson_writes_an_instant() -> None:
    fields = RecipeFields.model_validate_json(b'{"updated_at": 1764756000.5, "published_at": 1764756000}')

    assert fields.updated_at == datetime(2025, 12, 3, 10, 0, 0, 500000, tzinfo=UTC)
    assert fields.published_at == datetime(2025, 12, 3, 10, 0, tzinfo=UTC)
