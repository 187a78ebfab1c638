"""Every error as one body: RFC 9457 ``application/problem+json`` (``Problem``), and the one handler table.

Spring's ``ProblemDetail`` reads these bodies as they are: a malformed
request is a 4xx naming the field, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from recipe_ml.serving.errors import NoModelError, StoreUnavailableError, UnknownRecipeError, UnknownUserError
from recipe_ml.serving.schemas import MAX_LISTED_ERRORS, FieldError, Problem
from recipe_ml.storage.base import CatalogueFullError

logger = logging.getLogger("recipe_ml.service")

PROBLEM_JSON = "application/problem+json"
MAX_ECHOED_CHARS = 200
"""Longest piece of the request (a path, a field name, a message) an error body repeats: a request cannot
make its answer larger than itself."""


def clip(text: str) -> str:
    """``text``, cut to MAX_ECHOED_CHARS (an ellipsis marks the cut)."""
    return text if len(text) <= MAX_ECHOED_CHARS else text[: MAX_ECHOED_CHARS - 1] + "\u2026"


def problem_response(problem: Problem, path: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """``problem`` as ``application/problem+json``, with the request path (clipped) as ``instance``."""
    body = problem.model_copy(update={"instance": clip(path)}).model_dump(mode="json")
    return JSONResponse(body, status_code=problem.status, headers=headers, media_type=PROBLEM_JSON)


def http_problem(status: int, detail: str) -> Problem:
    """A plain HTTP error (404, 405, 413...): ``about:blank`` and the status phrase as title."""
    return Problem(title=HTTPStatus(status).phrase, status=status, detail=detail)


def not_found_problem(path: str) -> Problem:
    """404 for a path no route serves (under /api or not)."""
    return http_problem(404, f"no endpoint {clip(path)}; see /docs for the API")


def method_not_allowed_problem(method: str, allowed: str) -> Problem:
    """405 for a path that exists, not for this method; ``allowed`` is what the ``Allow`` header says."""
    return http_problem(405, f"method {clip(method)} not allowed; use {allowed}")


def _field(loc: tuple[int | str, ...]) -> str:
    """``("body", "recent_recipe_ids", 1)`` -> ``recent_recipe_ids.1``; the whole body is ``body``."""
    parts = loc[1:] if loc and loc[0] == "body" else loc
    return clip(".".join(str(part) for part in parts)) or "body"


def validation_problem(errors: list[dict[str, Any]]) -> Problem:
    """400 when the body is not JSON, else 422; ``errors`` names the invalid fields (the first
    MAX_LISTED_ERRORS of them, ``errors_omitted`` counts the rest), each name and message clipped."""
    invalid_json = any(error["type"] == "json_invalid" for error in errors)
    fields = [
        FieldError(
            field="body" if error["type"] == "json_invalid" else _field(tuple(error["loc"])),
            message=clip(error["msg"]),
            type=error["type"],
        )
        for error in errors[:MAX_LISTED_ERRORS]
    ]
    omitted = len(errors) - len(fields)
    listed = ", ".join(f.field for f in fields) + (f" and {omitted} more" if omitted else "")
    return Problem(
        type="urn:recipe-ml:problem:invalid-request",
        title="Invalid request",
        status=400 if invalid_json else 422,
        detail="request body is not valid JSON" if invalid_json else f"invalid request: {listed}",
        errors=fields,
        errors_omitted=omitted or None,
    )


def unavailable_problem(detail: str) -> Problem:
    """503: nothing can answer now; the client retries."""
    return Problem(type="urn:recipe-ml:problem:unavailable", title="Service unavailable", status=503, detail=detail)


def problem_doc(description: str) -> dict[str, Any]:
    """An error response in the document: ``model`` registers the Problem schema, ``content`` names the
    media type the service sends (FastAPI adds an ``application/json`` entry of the same schema)."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"model": Problem, "description": description, "content": {PROBLEM_JSON: {"schema": schema}}}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem_doc("The body is not JSON (`errors[0].field` is `body`)."),
    401: problem_doc("API_KEYS is set and the request has no valid key."),
    413: problem_doc("The body is larger than MAX_REQUEST_BYTES."),
    422: problem_doc("A field is missing, unknown, of the wrong type or out of range; `errors` names it."),
    503: problem_doc("No model (or, for interactions, the interaction store) can answer now; retry."),
}
UNKNOWN_USER: dict[int | str, dict[str, Any]] = {
    404: problem_doc("The user is unknown to the models and has no interactions: use cold-start.")
}
UNKNOWN_RECIPE: dict[int | str, dict[str, Any]] = {404: problem_doc("The recipe is unknown to the models.")}
CATALOGUE_FULL: dict[int | str, dict[str, Any]] = {
    409: problem_doc("The catalogue holds CATALOGUE_MAX_RECIPES recipes: a new one is refused (nothing applied).")
}


async def _on_invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_problem(list(exc.errors())), request.url.path)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem_response(http_problem(exc.status_code, str(exc.detail)), request.url.path, dict(exc.headers or {}))


async def _on_unknown(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnknownUserError | UnknownRecipeError)
    return problem_response(exc.problem(), request.url.path)


async def _on_unavailable(request: Request, exc: Exception) -> Response:
    return problem_response(unavailable_problem(str(exc)), request.url.path, {"Retry-After": "1"})


async def _on_catalogue_full(request: Request, exc: Exception) -> Response:
    problem = Problem(type="urn:recipe-ml:problem:catalogue-full", title="Catalogue full", status=409, detail=str(exc))
    return problem_response(problem, request.url.path)


async def _on_bug(request: Request, exc: Exception) -> Response:
    """Still a problem+json body, so a client's error mapping holds; the traceback goes to the log only."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(title="Internal Server Error", status=500, detail="internal error; see the service log")
    return problem_response(problem, request.url.path)


EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    RequestValidationError: _on_invalid_request,
    HTTPException: _on_http_error,
    UnknownUserError: _on_unknown,
    UnknownRecipeError: _on_unknown,
    NoModelError: _on_unavailable,
    StoreUnavailableError: _on_unavailable,
    CatalogueFullError: _on_catalogue_full,
    Exception: _on_bug,
}
"""Exception → problem response, for ``FastAPI(exception_handlers=...)``."""
