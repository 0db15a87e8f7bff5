"""Typed dependencies: the caller's key and the gold snapshot a request reads (taken once, so one publication)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from api.problems import ProblemError
from api.repository import GoldSnapshot
from api.security import ApiKey

api_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="An API key with scope `read` (and `pii` to see unmasked email, phone, address and birth date).",
    auto_error=False,
)
_CHALLENGE = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}


@dataclass(frozen=True, slots=True)
class ReadContext:
    """Who is asking and which publication answers."""

    caller: ApiKey
    gold: GoldSnapshot
    pii: bool


async def read_context(request: Request, api_key: Annotated[str | None, Security(api_key_header)]) -> ReadContext:
    """Authenticate the key (scope ``read``) and pin the request to the gold snapshot in force."""
    if not api_key:
        raise ProblemError(401, "Send an API key in the X-API-Key header.", title="Missing API key", headers=_CHALLENGE)
    caller = request.app.state.key_store.authenticate(api_key)
    if caller is None:
        raise ProblemError(401, "The API key is not valid.", title="Invalid API key", headers=_CHALLENGE)
    state = request.scope["state"]
    state["key_name"] = caller.name
    if "read" not in caller.scopes:
        raise ProblemError(403, "This key lacks the `read` scope.", title="Insufficient scope")
    gold = request.app.state.repository.snapshot
    if gold is None:
        raise ProblemError(503, "No gold publication is loaded yet; retry shortly.", title="Gold not ready",
                           headers={"Retry-After": "5"})
    state["manifest_version"] = gold.version
    return ReadContext(caller, gold, caller.pii)


Ctx = Annotated[ReadContext, Depends(read_context)]
