"""Routes under ``/v1``: thin reads of the pinned gold snapshot, answered with orjson (no per-response validation)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from starlette.responses import JSONResponse, Response

from api import views
from api.deps import Ctx
from api.problems import PROBLEM_JSON, ProblemError
from api.schemas import (
    CustomerDetailPublic,
    CustomerPagePublic,
    LoyaltyPublic,
    ProblemPublic,
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
NOT_FOUND = {404: _problem_doc("No such customer in the served publication.")}

router = APIRouter(prefix="/v1", tags=["customers"], responses=COMMON_ERRORS)

GoldenId = Annotated[str, Path(pattern=GOLDEN_ID_PATTERN, max_length=64, description="Golden customer id.",
                               examples=["G000000042"])]


def _not_found(ctx: Ctx, what: str) -> ProblemError:
    return ProblemError(404, f"No {what} in publication v{ctx.gold.version}.")


def _row(ctx: Ctx, golden_id: str) -> int:
    crow = ctx.gold.customer_row(golden_id)
    if crow is None:
        raise _not_found(ctx, f"golden customer {golden_id}")
    return crow


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
    row = ctx.gold.loyalty.first(_row(ctx, golden_id))
    if row is None:
        raise _not_found(ctx, f"loyalty score for {golden_id}")
    return views.loyalty_public(golden_id, row)


def answer_vouchers(ctx: Ctx, golden_id: str) -> dict[str, Any]:
    """``VouchersPublic``."""
    return {"golden_id": golden_id, "vouchers": ctx.gold.vouchers.rows(_row(ctx, golden_id))}


def answer_summary(ctx: Ctx, golden_id: str) -> dict[str, Any]:
    """``SummaryPublic``."""
    return views.summary_public(ctx.gold, _row(ctx, golden_id))


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


@router.get("/customers/{golden_id}", response_model=CustomerDetailPublic, responses=NOT_FOUND,
            summary="Golden customer record")
async def get_customer(ctx: Ctx, golden_id: GoldenId) -> Response:
    """The golden record with its source records."""
    return FastJSON(answer_customer(ctx, golden_id))


@router.get("/customers/{golden_id}/loyalty", response_model=LoyaltyPublic, responses=NOT_FOUND,
            summary="Loyalty score, tier and components")
async def get_loyalty(ctx: Ctx, golden_id: GoldenId) -> Response:
    """Score (0-100), tier and the weighted components that explain it."""
    return FastJSON(answer_loyalty(ctx, golden_id))


@router.get("/customers/{golden_id}/vouchers", response_model=VouchersPublic, responses=NOT_FOUND,
            summary="Voucher recommendations")
async def get_vouchers(ctx: Ctx, golden_id: GoldenId) -> Response:
    """The published voucher recommendations, best rank first, with reasons and validity."""
    return FastJSON(answer_vouchers(ctx, golden_id))


@router.get("/customers/{golden_id}/summary", response_model=SummaryPublic, responses=NOT_FOUND,
            summary="Customer 360")
async def get_summary(ctx: Ctx, golden_id: GoldenId) -> Response:
    """Segment, loyalty, activity and recency, orders by channel, favourite categories, subscription candidates."""
    return FastJSON(answer_summary(ctx, golden_id))
