"""Canonical landing entities: the explicit schema every source of a given kind lands in.

A *kind* is a type of system (``online`` shop, ``pos`` store system, ``clickstream``, ``inventory``).
A *source* is one instance of a kind: the generator writes sources named after their kind; a source mapping
(``mappings/*.yaml``) adds another source of an existing kind, e.g. ``olist`` of kind ``online``.

Landing files carry these column names (a mapping renames a foreign export onto them at bronze time).
``required`` columns must be present in every file; other columns may be missing (null in bronze);
columns not listed here are schema drift and are kept, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EntitySchema:
    """Column contract of one canonical landing entity."""

    kind: str
    entity: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    business_key: tuple[str, ...]
    description: str = ""
    event_time: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.kind}.{self.entity}"


def _e(kind: str, entity: str, columns: str, required: str, key: str, description: str, event_time: str | None = None) -> EntitySchema:
    return EntitySchema(
        kind=kind,
        entity=entity,
        columns=tuple(columns.split()),
        required=tuple(required.split()),
        business_key=tuple(key.split()),
        description=description,
        event_time=event_time,
    )


ONLINE_CUSTOMERS = _e(
    "online", "customers",
    "customer_id email first_name last_name phone date_of_birth address_line1 city postcode country "
    "marketing_opt_in created_at updated_at",
    "customer_id", "customer_id", "Online shop accounts.", "updated_at",
)
ONLINE_PRODUCTS = _e(
    "online", "products",
    "sku product_name brand category_code unit_price unit_cost currency updated_at",
    "sku", "sku", "Online catalogue.", "updated_at",
)
ONLINE_ORDERS = _e(
    "online", "orders",
    "order_id customer_id order_ts status channel device_type currency shipping_postcode updated_at",
    "order_id", "order_id", "Online order headers.", "order_ts",
)
ONLINE_ORDER_LINES = _e(
    "online", "order_lines",
    "order_id line_number sku quantity unit_price discount_amount line_total updated_at",
    "order_id line_number", "order_id line_number", "Online order lines.", "updated_at",
)
ONLINE_PAYMENTS = _e(
    "online", "payments",
    "payment_id order_id payment_ts payment_method amount status",
    "payment_id", "payment_id", "Online order payments.", "payment_ts",
)
POS_MEMBERS = _e(
    "pos", "members",
    "member_id loyalty_card full_name email phone birth_date street town post_code country opt_in joined_at updated_at",
    "member_id", "member_id", "POS loyalty members and store customers.", "updated_at",
)
POS_PRODUCTS = _e(
    "pos", "products",
    "item_code description brand department price cost updated_at",
    "item_code", "item_code", "Store catalogue (same SKUs as online, own attribute spellings).", "updated_at",
)
POS_STORES = _e(
    "pos", "stores",
    "store_id store_name location_type city region postcode country opened_at",
    "store_id", "store_id", "Stores and warehouses.",
)
POS_TRANSACTIONS = _e(
    "pos", "transactions",
    "transaction_id store_id member_id transaction_ts transaction_type payment_method total_amount",
    "transaction_id", "transaction_id", "POS receipts (sale or return).", "transaction_ts",
)
POS_TRANSACTION_LINES = _e(
    "pos", "transaction_lines",
    "transaction_id line_number item_code quantity unit_price discount line_total",
    "transaction_id line_number", "transaction_id line_number", "POS receipt lines.",
)
CLICKSTREAM_EVENTS = _e(
    "clickstream", "events",
    "event_time event_type product_id category_id category_code brand price user_id user_session device_type",
    "event_time event_type", "event_time user_id product_id user_session event_type",
    "Web and app events (seed 003 events_raw columns plus device_type).", "event_time",
)
INVENTORY_MOVEMENTS = _e(
    "inventory", "movements",
    "movement_id movement_ts location_id sku movement_type quantity unit_cost reference",
    "movement_id", "movement_id", "Stock movements per store or warehouse.", "movement_ts",
)

ENTITIES: tuple[EntitySchema, ...] = (
    ONLINE_CUSTOMERS, ONLINE_PRODUCTS, ONLINE_ORDERS, ONLINE_ORDER_LINES, ONLINE_PAYMENTS,
    POS_MEMBERS, POS_PRODUCTS, POS_STORES, POS_TRANSACTIONS, POS_TRANSACTION_LINES,
    CLICKSTREAM_EVENTS, INVENTORY_MOVEMENTS,
)
KINDS: tuple[str, ...] = ("online", "pos", "clickstream", "inventory")


def entity(kind: str, name: str) -> EntitySchema:
    """Look up a canonical entity, with an error that lists what exists."""
    for spec in ENTITIES:
        if spec.kind == kind and spec.entity == name:
            return spec
    known = ", ".join(e.qualified for e in ENTITIES)
    raise KeyError(f"unknown entity {kind}.{name} (known: {known})")
