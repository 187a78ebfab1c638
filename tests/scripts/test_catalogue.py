"""``recipe-ml catalogue import``: the CSV/JSONL readers, the chunked sends, and the import into a live server."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.net import free_port
from harness.server import LocalServer
from recipe_ml.config import DATA_DIR, get_settings
from recipe_ml.data import HEALTH_FILE
from scripts.catalogue import (
    HEALTHY_FSA_MAX,
    MAX_SHOWN_PROBLEMS,
    chunks,
    main,
    parse_args,
    read_catalogue,
    read_csv,
    read_jsonl,
)

HEALTH = DATA_DIR / HEALTH_FILE
API_KEY = "catalogue-test-key-0123456789"


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _jsonl(path: Path, *records: dict[str, Any] | str) -> Path:
    return _write(path, *(r if isinstance(r, str) else json.dumps(r) for r in records))


# --- the readers, without a server -------------------------------------------------------------------------------


def test_jsonl_takes_camel_and_snake_case_and_skips_blank_lines(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "export.jsonl",
        {"recipeId": 1, "tags": ["vegan"], "publishedAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-02-01T10:00:00"},
        "",
        {"recipe_id": 2, "available": False, "title": "Stew", "updated_at": "2026-02-01T10:00:00+01:00"},
    )
    parsed = read_jsonl(path)
    assert parsed.problems == []
    (line1, first), (line3, second) = parsed.records
    assert (line1, first.recipe_id, first.tags, first.available) == (1, 1, ["vegan"], True)
    assert first.updated_at == datetime(2026, 2, 1, 10, tzinfo=UTC)  # naive = UTC
    assert (line3, second.recipe_id, second.available, second.title) == (3, 2, False, "Stew")


def test_jsonl_names_the_line_and_field_of_every_problem(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "export.json",  # .json is read as JSONL too
        {"recipeId": 1, "tags": ["ok"]},
        {"recipeId": 2, "tag": ["typo"]},  # an unknown key would silently leave the tags empty
        "{not json",
        {"recipeId": "3"},
        {"recipeId": 4, "tags": ["UPPER"], "available": "yes"},
    )
    parsed = read_catalogue(path)
    assert [r.recipe_id for _, r in parsed.records] == [1]
    assert parsed.invalid == 4
    shown = [problem.render(path) for problem in parsed.problems]
    assert shown[0] == f"{path}:2: tag: Extra inputs are not permitted"
    assert shown[1].startswith(f"{path}:3: Invalid JSON")
    assert shown[2].startswith(f"{path}:4: recipeId: ")
    assert {p.field for p in parsed.problems if p.line == 5} == {"tags.0", "available"}


def test_csv_columns_tags_and_availability(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "export.csv",
        "recipe_id,tags,available,published_at,title,updated_at",
        '10,vegan|course:main,true,2026-01-01T00:00:00Z,"Soup, thick",2026-02-01T00:00:00Z',
        "11,,0,,,",
        "",
        "12, gluten-free | x ,FALSE,,,",
        "13,,,,,",
    )
    parsed = read_csv(path)
    assert parsed.problems == []
    records = {r.recipe_id: (line, r) for line, r in parsed.records}
    line, soup = records[10]
    assert (line, soup.tags, soup.available, soup.title) == (2, ["vegan", "course:main"], True, "Soup, thick")
    assert soup.published_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert (records[11][1].tags, records[11][1].available, records[11][1].updated_at) == ([], False, None)
    assert records[12][0] == 5 and records[12][1].tags == ["gluten-free", "x"]
    assert records[13][1].available is True  # empty = the default


def test_csv_names_unknown_and_missing_columns(tmp_path: Path) -> None:
    unknown = read_csv(_write(tmp_path / "a.csv", "recipe_id,tags,colour,size", "1,,red,2"))
    assert unknown.unreadable and unknown.records == []
    (problem,) = unknown.problems
    assert (problem.line, problem.field) == (1, "header")
    assert "'colour'" in problem.message and "'size'" in problem.message
    missing = read_csv(_write(tmp_path / "b.csv", "tags", "vegan"))
    assert [p.message for p in missing.problems] == ["missing column recipe_id"]


def test_csv_row_problems_name_the_row_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "export.csv",
        "recipe_id,tags,available,updated_at",
        "1,vegan,true,",
        "x,Bad Tag,maybe,yesterday",
        "2,vegan",
    )
    parsed = read_csv(path)
    assert [r.recipe_id for _, r in parsed.records] == [1]
    assert {(p.line, p.field) for p in parsed.problems} == {
        (3, "recipe_id"),
        (3, "tags.0"),
        (3, "available"),
        (3, "updated_at"),
        (4, None),
    }


def test_health_scores_become_tags(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "health.csv",
        "recipe_id,fsa_score,who_score",
        f"1,{HEALTHY_FSA_MAX},3",
        f"2,{HEALTHY_FSA_MAX + 1},0",
        "3,13,1",
        "4,5,-1",
    )
    parsed = read_csv(path)
    tags = {r.recipe_id: r.tags for _, r in parsed.records}
    assert tags == {1: ["fsa:6", "healthy", "who:3"], 2: ["fsa:7", "who:0"]}
    assert {(p.line, p.field) for p in parsed.problems} == {(4, "fsa_score"), (5, "who_score")}


def test_the_shipped_health_file_reads_whole() -> None:
    with HEALTH.open() as handle:
        rows = list(csv.DictReader(handle))
    parsed = read_catalogue(HEALTH)
    assert parsed.problems == [] and len(parsed.records) == len(rows) > 3000
    by_id = {r.recipe_id: r.tags for _, r in parsed.records}
    for row in rows[:50]:
        fsa = int(row["fsa_score"])
        expected = [f"fsa:{fsa}", *(["healthy"] if fsa <= HEALTHY_FSA_MAX else []), f"who:{row['who_score']}"]
        assert by_id[int(row["recipe_id"])] == expected


def test_chunks_hold_at_most_the_count_and_the_bytes(tmp_path: Path) -> None:
    records = read_catalogue(HEALTH).records[:25]
    by_count = list(chunks(records, 10, 1 << 20))
    assert [len(c.lines) for c in by_count] == [10, 10, 5]
    assert [json.loads(c.body)["recipes"][0]["recipe_id"] for c in by_count] == [
        records[0][1].recipe_id,
        records[10][1].recipe_id,
        records[20][1].recipe_id,
    ]
    by_bytes = list(chunks(records, 1000, 300))
    assert all(len(c.body) <= 300 for c in by_bytes) and sum(len(c.lines) for c in by_bytes) == 25


# --- the command against a recording HTTP server ------------------------------------------------------------------


@dataclass
class Recorder:
    """What a fake ``/api/recipes/bulk`` received; ``answers`` are given in order, then 200 all applied."""

    url: str
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    state = Recorder("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((dict(self.headers.items()), body))
            status, answer = (
                state.answers.pop(0) if state.answers else (200, {"applied": len(body["recipes"]), "stale": 0})
            )
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """``set(name, value)``: an environment variable the command's settings read."""

    def set_env(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


def test_sends_chunks_with_the_key_and_stamps_the_file_time(
    tmp_path: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _jsonl(tmp_path / "e.jsonl", *({"recipeId": i, "tags": ["t"]} for i in range(5)))
    assert main(["import", str(path), "--url", recorder.url, "--chunk", "2", "--api-key", API_KEY]) == 0
    assert [len(body["recipes"]) for _, body in recorder.requests] == [2, 2, 1]
    headers, body = recorder.requests[0]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    assert datetime.fromisoformat(body["recipes"][0]["updated_at"]) == stamp
    assert body["recipes"][0] == {
        "recipe_id": 0,
        "tags": ["t"],
        "available": True,
        "updated_at": body["recipes"][0]["updated_at"],
    }
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "read 5 records, applied 5, stale 0 (3 requests" in out


def test_the_key_defaults_to_the_first_of_api_keys(
    tmp_path: Path, recorder: Recorder, settings_env: Callable[[str, str], None]
) -> None:
    settings_env("API_KEYS", f"{API_KEY},another-key-0123456789")
    path = _jsonl(tmp_path / "e.jsonl", {"recipeId": 1, "tags": []})
    assert main(["import", str(path), "--url", recorder.url]) == 0
    assert recorder.requests[0][0]["Authorization"] == f"Bearer {API_KEY}"


def test_an_invalid_line_sends_nothing(tmp_path: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [{"recipeId": i, "tags": ["Bad Tag"]} for i in range(MAX_SHOWN_PROBLEMS + 5)]
    path = _jsonl(tmp_path / "e.jsonl", {"recipeId": 99, "tags": []}, *lines)
    assert main(["import", str(path), "--url", recorder.url]) == 2
    assert recorder.requests == []
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{path}:2: tags.0: ")
    assert len(err) == MAX_SHOWN_PROBLEMS + 2
    assert err[-2] == "... and 5 more problems"
    assert (
        err[-1]
        == f"error: {MAX_SHOWN_PROBLEMS + 5} of {MAX_SHOWN_PROBLEMS + 6} records of {path} are invalid; nothing sent"
    )


def test_an_unknown_csv_column_exits_2_naming_it(
    tmp_path: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "e.csv", "recipe_id,tags,calories", "1,vegan,300")
    assert main(["import", str(path), "--url", recorder.url]) == 2
    assert recorder.requests == []
    assert f"{path}:1: header: unknown column(s) 'calories'" in capsys.readouterr().err


def test_an_empty_file_or_another_format_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(_write(tmp_path / "e.jsonl", "")), "--url", "http://127.0.0.1:1"]) == 2
    assert "holds no records" in capsys.readouterr().err
    assert main(["import", str(_write(tmp_path / "e.txt", "1")), "--url", "http://127.0.0.1:1"]) == 2
    assert "unknown format '.txt'" in capsys.readouterr().err


def test_a_refused_chunk_exits_1_saying_the_chunks_before_stay_applied(
    tmp_path: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _jsonl(tmp_path / "e.jsonl", *({"recipeId": i, "tags": []} for i in range(4)))
    recorder.answers = [
        (200, {"applied": 1, "stale": 1}),
        (503, {"title": "Service Unavailable", "status": 503, "detail": "catalogue store unavailable; retry"}),
    ]
    assert main(["import", str(path), "--url", recorder.url, "--chunk", "2"]) == 1
    assert len(recorder.requests) == 2
    err = capsys.readouterr().err
    assert "answered 503: catalogue store unavailable; retry" in err
    assert "the 2 records before line 3 were applied and stay applied" in err
    assert "re-running the import is safe" in err


def test_field_errors_of_the_service_name_the_file_line(
    tmp_path: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _jsonl(tmp_path / "e.jsonl", {"recipeId": 1, "tags": []}, "", {"recipeId": 2, "tags": []})
    recorder.answers = [
        (422, {"status": 422, "detail": "invalid", "errors": [{"field": "recipes.1.tags.0", "message": "no"}]})
    ]
    assert main(["import", str(path), "--url", recorder.url]) == 1
    err = capsys.readouterr().err
    assert f"{path}:3: tags.0: no" in err and "no record was applied" in err


def test_the_bulk_limit_of_the_service_is_said(
    tmp_path: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _jsonl(tmp_path / "e.jsonl", *({"recipeId": i, "tags": []} for i in range(3)))
    limit = "Value error, at most 2 recipes per bulk request (CATALOGUE_BULK_LIMIT)"
    recorder.answers = [(422, {"status": 422, "detail": "invalid", "errors": [{"field": "recipes", "message": limit}]})]
    assert main(["import", str(path), "--url", recorder.url]) == 1
    assert "takes at most 2 records per request (its CATALOGUE_BULK_LIMIT): re-run with --chunk 2" in (
        capsys.readouterr().err
    )


def test_a_service_that_is_not_running_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["import", str(_jsonl(tmp_path / "e.jsonl", {"recipeId": 1, "tags": []})), "--url", url]) == 1
    err = capsys.readouterr().err
    assert f"error: cannot reach {url}/api/recipes/bulk:" in err and "is the service running?" in err
    assert "no record was applied" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--chunk", "0"], "--chunk must be >= 1"), (["--url", "localhost:8000"], "--url must be an http://")],
)
def test_bad_arguments_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["import", "x.csv", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_url_defaults_to_the_local_service(settings_env: Callable[[str, str], None]) -> None:
    settings_env("PORT", "8123")
    assert parse_args(["import", "x.csv"], get_settings()).url == "http://127.0.0.1:8123"


# --- against the live server (the suite's shared one, on the test Redis) -------------------------------------------


def _record(server: LocalServer, recipe_id: int) -> dict[str, Any] | None:
    """The recipe's catalogue record on the server; None when it has none."""
    answer = httpx.get(f"{server.base_url}/api/recipes/{recipe_id}", timeout=10)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    details: dict[str, Any] = answer.json()
    return details if details["in_catalogue"] else None


OUT_OF_DATA = 900_000_000
"""Recipe ids from here on are no recipe of the data (and of no other test)."""


@pytest.mark.integration
def test_imports_jsonl_and_csv_into_the_service(
    server: LocalServer, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jsonl = _jsonl(
        tmp_path / "export.jsonl",
        {"recipeId": OUT_OF_DATA + 1, "tags": ["vegan", "course:main"], "updatedAt": "2026-03-01T00:00:00Z"},
        {"recipeId": OUT_OF_DATA + 2, "tags": ["contains:peanut"], "available": False, "title": "Satay"},
    )
    table = _write(
        tmp_path / "export.csv",
        "recipe_id,tags,available,title",
        f"{OUT_OF_DATA + 3},gluten-free|quick,true,Salad",
        f"{OUT_OF_DATA + 4},,false,",
    )
    assert main(["import", str(jsonl), "--url", server.base_url]) == 0
    assert "read 2 records, applied 2, stale 0" in capsys.readouterr().out
    first = _record(server, OUT_OF_DATA + 1)
    assert first is not None and first["tags"] == ["course:main", "vegan"]
    assert first["updated_at"] == "2026-03-01T00:00:00Z"
    second = _record(server, OUT_OF_DATA + 2)
    assert second is not None and (second["available"], second["title"]) == (False, "Satay")

    assert main(["import", str(table), "--url", server.base_url]) == 0
    assert "read 2 records, applied 2, stale 0" in capsys.readouterr().out
    salad = _record(server, OUT_OF_DATA + 3)
    assert salad is not None and (salad["tags"], salad["title"], salad["available"]) == (
        ["gluten-free", "quick"],
        "Salad",
        True,
    )
    hidden = _record(server, OUT_OF_DATA + 4)
    assert hidden is not None and (hidden["tags"], hidden["available"]) == ([], False)


@pytest.mark.integration
def test_the_health_file_seeds_the_tags_and_a_rerun_changes_nothing(
    server: LocalServer, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with HEALTH.open() as handle:
        rows = list(csv.DictReader(handle))
    healthy = next(r for r in rows if int(r["fsa_score"]) <= HEALTHY_FSA_MAX)
    other = next(r for r in rows if int(r["fsa_score"]) > HEALTHY_FSA_MAX)

    assert main(["import", str(HEALTH), "--url", server.base_url]) == 0
    out = capsys.readouterr().out
    requests = -(-len(rows) // get_settings().catalogue_bulk_limit)
    assert f"read {len(rows)} records, applied {len(rows)}, stale 0 ({requests} requests" in out
    for row, expected in ((healthy, ["healthy"]), (other, [])):
        record = _record(server, int(row["recipe_id"]))
        assert record is not None
        assert record["tags"] == sorted([f"fsa:{row['fsa_score']}", f"who:{row['who_score']}", *expected])

    assert main(["import", str(HEALTH), "--url", server.base_url, "--chunk", "500"]) == 0
    assert f"read {len(rows)} records, applied 0, stale {len(rows)}" in capsys.readouterr().out


@pytest.mark.integration
def test_a_bad_tag_on_line_3_sends_nothing(
    server: LocalServer, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _jsonl(
        tmp_path / "export.jsonl",
        {"recipeId": OUT_OF_DATA + 11, "tags": ["vegan"]},
        {"recipeId": OUT_OF_DATA + 12, "tags": ["quick"]},
        {"recipeId": OUT_OF_DATA + 13, "tags": ["Not A Tag"]},
    )
    assert main(["import", str(path), "--url", server.base_url]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: tags.0: String should match pattern" in err and "nothing sent" in err
    assert _record(server, OUT_OF_DATA + 11) is None and _record(server, OUT_OF_DATA + 12) is None
