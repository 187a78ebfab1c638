"""The BentoML workarounds of ``edge.compat``: written for the installed version, and doing their job."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import weakref
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import bentoml
import uvicorn
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from edge.compat import UVICORN_WRITTEN_FOR, WRITTEN_FOR, bound_header_reads, model_store_at, release_request_timers
from edge.problems import PROBLEM_JSON

REQUEST_STATE: contextvars.ContextVar[object] = contextvars.ContextVar("request_state")
"""Stands for what outer middlewares put in a request's context (the OpenTelemetry span)."""


class Held:
    """An object whose lifetime the tests watch through a weak reference."""


def test_the_installed_bentoml_is_one_the_workarounds_were_written_for() -> None:
    """Fails on an upgrade on purpose: check whether each workaround is still needed, then update ``WRITTEN_FOR``."""
    assert bentoml.__version__ in WRITTEN_FOR


def test_the_installed_uvicorn_is_one_the_header_timeout_was_written_for() -> None:
    """Likewise for uvicorn; the header timeout's behaviour is tested on a live server (tests/edge/test_security.py)."""
    assert uvicorn.__version__ in UVICORN_WRITTEN_FOR
    assert bound_header_reads(10.0) and bound_header_reads(10.0), "installs, and again (idempotent)"


async def _request(
    middleware: TimeoutMiddleware, headers: list[tuple[bytes, bytes]] | None = None, body_arrives: bool = True
) -> tuple[list[dict[str, Any]], weakref.ref[Held]]:
    """One request through ``middleware`` in a context holding a ``Held``; the messages sent and the ref."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not body_arrives:
            await asyncio.sleep(30)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    held = Held()
    ref = weakref.ref(held)

    async def in_request_context(state: Held) -> None:
        REQUEST_STATE.set(state)
        scope = {"type": "http", "path": "/api/interactions", "method": "POST", "headers": headers or []}
        await middleware(scope, receive, send)

    await asyncio.create_task(in_request_context(held), context=contextvars.Context())
    del held
    for _ in range(3):  # let the loop run the finished task's callbacks, which still hold it
        await asyncio.sleep(0)
    return sent, ref


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _too_slow(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(30)


async def _reads_the_body(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await _answer(scope, receive, send)


def test_a_finished_request_leaves_nothing_alive_behind_its_timer() -> None:
    """Unpatched, the timer's copy of the context keeps the request's state alive for the whole timeout."""
    assert release_request_timers()

    async def scenario() -> tuple[list[dict[str, Any]], bool]:
        sent, ref = await _request(TimeoutMiddleware(_answer, timeout=60))
        gc.collect()
        return sent, ref() is None  # asked while the 60 s timer would still be pending

    sent, released = asyncio.run(scenario())

    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert released


def test_a_request_past_the_timeout_still_gets_504_as_a_problem() -> None:
    assert release_request_timers()

    sent, _ = asyncio.run(_request(TimeoutMiddleware(_too_slow, timeout=0.05)))

    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 504
    assert dict(sent[0]["headers"])[b"content-type"] == PROBLEM_JSON.encode()
    problem = json.loads(sent[1]["body"])
    assert problem["status"] == 504 and "0.05 seconds" in problem["detail"]
    assert problem["instance"] == "/api/interactions"


def test_a_body_that_does_not_arrive_in_time_is_a_408_that_closes_the_connection() -> None:
    """A Content-Length larger than what is sent (or a slow body) is bounded by the traffic timeout."""
    assert release_request_timers()
    declared = [(b"content-length", b"100")]

    sent, _ = asyncio.run(_request(TimeoutMiddleware(_reads_the_body, timeout=0.05), declared, body_arrives=False))
    read, _ = asyncio.run(_request(TimeoutMiddleware(_reads_the_body, timeout=5), declared))

    assert sent[0]["status"] == 408
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == PROBLEM_JSON.encode() and headers[b"connection"] == b"close"
    assert "request body not received within 0.05 seconds" in json.loads(sent[1]["body"])["detail"]
    assert read[0]["status"] == 200, "a body that arrives is read as before"


def test_model_store_at_points_bentoml_at_that_home(tmp_path: Path) -> None:
    with bentoml.models.create("compat_probe", **model_store_at(tmp_path)) as model:
        (Path(model.path) / "weights").write_text("x")

    assert (tmp_path / "models" / "compat_probe").is_dir()
    assert [str(m.tag.name) for m in bentoml.models.list(**model_store_at(tmp_path))] == ["compat_probe"]


def test_an_io_model_computes_its_mime_type_once() -> None:
    """Unpatched, BentoML rebuilds a pydantic schema for every response to find this constant."""
    from _bentoml_sdk.io_models import IORootModel

    from edge.compat import _MIME_TYPES, cache_mime_types

    class Answers(IORootModel[list[int]]):  # type: ignore[misc]  # BentoML's IO base class is untyped
        root: list[int]

    assert cache_mime_types()
    assert Answers not in _MIME_TYPES

    first, second = Answers.mime_type(), Answers.mime_type()

    assert first == second == "application/json"
    assert _MIME_TYPES[Answers] == "application/json"


def test_a_promotion_record_lies_beside_the_versions_and_bentoml_ignores_it(tmp_path: Path) -> None:
    from edge.compat import versions_directory

    store = model_store_at(tmp_path)
    for _ in range(2):
        with bentoml.models.create("compat_record", **store) as model:
            (Path(model.path) / "weights").write_text("x")
    entry = bentoml.models.get("compat_record", **store)

    directory = versions_directory(entry)
    (directory / "promotions.json").write_text("{}")

    assert directory == tmp_path / "models" / "compat_record"
    assert len(bentoml.models.list("compat_record", **store)) == 2
    assert bentoml.models.get("compat_record", **store).tag == entry.tag
    assert bentoml.models.get(f"compat_record:{entry.tag.version}", **store).tag == entry.tag
