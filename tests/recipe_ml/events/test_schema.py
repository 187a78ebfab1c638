"""The event contract: what the Java producer sends, and clear reasons for the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from recipe_ml.events.schema import InteractionEvent, InteractionType, InvalidEvent, new_recommendation_id, parse_event


def raw(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_camel_case_as_the_java_producer_sends_it() -> None:
    event = parse_event(
        raw(userId=5, recipeId=234, interactionType="rate", rating=4, timestamp="2026-11-29T10:00:00Z", eventId="e-1")
    )
    assert event == InteractionEvent(
        user_id=5,
        recipe_id=234,
        interaction_type=InteractionType.RATE,
        rating=4,
        timestamp=datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
        event_id="e-1",
    )


def test_snake_case_and_unknown_fields_are_accepted() -> None:
    event = parse_event(raw(user_id=5, recipe_id=234, interaction_type="cook", source="android"))
    assert (event.user_id, event.recipe_id, event.interaction_type) == (5, 234, InteractionType.COOK)
    assert event.rating is None and event.timestamp is None and event.event_id is None


def test_a_naive_timestamp_is_read_as_utc() -> None:
    event = parse_event(raw(userId=1, recipeId=2, interactionType="view", timestamp="2026-11-29T10:00:00"))
    assert event.timestamp == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "Invalid JSON"),
        (b"", "Invalid JSON"),
        (b"[1, 2]", "validation failed: event: Input should be an object"),
        (raw(recipeId=2, interactionType="view"), "validation failed: userId: Field required"),
        (raw(userId=-1, recipeId=2, interactionType="view"), "userId: Input should be greater than or equal to 0"),
        (raw(userId=1, recipeId=2, interactionType="eat"), "interactionType: Input should be 'view', 'like'"),
        (raw(userId=1, recipeId=2, interactionType="rate"), "rating: Value error, rating (1-5) is required"),
        (
            raw(userId=1, recipeId=2, interactionType="rate", rating=6),
            "rating: Input should be less than or equal to 5",
        ),
        (raw(userId=1, recipeId=2, interactionType="view", rating=3), "rating is only allowed when interactionType"),
        (raw(userId=1, recipeId=2, interactionType="view", timestamp="yesterday"), "timestamp: Input should be"),
        (raw(userId=1, recipeId=2, interactionType="view", eventId=""), "eventId: String should have at least 1"),
        # One id bound for every input (the HTTP requests' too): the integers JSON parsers read exactly.
        (raw(userId=2**53, recipeId=2, interactionType="view"), "userId: Input should be less than or equal to"),
        (raw(userId=1, recipeId=2**63, interactionType="view"), "recipeId: Input should be less than or equal to"),
    ],
)
def test_bad_input_names_the_field(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(payload)
    assert reason in info.value.reason


def test_dedupe_id_prefers_the_event_id_then_hashes_the_content() -> None:
    base = {"user_id": 1, "recipe_id": 2, "interaction_type": InteractionType.VIEW}
    assert InteractionEvent.model_validate({**base, "event_id": "abc"}).dedupe_id() == "abc"
    same = InteractionEvent.model_validate(base).dedupe_id()
    assert same == InteractionEvent.model_validate(base).dedupe_id()
    assert same.startswith("sha256:")
    later = InteractionEvent.model_validate({**base, "timestamp": datetime(2026, 1, 1, tzinfo=UTC)}).dedupe_id()
    other_recipe = InteractionEvent.model_validate({**base, "recipe_id": 3}).dedupe_id()
    assert len({same, later, other_recipe}) == 3


def test_jackson_defaults_are_accepted() -> None:
    """Jackson may write ``Instant`` as epoch seconds and a null ``rating`` explicitly."""
    event = parse_event(b'{"userId":5,"recipeId":234,"interactionType":"view","rating":null,"timestamp":1764410400.5}')
    assert event.rating is None
    assert event.timestamp == datetime(2025, 11, 29, 10, 0, 0, 500000, tzinfo=UTC)


def test_a_recommendation_id_travels_with_the_event_in_camel_case() -> None:
    rid = new_recommendation_id()

    event = parse_event(raw(userId=5, recipeId=234, interactionType="cook", recommendationId=rid))

    assert event.recommendation_id == rid and len(rid) == 32
    assert parse_event(raw(userId=5, recipeId=234, interactionType="cook")).recommendation_id is None


@pytest.mark.parametrize("bad", ["not-an-id", "9F1C2B7E4D5A46B0A3C8E2F1D0B9A877", "ab" * 17, 12345, True])
def test_a_recommendation_id_of_another_form_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(InvalidEvent, match=r"^validation failed: recommendationId: "):
        parse_event(raw(userId=5, recipeId=234, interactionType="cook", recommendationId=bad))
