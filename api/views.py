"""Gold rows -> public response dicts (the fields of :mod:`api.schemas`), with PII masking. No business logic."""

from __future__ import annotations

from typing import Any

from api.repository import GoldSnapshot

MASK = "***"
PII_FIELDS = ("email", "phone_e164", "address_line1", "postcode", "date_of_birth")
LOYALTY_COMPONENTS = ("rfm", "tenure", "channel", "value")


def mask_email(email: str | None) -> str | None:
    """``jane.doe@example.com`` -> ``j***@example.com``."""
    if not email:
        return email
    local, at, domain = email.partition("@")
    return f"{local[:1]}{MASK}@{domain}" if at else MASK


def mask_phone(phone: str | None) -> str | None:
    """``+447700900123`` -> ``+44*******123`` (country code and last three digits kept)."""
    if not phone:
        return phone
    head = 3 if phone.startswith("+") else 0
    keep = phone[:head] + "*" * max(len(phone) - head - 3, 0) + phone[-3:]
    return keep if len(phone) > head + 3 else MASK


def mask_postcode(postcode: str | None) -> str | None:
    """``SW1A 1AA`` -> ``SW1A ***`` (the outward code stays: it locates a district, not a home)."""
    if not postcode:
        return postcode
    outward = postcode.split(" ", 1)[0] if " " in postcode else postcode[:2]
    return f"{outward} {MASK}"


def customer_public(row: dict[str, Any], *, pii: bool) -> dict[str, Any]:
    """A golden record as ``CustomerPublic`` (masked unless ``pii``)."""
    out = dict(row)
    out["source_systems"] = list(out.get("source_systems") or [])
    if not pii:
        out["email"] = mask_email(out["email"])
        out["phone_e164"] = mask_phone(out["phone_e164"])
        out["address_line1"] = MASK if out["address_line1"] else out["address_line1"]
        out["postcode"] = mask_postcode(out["postcode"])
        out["date_of_birth"] = None
    out["pii_masked"] = not pii
    return out


def customer_detail(gold: GoldSnapshot, crow: int, *, pii: bool) -> dict[str, Any]:
    """``CustomerDetailPublic``: the golden record and its source records."""
    out = customer_public(gold.customer(crow), pii=pii)
    out["sources"] = gold.sources(crow)
    return out


def loyalty_public(golden_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """``LoyaltyPublic`` from a ``gold.loyalty_scores`` row."""
    return {
        "golden_id": golden_id,
        "loyalty_score": row["loyalty_score"],
        "loyalty_tier": row["loyalty_tier"],
        "components": [{"name": c, "score": row[f"{c}_component"], "weight": row[f"{c}_weight"]} for c in LOYALTY_COMPONENTS],
        "expected_future_value": row["expected_future_value"],
        "tenure_days": row["tenure_days"],
        "as_of_date": row["as_of_date"],
    }


def summary_public(gold: GoldSnapshot, crow: int) -> dict[str, Any]:
    """``SummaryPublic``: the customer 360, every figure read from gold."""
    metrics = gold.metrics.first(crow)
    loyalty = gold.loyalty.first(crow)
    activity = None
    channels: list[dict[str, Any]] = []
    if metrics is not None:
        activity = {
            "total_orders": metrics["total_purchases"],
            "total_revenue": metrics["total_revenue"],
            "avg_order_value": metrics["avg_order_value"],
            "total_sessions": metrics["total_sessions"],
            "total_views": metrics["total_views"],
            "total_cart_adds": metrics["total_cart_adds"],
            "first_activity_date": metrics["first_activity_date"],
            "last_activity_date": metrics["last_activity_date"],
            "recency_days": metrics["recency_days"],
        }
        channels = [
            {"channel": "online", "orders": metrics["online_orders"], "revenue": metrics["online_revenue"]},
            {"channel": "store", "orders": metrics["store_orders"], "revenue": metrics["store_revenue"]},
        ]
    m = metrics or {}
    return {
        "golden_id": gold.golden_id(crow),
        "full_name": gold.customers.value("full_name", crow),
        "customer_segment": m.get("customer_segment"),
        "churn_risk": m.get("churn_risk"),
        "rfm_score": m.get("rfm_score"),
        "r_score": m.get("r_score"),
        "f_score": m.get("f_score"),
        "m_score": m.get("m_score"),
        "loyalty_tier": None if loyalty is None else loyalty["loyalty_tier"],
        "loyalty_score": None if loyalty is None else loyalty["loyalty_score"],
        "activity": activity,
        "orders_by_channel": channels,
        "favourite_categories": gold.categories.rows(crow),
        "subscription_candidates": gold.subscriptions.rows(crow),
    }


def list_item(gold: GoldSnapshot, crow: int) -> dict[str, Any]:
    """``CustomerListItemPublic``."""
    value = gold.customers.value
    return {
        "golden_id": gold.golden_id(crow),
        "full_name": value("full_name", crow),
        "city": value("city", crow),
        "country": value("country", crow),
        "loyalty_tier": gold.loyalty.first_value(crow, "loyalty_tier"),
        "customer_segment": gold.metrics.first_value(crow, "customer_segment"),
        "last_seen": value("last_seen", crow),
    }
