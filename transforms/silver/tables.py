"""The silver tables: business columns, the bronze entities that feed each one, and its latest-wins rule.

Dedupe (within a batch and against silver) keeps, per business key, the record with the latest
``_version_ts`` (nulls oldest), then the latest ``_ingested_at``, then the greatest ``_source_file``, then the greatest
``_line_number`` (the last record of the last file). ``_version_ts`` per table:

| table | key | _version_ts |
|---|---|---|
| customers | source_system, source_customer_id | updated_at, else created_at |
| products | source_system, sku | updated_at |
| stores | source_system, store_id | none (the last ingested record wins) |
| payments | source_system, payment_id | payment_ts |
| orders | source_system, order_id | updated_at, else order_ts |
| order_lines | source_system, order_id, line_number | updated_at (online); none (POS) |
| events | event_id | event_time (identical events share an event_id, so only lineage differs) |
| inventory_movements | source_system, movement_id | movement_ts |

Against silver, a batch record replaces the stored one only when its version is newer, or equal with a different
``row_hash`` from a later file (``_ingested_at``, ``_source_file``, ``_line_number``); so a rerun changes nothing and
a corrected late record updates its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.silver import entities as E
from transforms.silver.dedupe import add_row_hash

SILVER_LINEAGE = ("_version_ts", "_ingested_at", "_source_file", "_line_number", "_run_id", "ingest_date", "row_hash")


@dataclass(frozen=True)
class SilverTable:
    """One silver table: its business columns (row_hash covers them, in this order) and its bronze feeds."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    feeds: dict[tuple[str, str], E.Builder] = field(default_factory=dict)  # (kind, entity) -> builder
    version: str = ""
    # Other silver tables its refine reads (``flows.refine`` refines tables side by side, but never two that read
    # one another, either way: they keep the catalog order, so the result is the one-by-one result).
    reads: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"silver.{self.name}"


def _cols(text: str) -> tuple[str, ...]:
    return tuple(text.split())


CUSTOMERS = SilverTable(
    "customers", ("source_system", "source_customer_id"),
    _cols("source_system source_kind source_customer_id first_name last_name full_name email phone_e164 date_of_birth "
          "address_line1 city postcode country loyalty_card marketing_opt_in created_at updated_at"),
    {("online", "customers"): E.customers_from_online, ("pos", "members"): E.customers_from_pos},
    "updated_at, else created_at",
)
PRODUCTS = SilverTable(
    "products", ("source_system", "sku"),
    _cols("source_system source_kind sku product_name brand category_code category_l1 category_l2 category_l3 "
          "unit_price unit_cost currency updated_at"),
    {("online", "products"): E.products_from_online, ("pos", "products"): E.products_from_pos},
    "updated_at",
)
STORES = SilverTable(
    "stores", ("source_system", "store_id"),
    _cols("source_system source_kind store_id store_name location_type city region postcode country opened_at"),
    {("pos", "stores"): E.stores_from_pos},
    "none: the last ingested record wins",
)
PAYMENTS = SilverTable(
    "payments", ("source_system", "payment_id"),
    _cols("source_system source_kind payment_id order_id payment_ts payment_date payment_method amount status"),
    {("online", "payments"): E.payments_from_online},
    "payment_ts",
)
ORDERS = SilverTable(
    "orders", ("source_system", "order_id"),
    _cols("source_system source_kind order_id source_customer_id channel order_ts order_date status store_id "
          "device_type payment_method currency order_total shipping_postcode updated_at"),
    {("online", "orders"): E.orders_from_online, ("pos", "transactions"): E.orders_from_pos},
    "updated_at, else order_ts",
    reads=("payments",),  # payment methods (order_lines reads orders, and its step writes their totals)
)
ORDER_LINES = SilverTable(
    "order_lines", ("source_system", "order_id", "line_number"),
    _cols("source_system source_kind order_id line_number channel source_customer_id store_id sku quantity unit_price "
          "discount_amount line_total line_type order_ts order_date order_status payment_method currency updated_at"),
    {("online", "order_lines"): E.order_lines_from_online, ("pos", "transaction_lines"): E.order_lines_from_pos},
    "updated_at (online lines); none for POS lines",
    reads=("orders",),  # the order headers (and it writes order totals back)
)
EVENTS = SilverTable(
    "events", ("event_id",),
    _cols("event_id source_system source_kind event_time event_type product_id category_id category_code brand price "
          "user_id user_session device_type event_date event_hour event_day_of_week category_l1 category_l2 "
          "category_l3"),
    {("clickstream", "events"): E.events_from_clickstream},
    "event_time",
)
INVENTORY_MOVEMENTS = SilverTable(
    "inventory_movements", ("source_system", "movement_id"),
    _cols("source_system source_kind movement_id movement_ts movement_date location_id sku movement_type quantity "
          "unit_cost reference"),
    {("inventory", "movements"): E.movements_from_inventory},
    "movement_ts",
)

TABLES: dict[str, SilverTable] = {
    t.name: t for t in (CUSTOMERS, PRODUCTS, STORES, PAYMENTS, ORDERS, ORDER_LINES, EVENTS, INVENTORY_MOVEMENTS)
}


def silver_table(name: str) -> SilverTable:
    """A silver table by name (``customers`` or ``silver.customers``), with an error that lists the known ones."""
    key = name.removeprefix("silver.")
    if key not in TABLES:
        from lakehouse.errors import LakehouseError

        raise LakehouseError(f"unknown silver table {name!r} (known: {', '.join(TABLES)})")
    return TABLES[key]


def to_batch(df: DataFrame, *, table: SilverTable) -> DataFrame:
    """The batch in the table's column order (business columns, row_hash, lineage, then the batch-only columns)."""
    hashed = df.transform(add_row_hash, columns=table.columns)
    lineage = [c for c in ("_version_ts", "_ingested_at", "_source_file", "_line_number", "ingest_date", "row_hash")]
    batch = [c for c in E.BATCH_COLUMNS if c in df.columns]
    return hashed.select(*table.columns, *lineage, *batch)


def to_silver(batch: DataFrame, *, table: SilverTable, run_id: str) -> DataFrame:
    """Drop the batch-only columns and stamp the refine run id: the rows as stored in silver."""
    return batch.select(*table.columns, *[F.lit(run_id).alias(c) if c == "_run_id" else F.col(c) for c in SILVER_LINEAGE])
