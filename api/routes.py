"""Routes under ``/v1``: thin reads of the pinned gold snapshot, answered with orjson (no per-response validation)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import JSONResponse, Response

from api import views
from api.deps import Ctx
from api.problems import PROBLEM_JSON, ProblemError
from api.schemas import (
    CustomerDetailPublic,
    CustomerPagePublic,
    LoyaltyPublic,
    ProblemPublic,
    RedirectPublic,
    SearchResultPublic,
    Segment,
    SummaryPublic,
    Tier,
    VouchersPublic,
)

GOLDEN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
SOURCE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"


class FastJSON(JSONResponse):
    """JSON through orjson (dates ISO-8601, UTC datetimes with offset); a JSONResponse so OpenAPI shows the model."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _problem_doc(description: str) -> dict[str, Any]:
    return {"description": description, "model": ProblemPublic,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemPublic"}}}}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem_doc("Too many query parameters."),
    401: _problem_doc("Missing or invalid API key."),
    403: _problem_doc("The key lacks the `read` scope."),
    422: _problem_doc("A parameter is invalid."),
    413: _problem_doc("A request body was sent (the API reads none)."),
    414: _problem_doc("The URL is too long."),
    503: _problem_doc("No gold publication is loaded yet."),
}
NOT_FOUND = {404: _problem_doc("No such customer in the served publication (also: a retired id whose records now "
                                "belong to several customers; `candidates` names them).")}
MOVED: dict[int | str, dict[str, Any]] = {308: {
    "description": "Permanent Redirect: the golden id was retired by an identity merge; `Location` is the same "
                   "resource of the surviving customer (later merges followed). Needs the same key and scope.",
    "model": RedirectPublic,
    "headers": {"Location": {"description": "`/v1/customers/{survivor}` plus the same sub-resource and query string.",
                             "schema": {"type": "string"}}},
}}
CUSTOMER_ERRORS = {**NOT_FOUND, **MOVED}  # the routes under /customers/{golden_id}
MAX_CANDIDATES = 20

router = APIRouter(prefix="/v1", tags=["customers"], responses=COMMON_ERRORS)

GoldenId = Annotated[str, Path(pattern=GOLDEN_ID_PATTERN, max_length=64, description="Golden customer id.",
                               examples=["G000000042"])]


def _not_found(ctx: Ctx, what: str) -> ProblemError:
    return ProblemError(404, f"No {what} in publication v{ctx.gold.version}.")


class CustomerMoved(Exception):
    """A retired golden id with one current survivor: answered 308 with the survivor's URL (same sub-resource)."""

    def __init__(self, golden_id: str, survivor: str, run_id: str | None, suffix: str) -> None:
        super().__init__(golden_id)
        self.golden_id, self.survivor, self.run_id, self.suffix = golden_id, survivor, run_id, suffix


def moved_parts(exc: CustomerMoved, query: bytes) -> tuple[bytes, str]:
    """The 308 body (``RedirectPublic``) and ``Location`` (the request's query string kept) for a retired id."""
    body = orjson.dumps({"golden_id": exc.golden_id, "merged_into": exc.survivor, "changed_in_run": exc.run_id})
    location = f"/v1/customers/{quote(exc.survivor, safe='')}{exc.suffix}"
    if query:
        location += "?" + query.decode("latin-1")
    return body, location


async def moved_response(request: Request, exc: CustomerMoved) -> Response:
    """FastAPI exception handler for :class:`CustomerMoved` (the fast path builds the same answer)."""
    body, location = moved_parts(exc, request.scope.get("query_string", b""))
    return Response(body, status_code=308, media_type="application/json", headers={"Location": location})


def _row(ctx: Ctx, golden_id: str, suffix: str = "") -> int:
    """Customer row of a current golden id; a retired id raises :class:`CustomerMoved` or a 404 that says why."""
    crow = ctx.gold.customer_row(golden_id)
    if crow is not None:
        return crow
    retired = ctx.gold.retired_id(golden_id)
    if retired is None:
        raise _not_found(ctx, f"golden customer {golden_id}")
    run = retired.run_id or "an earlier run"
    if len(retired.survivors) == 1:
        raise CustomerMoved(golden_id, retired.survivors[0], retired.run_id, suffix)
    if not retired.survivors:
        raise ProblemError(404, f"Golden customer {golden_id} was merged into {', '.join(retired.merged_into)} in run "
                                f"{run}; no customer in publication v{ctx.gold.version} succeeds it.",
                           title="Customer id retired")
    shown = list(retired.survivors[:MAX_CANDIDATES])
    more = len(retired.survivors) - len(shown)
    listed = ", ".join(shown) + (f" and {more} more" if more else "")
    raise ProblemError(404, f"Golden customer {golden_id} was retired in run {run} and its records now belong to "
                            f"{len(retired.survivors)} customers ({listed}); ask for one of them by id or look the "
                            f"record up by its source id.", title="Customer id retired", candidates=shown)


def encode_cursor(after: str, tier: str | None, segment: str | None) -> str:
    """An opaque cursor: where the page ended and the filters it belongs to."""
    raw = orjson.dumps({"a": after, "t": tier, "s": segment})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, tier: str | None, segment: str | None) -> str:
    """The golden id a cursor resumes after (422 when it is malformed or was issued for other filters)."""
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(doc, dict) or not isinstance(doc.get("a"), str):
            raise ValueError
        after = doc["a"]
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
        raise ProblemError(422, "The cursor is not valid; pass back `next_cursor` from the previous page unchanged.",
                           title="Invalid request", errors=[{"location": "query.cursor", "message": "not a valid cursor"}]) from None
    if doc.get("t") != tier or doc.get("s") != segment:
        raise ProblemError(422, "The cursor was issued for other filters; use the same tier and segment as the first page.",
                           title="Invalid request", errors=[{"location": "query.cursor", "message": "filters differ"}])
    return after


# -- answers: shared by the FastAPI routes below and the hot-path dispatcher (api.fastpath) --------------------------
def answer_list(ctx: Ctx, tier: str | None, segment: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """``CustomerPagePublic``."""
    after = decode_cursor(cursor, tier, segment) if cursor else None
    rows, more = ctx.gold.page(tier=tier, segment=segment, after=after, limit=limit)
    items = [views.list_item(ctx.gold, r) for r in rows]
    next_cursor = encode_cursor(items[-1]["golden_id"], tier, segment) if more and items else None
    return {"items": items, "limit": limit, "next_cursor": next_cursor}


def answer_lookup(ctx: Ctx, source: str, source_id: str) -> dict[str, Any]:
    """``CustomerDetailPublic`` of a source record."""
    crow = ctx.gold.lookup_source(source, source_id)
    if crow is None:
        raise _not_found(ctx, f"{source} customer with that id")
    return views.customer_detail(ctx.gold, crow, pii=ctx.pii)


def answer_search(ctx: Ctx, email: str | None, phone: str | None, name: str | None, postcode: str | None,
                  limit: int) -> dict[str, Any]:
    """``SearchResultPublic``."""
    if email is None and phone is None and name is None:
        raise ProblemError(422, "Give email, phone, or name with postcode.", title="Invalid request",
                           errors=[{"location": "query", "message": "one of email, phone, name is required"}])
    if name is not None and postcode is None:
        raise ProblemError(422, "A name search needs a postcode.", title="Invalid request",
                           errors=[{"location": "query.postcode", "message": "required with name"}])
    rows = ctx.gold.search(email=email, phone=phone, name=name, postcode=postcode, limit=limit)
    items = [views.customer_public(ctx.gold.customer(r), pii=ctx.pii) for r in rows]
    return {"items": items, "count": len(items), "limit": limit}


def answer_customer(ctx: Ctx, golden_id: str) -> dict[str, Any]:
    """``CustomerDetailPublic``."""
    return views.customer_detail(ctx.gold, _row(ctx, golden_id), pii=ctx.pii)


def answer_loyalty(ctx: Ctx, golden_id: str) -> dict[str, Any]:
    """``LoyaltyPublic``."""
    row = ctx.gold.loyalty.first(_row(ctx, golden_id, "/loyalty"))
    if row is None:
        raise _not_found(ctx, f"loyalty score for {golden_id}")
    return views.loyalty_public(golden_id, row)


def answer_vouchers(ctx: Ctx, golden_id: str) -> dict[str, Any]:
    """``VouchersPublic``."""
    return {"golden_id": golden_id, "vouchers": ctx.gold.vouchers.rows(_row(ctx, golden_id, "/vouchers"))}


def answer_summary(ctx: Ctx, golden_id: str) -> dict[str, Any]:
    """``SummaryPublic``."""
    return views.summary_public(ctx.gold, _row(ctx, golden_id, "/summary"))


# -- routes ---------------------------------------------------------------------------------------------------------
@router.get("/customers", response_model=CustomerPagePublic, summary="List customers (cursor pagination)")
async def list_customers(
    ctx: Ctx,
    tier: Annotated[Tier | None, Query(description="Loyalty tier.")] = None,
    segment: Annotated[Segment | None, Query(description="Customer segment.")] = None,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
) -> Response:
    """Customers in golden id order, filtered by loyalty tier and/or segment; stable across publications."""
    return FastJSON(answer_list(ctx, tier.value if tier is not None else None,
                                segment.value if segment is not None else None, cursor, limit))


@router.get("/customers/lookup", response_model=CustomerDetailPublic, responses=NOT_FOUND,
            summary="Resolve a source system's customer id")
async def lookup_customer(
    ctx: Ctx,
    source: Annotated[str, Query(pattern=SOURCE_PATTERN, max_length=32, description="Source system, e.g. pos.",
                                 examples=["pos"])],
    source_id: Annotated[str, Query(min_length=1, max_length=128, description="The customer's id in that source.",
                                    examples=["M0000042"])],
) -> Response:
    """The golden record that a source record (``source``, ``source_id``) was merged into."""
    return FastJSON(answer_lookup(ctx, source, source_id))


@router.get("/customers/search", response_model=SearchResultPublic, summary="Search by email, phone or name + postcode")
async def search_customers(
    ctx: Ctx,
    email: Annotated[str | None, Query(min_length=3, max_length=254, description="Any case and spacing.")] = None,
    phone: Annotated[str | None, Query(min_length=5, max_length=32, description="Any common format; national numbers are read as GB.")] = None,
    name: Annotated[str | None, Query(min_length=2, max_length=100, description="Name words (all must match); needs postcode.")] = None,
    postcode: Annotated[str | None, Query(min_length=2, max_length=16, description="Any case and spacing.")] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> Response:
    """Customers matching every given criterion, normalized exactly like the pipeline normalizes source records."""
    return FastJSON(answer_search(ctx, email, phone, name, postcode, limit))


@router.get("/customers/{golden_id}", response_model=CustomerDetailPublic, responses=CUSTOMER_ERRORS,
            summary="Golden customer record")
async def get_customer(ctx: Ctx, golden_id: GoldenId) -> Response:
    """The golden record with its source records."""
    return FastJSON(answer_customer(ctx, golden_id))


@router.get("/customers/{golden_id}/loyalty", response_model=LoyaltyPublic, responses=CUSTOMER_ERRORS,
            summary="Loyalty score, tier and components")
async def get_loyalty(ctx: Ctx, golden_id: GoldenId) -> Response:
    """Score (0-100), tier and the weighted components that explain it."""
    return FastJSON(answer_loyalty(ctx, golden_id))


@router.get("/customers/{golden_id}/vouchers", response_model=VouchersPublic, responses=CUSTOMER_ERRORS,
            summary="Voucher recommendations")
async def get_vouchers(ctx: Ctx, golden_id: GoldenId) -> Response:
    """The published voucher recommendations, best rank first, with reasons and validity."""
    return FastJSON(answer_vouchers(ctx, golden_id))


@router.get("/customers/{golden_id}/summary", response_model=SummaryPublic, responses=CUSTOMER_ERRORS,
            summary="Customer 360")
async def get_summary(ctx: Ctx, golden_id: GoldenId) -> Response:
    """Segment, loyalty, activity and recency, orders by channel, favourite categories, subscription candidates."""
    return FastJSON(answer_summary(ctx, golden_id))
