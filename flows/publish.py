"""Silver -> gold with write-audit-publish: build every gold table, gate them all, then publish one manifest.

``publish_day(settings, day)`` builds gold *as of* the end of ``day`` (silver facts with a business date <= day):

1. **Identity**: ``flows.identity.resolve_customers(settings, day=day, run_id=...)`` refreshes
   ``gold.golden_customers`` / ``gold.customer_xref`` / ``gold.dim_customer`` first. The gold tables that need
   neither identity nor another gold table (:data:`WITHOUT_IDENTITY`: the dimensions, the events funnel, the
   inventory marts) are built meanwhile, in a worker thread.
2. **Write**: each gold table of :data:`BUILD_ORDER` is rebuilt from silver and overwritten (a new Delta version;
   the previous versions stay readable by time travel); ``gold.customer_score_history`` is MERGEd on
   (golden_id, as_of_date) because its history matters. Tables that depend on other gold tables read them back
   from Delta, so nothing is recomputed.
3. **Audit**: every gold table whose version differs from the publication in force runs its table-scope suite
   ``expectations/gold.<table>.yaml`` through :func:`expectations.gate.run_gate` (keys unique, referential
   integrity to the dimensions, totals reconcile with silver, score ranges). Each table is gated in a background
   thread as soon as it is written (the identity tables while gold is built), so the gates run beside the writes.
4. **Publish**: only when every gate passed, :func:`lakehouse.manifest.write_manifest` records the set of table
   versions. Otherwise :class:`PublishBlocked` names every failed rule; the previous manifest stays in force, so
   readers (who open tables at the manifest's versions) keep getting the previous gold.

A rerun of a day rebuilds the same content (new versions, same rows) and publishes it again.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import delta
from lakehouse.catalog import GOLD_PUBLISH_TABLES, GOLD_TABLES, TableSpec, table as catalog_table
from lakehouse.errors import LakehouseError, QualityGateFailed
from lakehouse.faults import crash_point
from lakehouse.manifest import Manifest, TableRef, latest_manifest, write_manifest
from lakehouse.runs import TableRun, new_run_id, record_runs
from lakehouse.settings import Settings
from lakehouse.spark import get_spark
from lakehouse.storage import parse_date
from transforms.gold import dimensions as dims
from transforms.gold import marts
from transforms.gold.facts import build_fact_sales
from transforms.gold.loyalty import score_loyalty
from transforms.gold.metrics import attach_golden_id_to_events, build_customer_metrics
from transforms.gold.subscriptions import find_subscription_candidates
from transforms.gold.vouchers import recommend_vouchers

# Minimum silver columns gold reads (contracts.md); a missing silver table reads as empty with these columns.
SILVER_SCHEMAS: dict[str, str] = {
    "order_lines": (
        "source_system string, order_id string, line_number int, source_kind string, channel string, "
        "source_customer_id string, store_id string, sku string, quantity int, unit_price decimal(12,2), "
        "discount_amount decimal(12,2), line_total decimal(12,2), line_type string, order_ts timestamp, "
        "order_date date, payment_method string, currency string"
    ),
    "orders": (
        "source_system string, order_id string, source_customer_id string, channel string, order_ts timestamp, "
        "order_date date, status string, store_id string, device_type string, payment_method string, "
        "currency string, order_total decimal(12,2)"
    ),
    "products": (
        "source_system string, sku string, product_name string, brand string, category_code string, "
        "category_l1 string, category_l2 string, category_l3 string, unit_price decimal(12,2), "
        "unit_cost decimal(12,2), currency string, updated_at timestamp"
    ),
    "stores": (
        "source_system string, store_id string, store_name string, location_type string, city string, region string, "
        "postcode string, country string, opened_at date"
    ),
    "events": (
        "event_id string, event_time timestamp, event_type string, product_id string, category_id string, "
        "category_code string, brand string, price decimal(12,2), user_id string, user_session string, "
        "event_date date, event_hour int, event_day_of_week int, category_l1 string, category_l2 string, "
        "category_l3 string, device_type string, source_system string"
    ),
    "inventory_movements": (
        "source_system string, movement_id string, movement_ts timestamp, movement_date date, location_id string, "
        "sku string, movement_type string, quantity int, unit_cost decimal(12,2), reference string"
    ),
}
# The business date of each dated silver table: gold as of day D reads rows with that date <= D.
SILVER_DATE_COLUMN: dict[str, str] = {
    "order_lines": "order_date", "orders": "order_date", "events": "event_date", "inventory_movements": "movement_date",
}
IDENTITY_SCHEMAS: dict[str, str] = {
    "golden_customers": "golden_id string, first_seen timestamp, last_seen timestamp",
    "customer_xref": "source_system string, source_customer_id string, golden_id string",
}

# Written by the identity step (flows/identity.py); published in the same manifest as everything else.
IDENTITY_TABLES: tuple[str, ...] = ("golden_customers", "customer_xref", "dim_customer", "identity_changes")
HISTORY_TABLE = "customer_score_history"
# Build order: a table only depends on tables before it.
BUILD_ORDER: tuple[str, ...] = (
    "dim_channel", "dim_product", "dim_store", "dim_date", "fact_sales", "customer_metrics", "loyalty_scores",
    HISTORY_TABLE, "voucher_recommendations", "subscription_candidates", "daily_sales_summary",
    "product_performance", "conversion_funnel", "cart_abandonment", "category_sales_summary",
    "payment_method_summary", "device_usage_summary", "inventory_movement_summary", "inventory_net_position",
)
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "fact_sales": ("dim_product",),
    "customer_metrics": ("fact_sales",),
    "loyalty_scores": ("customer_metrics",),
    HISTORY_TABLE: ("customer_metrics", "loyalty_scores"),
    "voucher_recommendations": ("fact_sales", "dim_product", "customer_metrics"),
    "subscription_candidates": ("fact_sales", "dim_product"),
    "daily_sales_summary": ("fact_sales", "dim_date", "dim_channel"),
    "product_performance": ("fact_sales", "dim_product"),
    "category_sales_summary": ("fact_sales",),
    "payment_method_summary": ("fact_sales",),
    "device_usage_summary": ("fact_sales",),
}
SPECS: dict[str, TableSpec] = {s.name: s for s in GOLD_PUBLISH_TABLES}
assert set(BUILD_ORDER) == set(SPECS), "BUILD_ORDER and GOLD_PUBLISH_TABLES must list the same tables"
#: Gold tables built from silver alone (no identity table, no other gold table): they are built and written in a
#: worker thread while identity resolves, since the engine runs identity at about 1.5 cores of the 2. A builder of
#: one of them that reads ``ctx.identity`` fails loudly (it is empty until identity is done).
WITHOUT_IDENTITY: tuple[str, ...] = (
    "dim_channel", "dim_product", "dim_store", "dim_date", "conversion_funnel", "inventory_movement_summary",
    "inventory_net_position",
)
assert not set(WITHOUT_IDENTITY) & set(DEPENDS_ON), "a table built beside identity must not read other gold tables"


class PublishBlocked(QualityGateFailed):
    """A gold gate failed: nothing was published and the previous publication stays in force."""


@dataclass
class _Context:
    """What one publication run reads and has written so far."""

    spark: object
    settings: Settings
    day: dt.date
    run_id: str
    silver: dict[str, DataFrame] = field(default_factory=dict)
    identity: dict[str, DataFrame] = field(default_factory=dict)
    built: dict[str, DataFrame] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    staged: bool = False

    def stage(self, df: DataFrame, name: str) -> DataFrame:
        """``df`` materialized under this run's staging folder and read back (for a frame a builder reads twice);
        :meth:`drop_staged` deletes them once the table is written."""
        from lakehouse.storage import Storage

        storage = Storage(self.settings)
        self.staged = True
        return storage.stage_frame(self.spark, df, f"{storage.staging_dir(self.run_id, 'publish')}/{name}")

    def drop_staged(self) -> None:
        """Delete what :meth:`stage` wrote."""
        from lakehouse.storage import Storage

        if self.staged:
            storage = Storage(self.settings)
            storage.delete_dir(storage.staging_dir(self.run_id, "publish"))
            self.staged = False

    def gold(self, name: str) -> DataFrame:
        """A gold table written earlier in this run (or, when not rebuilt, the current table)."""
        if name not in self.built:
            spec = SPECS[name]
            if not delta.table_exists(spec, self.settings):
                raise LakehouseError(f"gold.{name} does not exist yet: publish it first (or publish every table)")
            self.built[name] = delta.read_table(self.spark, spec, self.settings)
        return self.built[name]


def _say(message: str) -> None:
    print(f"[publish] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Reading silver and identity
# ---------------------------------------------------------------------------------------------------------------
def read_silver(spark, settings: Settings, name: str, day: dt.date) -> DataFrame:
    """A silver table as of ``day`` (dated tables filtered to their business date <= day), or an empty frame."""
    spec = catalog_table(f"silver.{name}")
    df = delta.read_or_empty(spark, spec, settings, SILVER_SCHEMAS[name])
    date_col = SILVER_DATE_COLUMN.get(name)
    if date_col:
        df = df.where(F.col(date_col) <= F.lit(day.isoformat()).cast("date"))
    return df


def _identity_tables(spark, settings: Settings) -> dict[str, DataFrame]:
    """Golden customers and the xref from the identity step, or a provisional identity when it has not run.

    The provisional identity (only while ``flows.identity`` is not installed) makes every silver customer record
    its own golden customer, ``golden_id = source_system:source_customer_id``; nothing of it is written.
    """
    out: dict[str, DataFrame] = {}
    for name, schema in IDENTITY_SCHEMAS.items():
        spec = TableSpec("gold", name)
        if delta.table_exists(spec, settings):
            out[name] = delta.read_table(spark, spec, settings)
    if len(out) == len(IDENTITY_SCHEMAS):
        return out
    customers = delta.read_or_empty(
        spark, catalog_table("silver.customers"), settings,
        "source_system string, source_customer_id string, created_at timestamp, updated_at timestamp",
    )
    gid = F.concat_ws(":", "source_system", "source_customer_id")
    out["customer_xref"] = customers.select(
        "source_system", "source_customer_id", gid.alias("golden_id"),
        F.lit(1.0).alias("match_score"), F.lit("provisional").alias("match_rule"),
    )
    out["golden_customers"] = customers.groupBy(gid.alias("golden_id")).agg(
        F.min(F.coalesce("created_at", "updated_at")).alias("first_seen"),
        F.max(F.coalesce("updated_at", "created_at")).alias("last_seen"),
    )
    return out


def _resolve_identity(settings: Settings, day: dt.date, run_id: str) -> tuple[list[TableRun], str | None]:
    """Run identity resolution first; returns its runs and a note when the identity step is not installed."""
    try:
        from flows.identity import resolve_customers
    except ModuleNotFoundError as exc:
        if exc.name not in ("flows.identity",):
            raise
        return [], "identity step not installed: provisional one-record-per-customer identity used, not written"
    t0 = time.perf_counter()
    result = resolve_customers(settings, day=day, run_id=run_id)
    if isinstance(result, (list, tuple)):
        return [r for r in result if isinstance(r, TableRun) and r.layer != "publish"], None  # recorded by identity
    counts = {k: v for k, v in dict(result or {}).items() if isinstance(v, (int, float, str, bool))}
    run = TableRun(
        run_id=run_id, layer="publish", table_name="gold.golden_customers", run_date=day,
        duration_s=round(time.perf_counter() - t0, 3),
        message="identity resolution: " + json.dumps(counts, default=str, sort_keys=True),
    )
    return [run], None


# ---------------------------------------------------------------------------------------------------------------
# Builders: name -> function(ctx) -> DataFrame (pure transforms over the context's inputs)
# ---------------------------------------------------------------------------------------------------------------
def _events_with_golden(ctx: _Context) -> DataFrame:
    if "_events_with_golden" not in ctx.built:
        ctx.built["_events_with_golden"] = attach_golden_id_to_events(
            ctx.silver["events"], xref=ctx.identity["customer_xref"]
        )
    return ctx.built["_events_with_golden"]


def _build_dim_product(ctx: _Context) -> DataFrame:
    conformed = dims.conform_products(ctx.silver["products"])
    used = ctx.silver["order_lines"].select("sku").unionByName(ctx.silver["inventory_movements"].select("sku"))
    return dims.add_inferred_products(conformed, used)


def _build_dim_store(ctx: _Context) -> DataFrame:
    used = ctx.silver["order_lines"].select(F.col("store_id").alias("location_id")).unionByName(
        ctx.silver["inventory_movements"].select("location_id")
    )
    return dims.add_inferred_locations(dims.build_dim_store(ctx.silver["stores"]), used)


def _build_dim_date(ctx: _Context) -> DataFrame:
    start, end = dims.date_range_for(ctx.day)
    first = ctx.silver["order_lines"].agg(F.min("order_date").alias("d")).collect()[0]["d"]
    if first is not None and first < start:
        start = dt.date(first.year, 1, 1)
    spine = ctx.spark.sql(f"SELECT explode(sequence(DATE'{start.isoformat()}', DATE'{end.isoformat()}')) AS date")
    return dims.build_dim_date(spine, holidays=dims.uk_holidays(range(start.year, end.year + 1)))


def _build_customer_metrics(ctx: _Context) -> DataFrame:
    return build_customer_metrics(
        ctx.identity["golden_customers"], fact_sales=ctx.gold("fact_sales"),
        events_with_golden=_events_with_golden(ctx), as_of=ctx.day,
    )


def _build_history(ctx: _Context) -> DataFrame:
    m = ctx.gold("customer_metrics").select(
        "golden_id", "as_of_date", "total_purchases", "total_revenue", "recency_days", "r_score", "f_score",
        "m_score", "rfm_score", "customer_segment", "churn_risk",
    )
    loyal = ctx.gold("loyalty_scores").select("golden_id", "loyalty_score", "loyalty_tier", "expected_future_value")
    return m.join(loyal, "golden_id", "left").withColumn("run_id", F.lit(ctx.run_id))


BUILDERS: dict[str, Callable[[_Context], DataFrame]] = {
    "dim_channel": lambda ctx: ctx.spark.createDataFrame(list(dims.CHANNELS), dims.DIM_CHANNEL_SCHEMA),
    "dim_product": _build_dim_product,
    "dim_store": _build_dim_store,
    "dim_date": _build_dim_date,
    "fact_sales": lambda ctx: build_fact_sales(
        ctx.silver["order_lines"], xref=ctx.identity["customer_xref"], dim_product=ctx.gold("dim_product")
    ),
    "customer_metrics": _build_customer_metrics,
    "loyalty_scores": lambda ctx: score_loyalty(
        ctx.gold("customer_metrics"), golden_customers=ctx.identity["golden_customers"], as_of=ctx.day
    ),
    HISTORY_TABLE: _build_history,
    "voucher_recommendations": lambda ctx: recommend_vouchers(
        ctx.gold("fact_sales"), dim_product=ctx.gold("dim_product"),
        customer_segments=ctx.gold("customer_metrics").select("golden_id", "customer_segment"), as_of=ctx.day,
        stage=ctx.stage,
    ),
    "subscription_candidates": lambda ctx: find_subscription_candidates(
        ctx.gold("fact_sales"), dim_product=ctx.gold("dim_product"), as_of=ctx.day
    ),
    "daily_sales_summary": lambda ctx: marts.build_daily_sales_summary(
        ctx.gold("fact_sales"), events=ctx.silver["events"], dim_date=ctx.gold("dim_date"),
        channels=tuple(c[0] for c in dims.CHANNELS), as_of=ctx.day,
    ),
    "product_performance": lambda ctx: marts.build_product_performance(
        ctx.gold("dim_product"), fact_sales=ctx.gold("fact_sales"), events=ctx.silver["events"]
    ),
    "conversion_funnel": lambda ctx: marts.build_conversion_funnel(ctx.silver["events"]),
    "cart_abandonment": lambda ctx: marts.build_cart_abandonment(_events_with_golden(ctx)),
    "category_sales_summary": lambda ctx: marts.build_category_sales_summary(ctx.gold("fact_sales")),
    "payment_method_summary": lambda ctx: marts.build_payment_method_summary(ctx.gold("fact_sales")),
    "device_usage_summary": lambda ctx: marts.build_device_usage_summary(
        ctx.silver["events"], orders=ctx.silver["orders"], fact_sales=ctx.gold("fact_sales")
    ),
    "inventory_movement_summary": lambda ctx: marts.build_inventory_movement_summary(ctx.silver["inventory_movements"]),
    "inventory_net_position": lambda ctx: marts.build_inventory_net_position(
        ctx.silver["inventory_movements"], as_of=ctx.day
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# Write, audit, publish
# ---------------------------------------------------------------------------------------------------------------
def select_tables(tables: Iterable[str] | None) -> list[str]:
    """The gold tables to rebuild, in build order (``None``: all); accepts ``name`` or ``gold.name``."""
    if not tables:
        return list(BUILD_ORDER)
    wanted = {t.removeprefix("gold.") for t in tables}
    unknown = sorted(wanted - set(BUILD_ORDER))
    if unknown:
        raise LakehouseError(f"unknown gold table(s) {', '.join(unknown)} (publish builds: {', '.join(BUILD_ORDER)})")
    return [t for t in BUILD_ORDER if t in wanted]


def _write(ctx: _Context, name: str, df: DataFrame) -> None:
    spec = SPECS[name]
    if name == HISTORY_TABLE:
        delta.merge_upsert(ctx.spark, df, spec, ctx.settings, keys=("golden_id", "as_of_date"))
        ctx.built[name] = delta.read_table(ctx.spark, spec, ctx.settings).where(
            F.col("as_of_date") == F.lit(ctx.day.isoformat()).cast("date")
        )
    else:
        delta.overwrite(df, spec, ctx.settings)
        ctx.built[name] = delta.read_table(ctx.spark, spec, ctx.settings)


def _build_tables(ctx: _Context, auditor: "_Auditor", names: Iterable[str], runs: dict[str, TableRun]) -> None:
    """Build and write ``names`` in order, queue each one's gate, and add each one's run record to ``runs``."""
    for name in names:
        t0 = time.perf_counter()
        try:
            _write(ctx, name, BUILDERS[name](ctx))  # a builder may stage frames (ctx.stage) while it plans
        finally:
            ctx.drop_staged()
        crash_point("publish.table_written")
        auditor.audit([name])
        rows = ctx.built[name].count()
        rows_in = rows
        if name == "fact_sales":
            rows_in = ctx.silver["order_lines"].count()
        runs[name] = TableRun(
            run_id=ctx.run_id, layer="publish", table_name=f"gold.{name}", run_date=ctx.day, rows_in=rows_in,
            rows_out=rows, rows_rejected=max(rows_in - rows, 0) if name == "fact_sales" else 0,
            duration_s=round(time.perf_counter() - t0, 3),
            message="merged (golden_id, as_of_date)" if name == HISTORY_TABLE else "overwritten",
        )
        _say(f"gold.{name}: {rows} rows in {time.perf_counter() - t0:.1f}s")


def _beside(background: Callable[[], None], work: Callable[[], object]) -> object:
    """``work()`` in this thread while ``background()`` runs in another; returns ``work``'s result once both are
    done. Neither is cut short by the other's failure (each leaves its own tables complete or untouched); the
    first failure, ``work``'s before ``background``'s, is then raised."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gold-beside") as pool:
        future = pool.submit(background)
        try:
            result = work()
        finally:
            error = future.exception()  # waits; a failure of ``work`` is raised here, before this one
    if error is not None:
        raise error
    return result


def _current_refs(settings: Settings, names: Iterable[str]) -> dict[str, TableRef]:
    """Location and current Delta version of each existing gold table (rows counted from the Delta log)."""
    from deltalake import DeltaTable

    out: dict[str, TableRef] = {}
    options = settings.delta_storage_options() or None
    for name in names:
        spec = TableSpec("gold", name)
        if not delta.table_exists(spec, settings):
            continue
        dt_ = DeltaTable(spec.location(settings), storage_options=options)
        rows = None
        try:
            adds = dt_.get_add_actions(flatten=True).to_pydict()
            counts = adds.get("num_records") or []
            rows = int(sum(c for c in counts if c is not None)) if counts else 0
        except Exception:  # noqa: BLE001 - a row count is informative only
            rows = None
        out[f"gold.{name}"] = TableRef(spec.location(settings), int(dt_.version()), rows)
    return out


def _gate(ctx: _Context, qualified: str, ref: TableRef) -> dict:
    """Run one gold table's table-scope suite on the written version; returns a summary (never raises on failure)."""
    from expectations.gate import run_gate
    from expectations.rules import RuleFileError, rule_file

    if not rule_file(qualified).exists():
        return {"table": qualified, "passed": True, "skipped": "no rule file", "rules": []}
    layer, name = qualified.split(".", 1)
    df = ctx.spark.read.format("delta").option("versionAsOf", ref.delta_version).load(ref.location)
    try:
        keys = catalog_table(qualified).keys
    except KeyError:
        keys = ()
    t0 = time.perf_counter()
    try:
        result = run_gate(
            ctx.spark, df, table=qualified, run_id=ctx.run_id, settings=ctx.settings, scope="table",
            index_columns=tuple(k for k in keys if k in df.columns), stage=False,
        )
        rules = result.summary()
        passed = True
    except QualityGateFailed as exc:
        rules = list(getattr(exc, "rules", []) or [])
        passed = False
        if not rules:
            rules = [{"name": "gate", "severity": "fail", "success": False, "message": str(exc)}]
    except RuleFileError as exc:
        rules = [{"name": "rule_file", "severity": "fail", "success": False, "message": str(exc)}]
        passed = False
    return {"table": qualified, "passed": passed, "rules": rules, "duration_s": round(time.perf_counter() - t0, 2)}


class _Auditor:
    """Gates written gold tables in one background thread while the publication goes on writing the next ones.

    ``audit(names)`` queues the gate of each table whose current version is not the published one; ``result(q, ref)``
    waits for that table's gate, or gates ``ref`` now when the queued one gated another version. GX runs under the
    gate's lock, so only one gate runs at a time; the engine serves the gate's queries and the writes side by side.
    Leaving the ``with`` block cancels gates not started and waits for the running one.
    """

    def __init__(self, ctx: _Context, published: dict) -> None:
        self.ctx = ctx
        self.published = published
        self.pending: dict[str, tuple[int, object]] = {}
        self.pool = None

    def __enter__(self) -> "_Auditor":
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gold-gate")
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def unpublished(self, qualified: str, ref: TableRef) -> bool:
        """Whether ``ref`` is not the version the publication in force holds (so it must be gated)."""
        old = self.published.get(qualified)
        return old is None or old.delta_version != ref.delta_version

    def audit(self, names: Iterable[str]) -> None:
        for q, ref in _current_refs(self.ctx.settings, names).items():
            if self.unpublished(q, ref):
                self.pending[q] = (ref.delta_version, self.pool.submit(_gate, self.ctx, q, ref))

    def result(self, qualified: str, ref: TableRef) -> dict:
        version, future = self.pending.get(qualified, (None, None))
        if future is not None and version == ref.delta_version:
            return future.result()
        return _gate(self.ctx, qualified, ref)


def _failed_rules(gates: list[dict]) -> list[str]:
    out = []
    for g in gates:
        for r in g["rules"]:
            if not r.get("success", True) and r.get("severity") == "fail":
                count = r.get("unexpected_count")
                detail = f" on {count} row(s)" if count is not None else ""
                if r.get("message"):
                    detail = f": {r['message']}"
                elif r.get("error"):
                    detail = f" (could not run: {r['error']})"
                examples = r.get("examples") or []
                ex = f", e.g. {json.dumps(examples[:3], default=str)}" if examples else ""
                out.append(f"{g['table']}: rule `{r['name']}` failed{detail}{ex}")
    return out


def publish_day(
    settings: Settings, day: dt.date | str, *, tables: Iterable[str] | None = None, run_id: str | None = None
) -> list[TableRun]:
    """Silver -> gold for ``day``: identity, build and write gold, gate it, publish a manifest only if all gates pass."""
    day = parse_date(day)
    from expectations.rules import warm_up_gx

    warm_up_gx()  # the gates' library loads while identity runs
    spark = get_spark(settings)
    run_id = run_id or new_run_id("publish")
    started = time.perf_counter()
    previous = latest_manifest(settings)
    names = select_tables(tables)

    runs: list[TableRun] = []
    ctx = _Context(spark, settings, day, run_id)
    ctx.silver = {name: read_silver(spark, settings, name, day) for name in SILVER_SCHEMAS}
    all_gold = list(dict.fromkeys([*IDENTITY_TABLES, *(s.name for s in GOLD_TABLES)]))
    with _Auditor(ctx, previous.tables if previous else {}) as auditor:
        built: dict[str, TableRun] = {}
        early = [n for n in names if n in WITHOUT_IDENTITY]
        ident_runs, note = _beside(lambda: _build_tables(ctx, auditor, early, built),
                                   lambda: _resolve_identity(settings, day, run_id))
        runs.extend(ident_runs)
        crash_point("publish.identity_resolved")
        if note:
            ctx.notes.append(note)
            _say(note)
        auditor.audit(IDENTITY_TABLES)  # while the other gold tables are built
        ctx.identity = _identity_tables(spark, settings)
        _build_tables(ctx, auditor, [n for n in names if n not in built], built)
        table_runs = {name: built[name] for name in names}

        # Audit: every gold table whose version is not the published one (most were gated while later ones were
        # written; a version the auditor has not gated is gated now).
        refs = _current_refs(settings, all_gold)
        gates = [auditor.result(q, ref) for q, ref in refs.items() if auditor.unpublished(q, ref)]
    for g in gates:
        name = g["table"].removeprefix("gold.")
        if name in table_runs:
            table_runs[name].gate_results = g["rules"]
    failed = _failed_rules(gates)
    gate_summary = {
        "passed": not failed,
        "seconds": round(sum(g.get("duration_s", 0.0) for g in gates), 2),
        "tables": {g["table"]: {"passed": g["passed"], "rules": len(g["rules"]), "seconds": g.get("duration_s"),
                                "failed": [r["name"] for r in g["rules"] if not r.get("success", True) and r.get("severity") == "fail"],
                                "warnings": [r["name"] for r in g["rules"] if not r.get("success", True) and r.get("severity") == "warn"]}
                   for g in gates},
    }
    if failed:
        for r in table_runs.values():
            r.status = "failed"
            r.message = "not published: a gold gate failed"
        for g in gates:
            name = g["table"].removeprefix("gold.")
            if not g["passed"] and name in table_runs:
                table_runs[name].message = "gate failed: " + "; ".join(
                    x for x in failed if x.startswith(g["table"] + ":")
                )
        for r in ident_runs:
            if r.layer == "publish":
                r.status = "failed"
                r.message = "not published: a gold gate failed; " + r.message
        runs.extend(table_runs.values())
        record_runs(spark, settings, [*(r for r in ident_runs if r.layer == "publish"), *table_runs.values()])
        in_force = f"publication v{previous.version} stays in force" if previous else "nothing has been published yet"
        exc = PublishBlocked(
            f"gold for {day} was not published ({in_force}): " + " | ".join(failed)
            + ". Fix the data or the rule in expectations/gold.<table>.yaml and publish again."
        )
        exc.rules = [r for g in gates for r in g["rules"]]  # type: ignore[attr-defined]
        exc.runs = runs  # type: ignore[attr-defined]
        raise exc

    crash_point("publish.gated")
    manifest = write_manifest(settings, refs, run_id, day, gate_summary)
    crash_point("publish.manifest_written")
    for name, r in table_runs.items():
        r.message = f"{r.message}; published v{manifest.version} (delta v{refs[f'gold.{name}'].delta_version})"
    if ctx.notes:
        for r in table_runs.values():
            r.message += "; " + "; ".join(ctx.notes)
    runs.extend(table_runs.values())
    record_runs(spark, settings, [*(r for r in ident_runs if r.layer == "publish"), *table_runs.values()])
    _say(f"published v{manifest.version} with {len(refs)} tables in {time.perf_counter() - started:.1f}s")
    return runs


def publish_days(settings: Settings, days: Iterable[dt.date | str], *, tables: Iterable[str] | None = None) -> list[TableRun]:
    """Publish each day in order (one run id and one manifest per day); stops at the first blocked day."""
    out: list[TableRun] = []
    for day in days:
        out.extend(publish_day(settings, day, tables=tables))
    return out


def published_manifest(settings: Settings) -> Manifest | None:
    """The publication in force (a convenience re-export of :func:`lakehouse.manifest.latest_manifest`)."""
    return latest_manifest(settings)
