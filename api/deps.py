"""Typed dependencies: the caller's key and the gold snapshot a request reads (taken once, so one publication)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Iterable

from fastapi import Depends, Request

from api.problems import ProblemError
from api.repository import GoldRepository, GoldSnapshot
from api.security import ApiKey, KeyStore

API_KEY_HEADER = b"x-api-key"
SECURITY_SCHEME = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key with scope `read` (and `pii` to see unmasked email, phone, address and birth date).",
    }
}
_CHALLENGE = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}


@dataclass(frozen=True, slots=True)
class ReadContext:
    """Who is asking and which publication answers."""

    caller: ApiKey
    gold: GoldSnapshot
    pii: bool


def authorize(key_store: KeyStore, repository: GoldRepository, headers: Iterable[tuple[bytes, bytes]],
              state: dict[str, Any]) -> ReadContext:
    """Authenticate the ``X-API-Key`` header (scope ``read``) and pin the gold snapshot in force.

    Records the key's name and the manifest version in the request ``state`` (for the access log and the
    ``X-Manifest-Version`` header). Raises :class:`ProblemError` 401/403/503.
    """
    api_key = None
    for name, value in headers:
        if name == API_KEY_HEADER:
            api_key = value.decode("latin-1")
            break
    if not api_key:
        raise ProblemError(401, "Send an API key in the X-API-Key header.", title="Missing API key", headers=_CHALLENGE)
    caller = key_store.authenticate(api_key)
    if caller is None:
        raise ProblemError(401, "The API key is not valid.", title="Invalid API key", headers=_CHALLENGE)
    state["key_name"] = caller.name
    if "read" not in caller.scopes:
        raise ProblemError(403, "This key lacks the `read` scope.", title="Insufficient scope")
    gold = repository.snapshot
    if gold is None:
        raise ProblemError(503, "No gold publication is loaded yet; retry shortly.", title="Gold not ready",
                           headers={"Retry-After": "5"})
    state["manifest_version"] = gold.version
    return ReadContext(caller, gold, caller.pii)


_ALLOWED: dict[int, frozenset[str]] = {}


def reject_unknown_parameters(scope: dict[str, Any], query_params: Iterable[str]) -> None:
    """422 when the query names a parameter the route does not declare (a typo must not be silently ignored)."""
    route = scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = _ALLOWED.get(id(route))
    if allowed is None:
        allowed = _ALLOWED[id(route)] = frozenset(p.alias for p in dependant.query_params)
    unknown = sorted(set(query_params) - allowed)
    if unknown:
        shown = ", ".join(name[:40] for name in unknown[:5])
        raise ProblemError(422, f"Unknown query parameter(s): {shown}. Allowed: {', '.join(sorted(allowed)) or 'none'}.",
                           title="Invalid request",
                           errors=[{"location": f"query.{name[:40]}", "message": "unknown parameter"} for name in unknown[:5]])


async def read_context(request: Request) -> ReadContext:
    """The request's :class:`ReadContext` (see :func:`authorize`); unknown query parameters are refused first.

    The key is read from the raw headers rather than through a ``Security`` sub-dependency (one dependency per
    request keeps the path short); :data:`SECURITY_SCHEME` documents it in OpenAPI.
    """
    state = request.app.state
    if request.scope.get("query_string"):
        reject_unknown_parameters(request.scope, request.query_params.keys())
    return authorize(state.key_store, state.repository, request.scope["headers"], request.scope["state"])


Ctx = Annotated[ReadContext, Depends(read_context)]
