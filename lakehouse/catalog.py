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
