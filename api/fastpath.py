"""Hot-path dispatcher: answers the busiest GET routes without FastAPI's per-request dependency and parameter machinery.

FastAPI solving one dependency plus its query parameters costs ~150-250 us of CPU per request here, more than the
lookup itself; at the 3,000 req/s target one worker has ~300 us per request in total. The dispatcher recognises only
requests whose parameters are *certainly* valid for the FastAPI route (same patterns and bounds, no repeated or
unknown parameters) and answers them with the same shared ``answer_*`` functions, the same authorization
(:func:`api.deps.authorize`) and the same problem documents. Anything else - a doubtful parameter, another method,
the listing, the operations endpoints - goes to FastAPI, which stays the single source of validation and of the
OpenAPI contract. ``tests/test_api.py`` checks that both paths answer byte-for-byte the same.
"""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import parse_qsl

import orjson

from api import routes
from api.deps import authorize
from api.problems import PROBLEM_JSON, ProblemError, problem_body

_GOLDEN_ID = re.compile(routes.GOLDEN_ID_PATTERN.strip("^$"))
_SOURCE = re.compile(routes.SOURCE_PATTERN.strip("^$"))
_LIMIT = re.compile(r"[1-9][0-9]?")
_PREFIX = "/v1/customers/"
_SUB = {"loyalty": routes.answer_loyalty, "vouchers": routes.answer_vouchers, "summary": routes.answer_summary}
# (min, max) lengths of the search parameters, as declared on the FastAPI route.
_SEARCH_BOUNDS = {"email": (3, 254), "phone": (5, 32), "name": (2, 100), "postcode": (2, 16)}
_JSON = [(b"content-type", b"application/json")]


class FastPath:
    """Resolve a scope to ``(route template, answer)`` or None (let FastAPI handle it)."""

    def __init__(self, app: Any) -> None:
        self.state = app.state
        self.templates = {r.path: r for r in routes.router.routes if hasattr(r, "path")}
        missing = {"/v1/customers/lookup", "/v1/customers/search", "/v1/customers/{golden_id}"} - set(self.templates)
        if missing:
            raise RuntimeError(f"fast path: routes {sorted(missing)} are not declared on api.routes.router")

    def match(self, scope: dict[str, Any]) -> tuple[Any, Callable[[Any], dict[str, Any]]] | None:
        """The FastAPI route object (for logs and metrics) and a function of the read context, or None."""
        if scope["method"] != "GET":
            return None
        path: str = scope["path"]
        if not path.startswith(_PREFIX):
            return None
        rest = path[len(_PREFIX):]
        query = scope.get("query_string", b"")
        if rest == "lookup":
            params = _params(query)
            if params is None or set(params) != {"source", "source_id"}:
                return None
            source, source_id = params["source"], params["source_id"]
            if not (len(source) <= 32 and _SOURCE.fullmatch(source) and 1 <= len(source_id) <= 128):
                return None
            return self.templates.get("/v1/customers/lookup"), lambda ctx: routes.answer_lookup(ctx, source, source_id)
        if rest == "search":
            params = _params(query)
            if params is None or not params or not set(params) <= {*_SEARCH_BOUNDS, "limit"}:
                return None
            for key, (low, high) in _SEARCH_BOUNDS.items():
                value = params.get(key)
                if value is not None and not low <= len(value) <= high:
                    return None
            limit_text = params.get("limit", "10")
            if not _LIMIT.fullmatch(limit_text) or int(limit_text) > 50:
                return None
            if "email" not in params and "phone" not in params and "name" not in params:
                return None  # FastAPI answers the 422
            if "name" in params and "postcode" not in params:
                return None
            args = (params.get("email"), params.get("phone"), params.get("name"), params.get("postcode"), int(limit_text))
            return self.templates.get("/v1/customers/search"), lambda ctx: routes.answer_search(ctx, *args)
        if query:
            return None
        parts = rest.split("/")
        golden_id = parts[0]
        if len(parts) > 2 or not _GOLDEN_ID.fullmatch(golden_id):
            return None
        if len(parts) == 1:
            return self.templates.get("/v1/customers/{golden_id}"), lambda ctx: routes.answer_customer(ctx, golden_id)
        answer = _SUB.get(parts[1])
        if answer is None:
            return None
        return self.templates.get(f"/v1/customers/{{golden_id}}/{parts[1]}"), lambda ctx: answer(ctx, golden_id)

    async def serve(self, scope: dict[str, Any], send: Callable[..., Any], route: Any,
                    answer: Callable[[Any], dict[str, Any]]) -> None:
        """Authorize, answer and send (problem+json for 401/403/404/503, 308 for a retired id, as FastAPI would)."""
        scope["route"] = route
        try:
            ctx = authorize(self.state.key_store, self.state.repository, scope["headers"], scope["state"])
            body = orjson.dumps(answer(ctx))
            status, headers = 200, list(_JSON)
        except routes.CustomerMoved as exc:  # a retired golden id: 308 to the survivor, as api.routes.moved_response
            body, location = routes.moved_parts(exc, scope.get("query_string", b""))
            status, headers = 308, [(b"location", location.encode("latin-1")), *_JSON]
        except ProblemError as exc:
            body = orjson.dumps(problem_body(exc.status, exc.detail, title=exc.title, instance=scope["path"],
                                             errors=exc.errors, candidates=exc.candidates))
            status = exc.status
            headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
            headers.append((b"content-type", PROBLEM_JSON.encode()))
        headers.insert(0, (b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _params(query: bytes) -> dict[str, str] | None:
    """Query parameters like Starlette parses them; None when a name repeats (let FastAPI decide)."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    return params if len(params) == len(pairs) else None
