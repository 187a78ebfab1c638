"""``recipe-ml catalogue import FILE``: load a catalogue export (CSV or JSONL) into the running service.

    recipe-ml catalogue import training_artifacts/data/recipe_health.csv   # seed the health tags
    recipe-ml catalogue import export.jsonl --url https://recipe-ml:8000 --api-key "$KEY"

The format is the file's extension:

- ``.jsonl`` (or ``.json``): one record per line, as the ``recipes`` topic
  carries it (``recipe_ml.catalogue.records.RecipeEvent``): camelCase
  (``recipeId``, ``publishedAt``, ``updatedAt``) or snake_case keys. Blank
  lines are skipped; an unknown key is refused (a misspelt ``tags`` would
  otherwise wipe the recipe's tags).
- ``.csv``: a header, then one recipe per row. Columns: ``recipe_id``
  (required), ``tags`` (separated by ``|``), ``available`` (true/false/1/0;
  empty = true), ``published_at``, ``title``, ``updated_at`` (ISO 8601; empty
  = none), and the health columns ``fsa_score`` and ``who_score``. Any other
  column is refused, naming it.

Health tags: a row with ``fsa_score`` (4 = healthiest ... 12) gets the tag
``fsa:<score>``, and ``healthy`` too when fsa_score <= 6; a row with
``who_score`` (WHO guidelines met, 0 ...) gets ``who:<score>``. So the shipped
``training_artifacts/data/recipe_health.csv`` (recipe_id,fsa_score,who_score)
seeds every recipe it lists with those tags, for ``require_tags=healthy``.

Every record is validated here first, with the rules of ``POST
/api/recipes/bulk``: any invalid line or row is printed as ``FILE:LINE: field:
message`` (the first 20, then a count), the command exits 2 and sends nothing.
Then the records go to ``{--url}/api/recipes/bulk`` in chunks of ``--chunk``
records (each chunk applied all or none), and one line says how many were
read, applied (changed the catalogue) and stale (the service holds the same
record or a later one).

A record replaces the recipe's whole record (tags included), and the last
write by ``updated_at`` wins. A record without ``updated_at`` is stamped with
the file's modification time, so importing the same file again applies
nothing (every record stale), and an old export never undoes a later change
the platform made. On an HTTP error or an unreachable service the command
prints why and exits 1; the chunks sent before stay applied, and re-running
the import is safe: writes are idempotent and the last write by updated_at
wins.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError

from recipe_ml.catalogue.records import RecipeEvent, RecipeUpsert
from recipe_ml.config import Settings, get_settings
from recipe_ml.data import FSA_RANGE

BULK_PATH = "/api/recipes/bulk"
TAG_SEPARATOR = "|"
HEALTHY_FSA_MAX = 6
"""``healthy`` when fsa_score is at most this (FSA 4-6: the healthiest third of the scale)."""
CSV_COLUMNS = ("recipe_id", "tags", "available", "published_at", "title", "updated_at")
HEALTH_COLUMNS = ("fsa_score", "who_score")
JSONL_SUFFIXES = (".jsonl", ".json")
MAX_SHOWN_PROBLEMS = 20
TRUE_WORDS = {"true": True, "1": True, "false": False, "0": False}
REQUEST_OVERHEAD = len(b'{"recipes":[]}')


class _FileRecord(RecipeEvent):
    """A JSONL line: the topic's record, camelCase or snake_case, but an unknown key is an error, not dropped."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Problem:
    """Why line ``line`` of the file is refused (``field`` None: the line as a whole)."""

    line: int
    field: str | None
    message: str

    def render(self, path: Path) -> str:
        return f"{path}:{self.line}: " + (f"{self.field}: " if self.field else "") + self.message


@dataclass
class Parsed:
    """The valid records of a file (with their line numbers) and the problems of the others."""

    records: list[tuple[int, RecipeUpsert]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    invalid: int = 0
    """Records with at least one problem."""
    unreadable: bool = False
    """The CSV header is refused: no row was read."""

    def add(self, line: int, model: type[RecipeUpsert], data: dict[str, Any] | str, problems: list[Problem]) -> None:
        """Validate ``data`` (a dict, or a JSON text) as ``model``, keeping the record or its problems."""
        if not problems:
            try:
                record = model.model_validate_json(data) if isinstance(data, str) else model.model_validate(data)
            except ValidationError as exc:
                problems = _problems(line, exc)
            else:
                self.records.append((line, record))
                return
        self.problems.extend(problems)
        self.invalid += 1


class CatalogueFileError(ValueError):
    """The file cannot be read as a catalogue at all (unknown extension, unreadable)."""


def _problems(line: int, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        if error["type"] == "json_invalid":
            problems.append(Problem(line, None, str(error["msg"])))
        else:
            problems.append(Problem(line, ".".join(str(part) for part in error["loc"]) or "record", error["msg"]))
    return problems


def read_jsonl(path: Path) -> Parsed:
    """Every non-blank line of ``path`` as a record."""
    parsed = Parsed()
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if text.strip():
                parsed.add(number, _FileRecord, text, [])
    return parsed


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:  # -sig: a spreadsheet's byte order mark
        reader = csv.reader(handle)
        for row in reader:
            yield reader.line_num, row


def _score(line: int, column: str, text: str, low: int, high: int | None) -> tuple[int | None, list[Problem]]:
    if not re.fullmatch(r"[0-9]+", text) or int(text) < low or (high is not None and int(text) > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        return None, [Problem(line, column, f"an integer {bounds}, got {text!r}")]
    return int(text), []


def _csv_record(line: int, cells: dict[str, str]) -> tuple[dict[str, Any], list[Problem]]:
    """The record a CSV row describes, its cells turned into the JSON types (validation says what is wrong)."""
    data: dict[str, Any] = {}
    problems: list[Problem] = []
    recipe_id = cells["recipe_id"]
    data["recipe_id"] = int(recipe_id) if re.fullmatch(r"[0-9]+", recipe_id) else recipe_id
    tags = [tag.strip() for tag in cells.get("tags", "").split(TAG_SEPARATOR) if tag.strip()]
    if cells.get("fsa_score"):
        fsa, refused = _score(line, "fsa_score", cells["fsa_score"], int(FSA_RANGE[0]), int(FSA_RANGE[1]))
        problems += refused
        if fsa is not None:
            tags += [f"fsa:{fsa}"] + (["healthy"] if fsa <= HEALTHY_FSA_MAX else [])
    if cells.get("who_score"):
        who, refused = _score(line, "who_score", cells["who_score"], 0, None)
        problems += refused
        if who is not None:
            tags.append(f"who:{who}")
    data["tags"] = tags
    if cells.get("available"):
        data["available"] = TRUE_WORDS.get(cells["available"].lower(), cells["available"])
    for name in ("published_at", "title", "updated_at"):
        if cells.get(name):
            data[name] = cells[name]
    return data, problems


def read_csv(path: Path) -> Parsed:
    """Every row of ``path`` after its header as a record (see the module doc for the columns)."""
    parsed = Parsed()
    rows = _csv_rows(path)
    header: list[str] = []
    header_line = 1
    for line, row in rows:  # blank lines before the header are skipped
        header, header_line = [name.strip() for name in row], line
        if any(header):
            break
    if not any(header):
        parsed.problems.append(Problem(1, None, f"no header; expected columns {', '.join(CSV_COLUMNS)}"))
        parsed.unreadable = True
        return parsed
    known = CSV_COLUMNS + HEALTH_COLUMNS
    unknown = [name for name in header if name not in known]
    repeated = sorted({name for name in header if header.count(name) > 1})
    trouble = [
        *([f"unknown column(s) {', '.join(repr(n) for n in unknown)}; known: {', '.join(known)}"] if unknown else []),
        *([f"repeated column(s) {', '.join(repeated)}"] if repeated else []),
        *(["missing column recipe_id"] if "recipe_id" not in header else []),
    ]
    if trouble:
        parsed.problems += [Problem(header_line, "header", message) for message in trouble]
        parsed.unreadable = True
        return parsed
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            parsed.add(
                number, RecipeUpsert, {}, [Problem(number, None, f"{len(row)} fields, the header has {len(header)}")]
            )
            continue
        cells = {name: cell.strip() if name != "title" else cell for name, cell in zip(header, row, strict=True)}
        data, problems = _csv_record(number, cells)
        parsed.add(number, RecipeUpsert, data, problems)
    return parsed


def read_catalogue(path: Path) -> Parsed:
    """The records of a ``.csv``, ``.jsonl`` or ``.json`` (JSONL) file; ``CatalogueFileError`` otherwise."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return read_csv(path)
        if suffix in JSONL_SUFFIXES:
            return read_jsonl(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CatalogueFileError(f"{path}: cannot read it: {exc}") from exc
    raise CatalogueFileError(f"{path}: unknown format {suffix or '(no extension)'!r}; use .csv, .jsonl or .json")


def stamped(records: list[tuple[int, RecipeUpsert]], when: datetime) -> list[tuple[int, RecipeUpsert]]:
    """``records``, those without ``updated_at`` given ``when``."""
    return [
        (line, record if record.updated_at is not None else record.model_copy(update={"updated_at": when}))
        for line, record in records
    ]


def wire(record: RecipeUpsert) -> bytes:
    """One element of the bulk body: snake_case, absent fields left out."""
    body = record.model_dump(mode="json", by_alias=False, exclude_none=True)
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Chunk:
    lines: list[int]
    body: bytes


def chunks(records: list[tuple[int, RecipeUpsert]], size: int, max_bytes: int) -> Iterator[Chunk]:
    """Bulk bodies of at most ``size`` records and (unless one record alone is larger) ``max_bytes`` bytes."""
    lines: list[int] = []
    items: list[bytes] = []
    length = REQUEST_OVERHEAD
    for line, record in records:
        item = wire(record)
        if items and (len(items) == size or length + 1 + len(item) > max_bytes):
            yield Chunk(lines, b'{"recipes":[' + b",".join(items) + b"]}")
            lines, items, length = [], [], REQUEST_OVERHEAD
        lines.append(line)
        items.append(item)
        length += len(item) + (1 if len(items) > 1 else 0)
    if items:
        yield Chunk(lines, b'{"recipes":[' + b",".join(items) + b"]}")


class ImportFailed(RuntimeError):
    """The service refused a chunk or could not be reached; the message says why."""


@dataclass
class Sender:
    """POSTs bulk bodies to ``{base_url}/api/recipes/bulk``, with the API key when there is one."""

    base_url: str
    api_key: str | None
    path: Path
    timeout_seconds: float = 60.0

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + BULK_PATH

    def send(self, chunk: Chunk) -> tuple[int, int]:
        """The chunk's (applied, stale) counts; ``ImportFailed`` saying why when it was not applied."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.endpoint, data=chunk.body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                answer = json.loads(response.read())
            return int(answer["applied"]), int(answer["stale"])
        except urllib.error.HTTPError as exc:
            raise ImportFailed(self._refusal(exc.code, exc.read(), chunk)) from exc
        except urllib.error.URLError as exc:
            raise ImportFailed(f"cannot reach {self.endpoint}: {exc.reason}; is the service running?") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a timeout, a reset, an answer not of this API
            raise ImportFailed(f"POST {self.endpoint} failed: {type(exc).__name__}: {exc}") from exc

    def _refusal(self, status: int, raw: bytes, chunk: Chunk) -> str:
        """What the problem body says: its detail, each field of the chunk named by the file line it came from."""
        try:
            problem = json.loads(raw)
            detail = str(problem.get("detail") or problem.get("title") or "")
            errors = [e for e in problem.get("errors") or [] if isinstance(e, dict)]
        except (ValueError, AttributeError):
            detail, errors = raw.decode(errors="replace")[:500], []
        lines = [f"POST {self.endpoint} answered {status}: {detail}"]
        for error in errors:
            name, message = str(error.get("field", "")), str(error.get("message", ""))
            found = re.fullmatch(r"recipes\.(\d+)(?:\.(.+))?", name)
            if found and int(found.group(1)) < len(chunk.lines):
                lines.append(
                    Problem(chunk.lines[int(found.group(1))], found.group(2) or "record", message).render(self.path)
                )
            elif name == "recipes" and "at most" in message:
                limit = re.search(r"at most (\d+)", message)
                most = limit.group(1) if limit else "fewer"
                lines.append(
                    f"the service takes at most {most} records per request (its CATALOGUE_BULK_LIMIT): "
                    f"re-run with --chunk {most}"
                )
            else:
                lines.append(f"{name}: {message}" if name else message)
        if status == 401:
            lines.append("give the key with --api-key (default: the first key of API_KEYS)")
        if status == 413:
            lines.append("the request is larger than the service's MAX_REQUEST_BYTES: re-run with a smaller --chunk")
        return "\n".join(lines)


def default_url(settings: Settings) -> str:
    """The service ``make serve`` starts on this machine (the Makefile's LOADTEST_URL): 127.0.0.1 on PORT."""
    scheme = "https" if settings.ssl_certfile is not None else "http"
    return f"{scheme}://127.0.0.1:{settings.port}"


def parse_args(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="recipe-ml catalogue",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = sub.add_parser(
        "import",
        help="load a CSV or JSONL catalogue export into the running service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("file", type=Path, metavar="FILE", help="a .csv, .jsonl or .json (JSONL) catalogue export")
    load.add_argument("--url", default=default_url(settings), help="the service's base URL (default %(default)s)")
    load.add_argument("--api-key", help="sent as `Authorization: Bearer`; default: the first key of API_KEYS, if set")
    load.add_argument(
        "--chunk",
        type=int,
        default=settings.catalogue_bulk_limit,
        help="records per request, at most the service's CATALOGUE_BULK_LIMIT (default %(default)s)",
    )
    load.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each request (default 60)")
    args = parser.parse_args(argv)
    if args.chunk < 1:
        load.error(f"--chunk must be >= 1, got {args.chunk}")
    if args.timeout <= 0:
        load.error(f"--timeout must be > 0, got {args.timeout}")
    if not args.url.startswith(("http://", "https://")):
        load.error(f"--url must be an http:// or https:// URL, got {args.url!r}")
    if args.api_key is None:
        keys = settings.api_key_list()
        args.api_key = keys[0] if keys else None
    return args


def _report_invalid(path: Path, parsed: Parsed, read: int) -> None:
    for problem in parsed.problems[:MAX_SHOWN_PROBLEMS]:
        print(problem.render(path), file=sys.stderr)
    hidden = len(parsed.problems) - MAX_SHOWN_PROBLEMS
    if hidden > 0:
        print(f"... and {hidden} more problems", file=sys.stderr)
    if parsed.unreadable:
        print(f"error: {path}: its header is refused; nothing sent", file=sys.stderr)
    else:
        print(f"error: {parsed.invalid} of {read} records of {path} are invalid; nothing sent", file=sys.stderr)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    try:
        parsed = read_catalogue(path)
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except (CatalogueFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    read = len(parsed.records) + parsed.invalid
    if parsed.problems:
        _report_invalid(path, parsed, read)
        return 2
    if not parsed.records:
        print(f"error: {path} holds no records; nothing sent", file=sys.stderr)
        return 2
    sender = Sender(args.url, args.api_key, path, args.timeout)
    applied = stale = requests = 0
    started = time.monotonic()
    for chunk in chunks(stamped(parsed.records, modified), args.chunk, settings.max_request_bytes):
        try:
            done, old = sender.send(chunk)
        except ImportFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            sent = applied + stale
            done_before = (
                f"the {sent} records before line {chunk.lines[0]} were applied and stay applied"
                if sent
                else "no record was applied"
            )
            print(
                f"{done_before}; re-running the import is safe: writes are idempotent and the last write "
                "by updated_at wins",
                file=sys.stderr,
            )
            return 1
        applied, stale, requests = applied + done, stale + old, requests + 1
    elapsed = time.monotonic() - started
    print(
        f"{path}: read {read} records, applied {applied}, stale {stale} "
        f"({requests} request{'s' if requests != 1 else ''} to {sender.endpoint} in {elapsed:.1f} s)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    settings = get_settings()
    args = parse_args(argv, settings)
    return run_import(args, settings)
