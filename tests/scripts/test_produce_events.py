"""The demo/load producer: real ids, the Java wire form, Kafka and HTTP targets."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

from recipe_ml.config import DATA_DIR
from recipe_ml.data import load_ratings, split_path
from recipe_ml.events.schema import InteractionType, parse_event
from scripts.produce_events import main, sample_events, to_json
from tests.fixtures.kafka import TansuBroker

TRAIN = load_ratings(split_path(DATA_DIR, "train"))


def test_sampled_events_are_real_rows_with_weighted_types() -> None:
    events = list(sample_events(TRAIN, 2000, seed=1))
    pairs = set(zip(TRAIN.user_id.tolist(), TRAIN.recipe_id.tolist(), strict=True))
    assert all((e.user_id, e.recipe_id) in pairs for e in events)
    counts = {kind: sum(e.interaction_type is kind for e in events) for kind in InteractionType}
    assert counts[InteractionType.VIEW] > counts[InteractionType.COOK] > counts[InteractionType.RATE] > 0
    rated = {(int(u), int(r)): int(s) for u, r, s in zip(TRAIN.user_id, TRAIN.recipe_id, TRAIN.rating, strict=True)}
    for event in events:
        if event.interaction_type is InteractionType.RATE:
            assert event.rating == rated[(event.user_id, event.recipe_id)]
        else:
            assert event.rating is None
    assert len({e.event_id for e in events}) == len(events)


def test_wire_form_is_camel_case_like_the_java_producer() -> None:
    event = next(sample_events(TRAIN, 1, seed=3))
    payload = json.loads(to_json(event))
    assert set(payload) >= {"userId", "recipeId", "interactionType", "timestamp", "eventId"}
    assert payload["timestamp"].endswith("Z")
    assert parse_event(to_json(event)) == event


@pytest.mark.integration
def test_sends_to_kafka_keyed_by_user(
    kafka_broker: TansuBroker, unique_name: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic = unique_name("interactions")
    kafka_broker.create_topic(topic)
    assert main(["--bootstrap", kafka_broker.bootstrap, "--topic", topic, "--count", "25", "--rate", "0"]) == 0
    assert "sent 25 events" in capsys.readouterr().out
    records = kafka_broker.read_all(topic, expected=25)
    events = [parse_event(record.value) for record in records]
    assert [record.key for record in records] == [str(e.user_id).encode() for e in events]
    assert np.isin([e.user_id for e in events], TRAIN.user_id).all()


class _Recorder(BaseHTTPRequestHandler):
    """Keeps the bodies; answers 202, or 422 when told to refuse."""

    bodies: list[bytes]
    refuse: bool

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        status = 422 if type(self).refuse else 202
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"detail": "userId: bad"}' if type(self).refuse else b"{}")

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def http_target() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"bodies": [], "refuse": False})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_sends_over_http_to_the_interactions_endpoint(http_target: tuple[str, type[_Recorder]]) -> None:
    url, handler = http_target
    assert main(["--http", url, "--count", "5", "--rate", "0", "--seed", "2"]) == 0
    assert len(handler.bodies) == 5
    assert all(parse_event(body).user_id in TRAIN.user_id for body in handler.bodies)


def test_http_refusal_is_reported(http_target: tuple[str, type[_Recorder]], capsys: pytest.CaptureFixture[str]) -> None:
    url, handler = http_target
    handler.refuse = True
    assert main(["--http", url, "--count", "3", "--rate", "0"]) == 1
    assert "answered 422" in capsys.readouterr().err
    assert len(handler.bodies) == 1  # stops at the first refusal


def test_missing_data_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--http", "http://127.0.0.1:1", "--data-dir", str(tmp_path)]) == 1
    assert "train.csv" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--http", "http://x", "--count", "0"], "--count must be >= 1"),
        (["--http", "http://x", "--rate", "-1"], "--rate must be >= 0"),
        (["--http", "ftp://x"], "--http must be an http:// or https:// URL"),
        (["--bootstrap", ""], "give --http URL, or --bootstrap"),
    ],
)
def test_bad_arguments_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
