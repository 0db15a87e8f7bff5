"""The table catalogue: every table's layer, name, keys, partitioning, and where it lives.

Only this module (with :mod:`lakehouse.storage`) turns a (layer, table) into a location. Code addresses tables by
:class:`TableSpec`; SQL addresses them as ``delta.`<location>``` via :func:`sql_ref`, which works the same on Sail,
Apache Spark with Delta, and Databricks, and does not depend on an in-memory catalogue surviving a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse.entities import ENTITIES, EntitySchema
from lakehouse.settings import Settings


@dataclass(frozen=True)
class TableSpec:
    """One Delta table."""

    layer: str  # bronze | silver | gold | system
    name: str
    keys: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    description: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"

    def location(self, settings: Settings) -> str:
        """Absolute location (local path or s3:// URI) of the table's Delta log root."""
        return f"{str(settings.warehouse_root).rstrip('/')}/{self.layer}/{self.name}"


def sql_ref(spec: TableSpec, settings: Settings) -> str:
    """A path-based SQL reference to the table: delta.`<location>`."""
    return f"delta.`{spec.location(settings)}`"


# ---------------------------------------------------------------------------------------------------------------
# Bronze: one table per (source, entity); original columns as strings plus audit columns.
# ---------------------------------------------------------------------------------------------------------------
BRONZE_AUDIT_COLUMNS: tuple[str, ...] = (
    "_ingested_at",   # timestamp the batch was written
    "_source_file",   # full URI of the landing file
    "_line_number",   # 1-based record number inside the file (header excluded)
    "_raw_line",      # the raw text, only for records that could not be parsed
    "_parse_error",   # why it could not be parsed (null for good records)
    "_run_id",        # batch / run id
    "ingest_date",    # the landing folder's date (partition column)
)


def bronze_table(source: str, entity: EntitySchema | str) -> TableSpec:
    """The bronze table of a source's entity, e.g. ``bronze.pos_transactions``."""
    name = entity if isinstance(entity, str) else entity.entity
    return TableSpec(
        "bronze",
        f"{source}_{name}",
        keys=("_source_file", "_line_number"),
        partition_by=("ingest_date",),
        description=f"Raw {source} {name}, append-only, one row per landing record.",
    )


# ---------------------------------------------------------------------------------------------------------------
# System tables: the bronze file ledger, quarantine, pipeline run records.
# ---------------------------------------------------------------------------------------------------------------
FILE_LEDGER = TableSpec(
    "system", "file_ledger", keys=("file_path", "fingerprint"), partition_by=(),
    description="Every landing file seen: loaded (with row counts) or rejected (with the reason). Exactly-once key.",
)
QUARANTINE = TableSpec(
    "system", "quarantine", keys=("source_table", "row_hash", "run_id"), partition_by=("ingest_date",),
    description="Rows that failed a quarantine-severity rule: table, key, original row as JSON, failed rules, run.",
)
PIPELINE_RUNS = TableSpec(
    "system", "pipeline_runs", keys=("run_id", "layer", "table_name"), partition_by=(),
    description="One row per table per layer run: counts in/out/quarantined/deduplicated, gate results, duration.",
)

# ---------------------------------------------------------------------------------------------------------------
# Silver (issue 3 owns the details of these definitions).
# ---------------------------------------------------------------------------------------------------------------
SILVER_CUSTOMERS = TableSpec(
    "silver", "customers", keys=("source_system", "source_customer_id"), partition_by=(),
    description="Customer accounts and loyalty members of every system, typed and standardized; latest version wins.",
)
SILVER_PRODUCTS = TableSpec(
    "silver", "products", keys=("source_system", "sku"), partition_by=(),
    description="Every system's catalogue: brand, category levels, prices; latest version wins.",
)
SILVER_STORES = TableSpec(
    "silver", "stores", keys=("source_system", "store_id"), partition_by=(),
    description="Stores and warehouses.",
)
SILVER_ORDERS = TableSpec(
    "silver", "orders", keys=("source_system", "order_id"), partition_by=("order_date",),
    description="Order headers of both systems (online orders and POS receipts): channel, status, totals.",
)
SILVER_ORDER_LINES = TableSpec(
    "silver", "order_lines", keys=("source_system", "order_id", "line_number"), partition_by=("order_date",),
    description="Online order lines and POS receipt lines in one table, with channel, source system and line type.",
)
SILVER_PAYMENTS = TableSpec(
    "silver", "payments", keys=("source_system", "payment_id"), partition_by=(),
    description="Online order payments.",
)
SILVER_EVENTS = TableSpec(
    "silver", "events", keys=("event_id",), partition_by=("event_date",),
    description="Clickstream events (seed 003 events_cleaned) with device type and source system.",
)
SILVER_INVENTORY_MOVEMENTS = TableSpec(
    "silver", "inventory_movements", keys=("source_system", "movement_id"), partition_by=("movement_date",),
    description="Stock movements per store or warehouse.",
)
# In refine order: payments before orders (orders take the payment method), orders before order lines (lines take
# channel, customer, store, time and status from their header).
SILVER_TABLES: tuple[TableSpec, ...] = (
    SILVER_CUSTOMERS, SILVER_PRODUCTS, SILVER_STORES, SILVER_PAYMENTS, SILVER_ORDERS, SILVER_ORDER_LINES,
    SILVER_EVENTS, SILVER_INVENTORY_MOVEMENTS,
)

# ---------------------------------------------------------------------------------------------------------------
# Gold (issues 4 and 5 own the details of these definitions).
# ---------------------------------------------------------------------------------------------------------------
GOLD_TABLES: tuple[TableSpec, ...] = ()

# Golden customer (issue 4, built by flows/identity.py).
GOLDEN_CUSTOMERS = TableSpec(
    "gold", "golden_customers", keys=("golden_id",), partition_by=(),
    description="One row per identity: surviving attributes, consent, source record count and systems, first/last seen.",
)
CUSTOMER_XREF = TableSpec(
    "gold", "customer_xref", keys=("source_system", "source_customer_id"), partition_by=(),
    description="Every source customer record -> its golden id, with the match score and the rule that linked it.",
)
DIM_CUSTOMER = TableSpec(
    "gold", "dim_customer", keys=("golden_id", "valid_from"), partition_by=(),
    description="SCD type 2 history of the golden attributes (valid_from, valid_to, is_current), maintained by MERGE.",
)
IDENTITY_CHANGES = TableSpec(
    "gold", "identity_changes", keys=("run_id", "old_golden_id", "new_golden_id"), partition_by=(),
    description="Identity merges and splits: old and new golden id, records moved, the survivor rule and link rules.",
)
IDENTITY_RECORDS = TableSpec(
    "gold", "identity_records", keys=("record_key",), partition_by=(),
    description="Identity-resolution state: each source record's change hash and raw link component (internal).",
)
IDENTITY_LINKS = TableSpec(
    "gold", "identity_links", keys=("left_key", "right_key"), partition_by=(),
    description="Identity-resolution state: every accepted record link with its weight, score and rule (internal).",
)
IDENTITY_CANDIDATES = TableSpec(
    "gold", "identity_candidates", keys=("left_key", "right_key"), partition_by=(),
    description="Identity-resolution state: scored cross-system pairs that decide best matches per system (internal).",
)
GOLD_IDENTITY_TABLES: tuple[TableSpec, ...] = (
    GOLDEN_CUSTOMERS, CUSTOMER_XREF, DIM_CUSTOMER, IDENTITY_CHANGES, IDENTITY_RECORDS, IDENTITY_LINKS, IDENTITY_CANDIDATES,
)
GOLD_TABLES = (*GOLD_TABLES, *GOLD_IDENTITY_TABLES)

# Gold built by flows/publish.py (issue 5): dimensions, the sales fact, customer scores, recommendations, marts.
def _gold(name: str, keys: str, description: str) -> TableSpec:
    return TableSpec("gold", name, keys=tuple(keys.split()), partition_by=(), description=description)


GOLD_PUBLISH_TABLES: tuple[TableSpec, ...] = (
    _gold("dim_product", "sku", "One product per SKU conformed across every catalogue (attribute survivorship)."),
    _gold("dim_store", "location_id", "Stores and warehouses (inferred members for unknown ids)."),
    _gold("dim_channel", "channel", "Sales channels: web, app, store."),
    _gold("dim_date", "date_key", "Calendar, ISO week, 4-4-5 retail periods, weekends, UK bank holidays."),
    _gold("fact_sales", "sales_key", "Every order line of both systems at line grain with the golden customer key."),
    _gold("customer_metrics", "golden_id", "Per golden customer: activity, orders, RFM, segment, churn risk."),
    _gold("loyalty_scores", "golden_id", "Loyalty score 0-100, tier, and every weighted component."),
    _gold("customer_score_history", "golden_id as_of_date", "Daily loyalty/RFM/segment snapshot per customer (MERGE)."),
    _gold("voucher_recommendations", "golden_id rank", "Top N products per customer with a margin-safe voucher."),
    _gold("subscription_candidates", "golden_id sku", "Products a customer replenishes at a regular interval."),
    _gold("daily_sales_summary", "event_date channel", "Daily sales and events per channel and 'all', rolling 7 days."),
    _gold("product_performance", "sku", "Per product funnel, sales, revenue rank and performance tier."),
    _gold("conversion_funnel", "event_date category_l1", "Session funnel per day and category."),
    _gold("cart_abandonment", "user_session", "One row per session with a cart add; abandoned or bought."),
    _gold("category_sales_summary", "sale_date category_l1", "Revenue, orders and units per day and category."),
    _gold("payment_method_summary", "sale_date payment_method", "Revenue and orders per day and payment method."),
    _gold("device_usage_summary", "event_date device_type", "Sessions, conversion and online orders per day and device."),
    _gold("inventory_movement_summary", "movement_date location_id sku movement_type", "Units moved per day, location, SKU, type."),
    _gold("inventory_net_position", "location_id sku", "Net stock per location and SKU from all movements."),
)
GOLD_TABLES = (*GOLD_TABLES, *GOLD_PUBLISH_TABLES)

SYSTEM_TABLES: tuple[TableSpec, ...] = (FILE_LEDGER, QUARANTINE, PIPELINE_RUNS)


def all_tables(sources: dict[str, str] | None = None) -> list[TableSpec]:
    """Every table of the lakehouse. ``sources`` maps source name -> kind (defaults: the built-in sources)."""
    from lakehouse.sources import builtin_sources

    sources = sources or builtin_sources()
    bronze = [bronze_table(src, e) for src, kind in sources.items() for e in ENTITIES if e.kind == kind]
    return [*bronze, *SYSTEM_TABLES, *SILVER_TABLES, *GOLD_TABLES]


def table(qualified: str) -> TableSpec:
    """Find a non-bronze table by ``layer.name``."""
    for spec in (*SYSTEM_TABLES, *SILVER_TABLES, *GOLD_TABLES):
        if spec.qualified == qualified:
            return spec
    raise KeyError(f"unknown table {qualified}")
