"""RFC 9457 problem details: every error is ``application/problem+json`` with a sentence and no internals."""

from __future__ import annotations

import logging
import traceback
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("lakehouse.api")


class ProblemError(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, headers: dict[str, str] | None = None,
                 errors: list[dict[str, str]] | None = None, candidates: list[str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.errors = errors
        self.candidates = candidates


def problem_body(status: int, detail: str | None, *, title: str | None = None, instance: str | None = None,
                 errors: list[dict[str, str]] | None = None, candidates: list[str] | None = None) -> dict[str, Any]:
    """The problem document (``type`` about:blank: the title is the HTTP status phrase or a short summary).

    ``candidates`` (an extension member) lists the golden ids a retired id's records now belong to.
    """
    body: dict[str, Any] = {"type": "about:blank", "title": title or HTTPStatus(status).phrase, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    if candidates is not None:
        body["candidates"] = candidates
    return body


def problem_response(status: int, detail: str | None, *, title: str | None = None, instance: str | None = None,
                     headers: dict[str, str] | None = None, errors: list[dict[str, str]] | None = None,
                     candidates: list[str] | None = None) -> Response:
    """A problem+json response."""
    body = problem_body(status, detail, title=title, instance=instance, errors=errors, candidates=candidates)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _instance(request: Request) -> str:
    return request.url.path  # never the query string (it may hold an email or phone)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``{location, message}`` pairs, without echoing the input (it may be PII)."""
    return [{"location": _location(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid value"))}
            for e in exc.errors()]


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error through problem+json."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return problem_response(exc.status, exc.detail, title=exc.title, instance=_instance(request),
                                headers=exc.headers, errors=exc.errors, candidates=exc.candidates)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = {404: "No such resource.", 405: "This method is not allowed on this resource."}.get(exc.status_code)
        return problem_response(exc.status_code, detail, instance=_instance(request),
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(exc)
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5]) or "The request is not valid."
        return problem_response(422, detail, title="Invalid request", instance=_instance(request), errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log_unexpected(request.scope, exc)
        return problem_response(500, "The server failed to answer; the error was logged.", instance=_instance(request))


def log_unexpected(scope: dict[str, Any], exc: BaseException) -> None:
    """Log an unexpected error: the route template, the exception type and the stack, never the message or values."""
    route = getattr(scope.get("route"), "path", "<unmatched>")
    # Frames as file:line in function, without source lines or locals (either could carry a value).
    frames = "\n".join(f"  {f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__))
    log.error("unhandled %s on %s %s\n%s", exc.__class__.__name__, scope.get("method"), route, frames)
