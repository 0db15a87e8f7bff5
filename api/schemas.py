"""Public response models (``*Public``): the API's contract, documented in OpenAPI with examples.

Routes build plain dicts of exactly these fields (see :mod:`api.views`) and serialise them with orjson; the models
document the shape, and the tests validate every response against them.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.repository import SEGMENTS, TIERS

Tier = Enum("Tier", {t: t for t in TIERS}, type=str)  # type: ignore[misc]
Segment = Enum("Segment", {s.replace(" ", "_"): s for s in SEGMENTS}, type=str)  # type: ignore[misc]

_CUSTOMER_EXAMPLE = {
    "golden_id": "G000000042",
    "first_name": "Amelia",
    "last_name": "Taylor",
    "full_name": "Amelia Taylor",
    "email": "a***@example.com",
    "phone_e164": "+44*******042",
    "date_of_birth": None,
    "address_line1": "***",
    "city": "London",
    "postcode": "BS1 ***",
    "country": "GB",
    "marketing_opt_in": False,
    "source_record_count": 2,
    "source_systems": ["online", "pos"],
    "first_seen": "2025-02-12T00:00:00+00:00",
    "last_seen": "2025-03-14T00:00:00+00:00",
    "pii_masked": True,
}


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRecordPublic(_Public):
    """One source system's record merged into the golden customer (from ``gold.customer_xref``)."""

    source_system: str | None = Field(description="Source name: online, pos, or a mapped source such as olist.")
    source_customer_id: str | None = Field(description="The customer's id in that source.")
    match_score: float | None = Field(description="Identity-resolution confidence of the link (0-1).")
    match_rule: str | None = Field(description="The rule that linked the record.")


class CustomerPublic(_Public):
    """The golden customer record. Email, phone, address and birth date are masked unless the key has ``pii``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CUSTOMER_EXAMPLE]})

    golden_id: str
    first_name: str | None
    last_name: str | None
    full_name: str | None
    email: str | None
    phone_e164: str | None
    date_of_birth: dt.date | None
    address_line1: str | None
    city: str | None
    postcode: str | None
    country: str | None = Field(description="ISO-3166 alpha-2.")
    marketing_opt_in: bool | None
    source_record_count: int | None
    source_systems: list[str]
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    pii_masked: bool = Field(description="True when PII fields were masked because the key lacks the pii scope.")


class CustomerDetailPublic(CustomerPublic):
    """The golden record with every source record linked to it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        **_CUSTOMER_EXAMPLE,
        "sources": [
            {"source_system": "online", "source_customer_id": "C0000042", "match_score": 1.0, "match_rule": "email_exact"},
            {"source_system": "pos", "source_customer_id": "M0000042", "match_score": 0.82, "match_rule": "name_postcode"},
        ],
    }]})

    sources: list[SourceRecordPublic]


class SearchResultPublic(_Public):
    """Customers matching a search, in golden id order."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"items": [_CUSTOMER_EXAMPLE], "count": 1, "limit": 10}]})

    items: list[CustomerPublic]
    count: int
    limit: int


class LoyaltyComponentPublic(_Public):
    """One component of the loyalty score and its weight."""

    name: str = Field(description="rfm, tenure, channel or value.")
    score: float | None = Field(description="Component score, 0-100.")
    weight: float | None = Field(description="Weight of the component in the loyalty score.")


class LoyaltyPublic(_Public):
    """Loyalty score and tier, with the components that explain it (``gold.loyalty_scores``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "golden_id": "G000000042", "loyalty_score": 71.5, "loyalty_tier": "gold",
        "components": [{"name": "rfm", "score": 80.0, "weight": 0.4}, {"name": "tenure", "score": 55.0, "weight": 0.2},
                       {"name": "channel", "score": 100.0, "weight": 0.2}, {"name": "value", "score": 42.5, "weight": 0.2}],
        "expected_future_value": 211.5, "tenure_days": 420, "as_of_date": "2026-01-03"}]})

    golden_id: str
    loyalty_score: float | None = Field(description="0-100.")
    loyalty_tier: str | None = Field(description="bronze, silver, gold or platinum.")
    components: list[LoyaltyComponentPublic]
    expected_future_value: float | None
    tenure_days: int | None
    as_of_date: dt.date | None


class VoucherPublic(_Public):
    """One voucher recommendation (``gold.voucher_recommendations``)."""

    rank: int | None
    sku: str | None = Field(description="Null for a category-wide offer.")
    product_name: str | None
    category_l1: str | None
    reason: str | None = Field(description="buy_again, frequently_bought_together, category_affinity or popular_in_segment.")
    score: float | None
    voucher_pct: float | None
    voucher_value: float | None
    valid_from: dt.date | None
    valid_to: dt.date | None


class VouchersPublic(_Public):
    """The customer's current voucher recommendations, best first."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "golden_id": "G000000042",
        "vouchers": [{"rank": 1, "sku": "SKU-00647", "product_name": "Wireless earbuds", "category_l1": "electronics",
                      "reason": "buy_again", "score": 0.92, "voucher_pct": 15.0, "voucher_value": 5.0,
                      "valid_from": "2026-01-04", "valid_to": "2026-02-03"}]}]})

    golden_id: str
    vouchers: list[VoucherPublic]


class ChannelOrdersPublic(_Public):
    """Orders and revenue in one channel (``gold.customer_metrics``)."""

    channel: Literal["online", "store"]
    orders: int | None
    revenue: float | None


class CategoryPublic(_Public):
    """A favourite category: net revenue of sale lines in it (``gold.fact_sales``)."""

    category: str
    lines: int
    net_revenue: float


class SubscriptionCandidatePublic(_Public):
    """A product bought at a regular interval (``gold.subscription_candidates``)."""

    sku: str | None
    product_name: str | None
    purchase_count: int | None
    mean_interval_days: float | None
    interval_cv: float | None
    last_purchase_date: dt.date | None
    next_expected_date: dt.date | None


class ActivityPublic(_Public):
    """Behaviour totals and recency (``gold.customer_metrics``)."""

    total_orders: int | None
    total_revenue: float | None
    avg_order_value: float | None
    total_sessions: int | None
    total_views: int | None
    total_cart_adds: int | None
    first_activity_date: dt.date | None
    last_activity_date: dt.date | None
    recency_days: int | None


class SummaryPublic(_Public):
    """Customer 360: segment, loyalty, activity, orders by channel, favourite categories, subscription candidates."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "golden_id": "G000000042", "full_name": "Amelia Taylor", "customer_segment": "Loyal", "churn_risk": "Low",
        "rfm_score": 12, "r_score": 4, "f_score": 4, "m_score": 4, "loyalty_tier": "gold", "loyalty_score": 71.5,
        "activity": {"total_orders": 9, "total_revenue": 411.5, "avg_order_value": 45.72, "total_sessions": 31,
                     "total_views": 140, "total_cart_adds": 22, "first_activity_date": "2025-02-12",
                     "last_activity_date": "2026-01-02", "recency_days": 1},
        "orders_by_channel": [{"channel": "online", "orders": 6, "revenue": 250.0},
                              {"channel": "store", "orders": 3, "revenue": 161.5}],
        "favourite_categories": [{"category": "electronics", "lines": 4, "net_revenue": 180.0}],
        "subscription_candidates": [{"sku": "SKU-00714", "product_name": "Coffee beans 1kg", "purchase_count": 5,
                                     "mean_interval_days": 28.0, "interval_cv": 0.12, "last_purchase_date": "2025-12-20",
                                     "next_expected_date": "2026-01-17"}]}]})

    golden_id: str
    full_name: str | None
    customer_segment: str | None
    churn_risk: str | None
    rfm_score: int | None
    r_score: int | None
    f_score: int | None
    m_score: int | None
    loyalty_tier: str | None
    loyalty_score: float | None
    activity: ActivityPublic | None
    orders_by_channel: list[ChannelOrdersPublic]
    favourite_categories: list[CategoryPublic]
    subscription_candidates: list[SubscriptionCandidatePublic]


class CustomerListItemPublic(_Public):
    """A customer in a listing (no PII fields)."""

    golden_id: str
    full_name: str | None
    city: str | None
    country: str | None
    loyalty_tier: str | None
    customer_segment: str | None
    last_seen: dt.datetime | None


class CustomerPagePublic(_Public):
    """One page of customers in golden id order; pass ``next_cursor`` back as ``cursor`` for the next page."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "items": [{"golden_id": "G000000042", "full_name": "Amelia Taylor", "city": "London", "country": "GB",
                   "loyalty_tier": "gold", "customer_segment": "Champion", "last_seen": "2026-01-02T10:15:00+00:00"}],
        "limit": 1, "next_cursor": "eyJhIjoiRzAwMDAwMDA0MiJ9"}]})

    items: list[CustomerListItemPublic]
    limit: int
    next_cursor: str | None


class HealthPublic(_Public):
    """Liveness."""

    status: Literal["ok"]


class ReadyPublic(_Public):
    """Readiness: the publication being served."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "status": "ready", "manifest_version": 3, "published_at": "2026-01-03T02:10:00Z", "run_date": "2026-01-03",
        "loaded_at": "2026-01-03T02:10:04+00:00", "customers": 1000000, "load_seconds": 14.2}]})

    status: Literal["ready"]
    manifest_version: int
    published_at: str
    run_date: str
    loaded_at: dt.datetime
    customers: int
    load_seconds: float


class ProblemFieldPublic(_Public):
    """One invalid parameter."""

    location: str
    message: str


class ProblemPublic(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": "about:blank", "title": "Not Found", "status": 404,
        "detail": "No golden customer G000000042 in publication v3.", "instance": "/v1/customers/G000000042"}]})

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemFieldPublic] | None = None
    candidates: list[str] | None = Field(
        default=None, description="For a retired golden id whose records now belong to several customers: their "
                                  "current golden ids (the API does not pick one).")


class RedirectPublic(_Public):
    """A retired golden id (merged into another identity), answered with 308 and the survivor's URL in Location."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "golden_id": "G000000042", "merged_into": "G000000007", "changed_in_run": "publish-20260103"}]})

    golden_id: str = Field(description="The retired golden id that was requested.")
    merged_into: str = Field(description="The current golden id of the same customer (later merges followed).")
    changed_in_run: str | None = Field(description="The identity run that retired the requested id.")
