"""Bronze entity -> silver batch: type, standardize and derive one source's rows of one canonical entity.

Every builder takes a bronze frame (canonical columns as strings plus the bronze audit columns) and returns the
silver table's business columns plus the batch columns the refine flow needs:

- ``_row_json``: the original row as JSON for the quarantine table, when the input carries it (a quarantine replay
  keeps its stored JSON); null for rows read from bronze, whose original is serialized by the refine flow only if
  the gate quarantines them (:func:`with_row_json`; serializing every row cost a third of building a batch);
- ``_parse_error``: bronze's parse error (rows with one are quarantined by the ``no_parse_error`` rule);
- ``_unparsed``: names of the columns whose non-empty value did not parse (quarantined by ``values_parse``);
- ``_version_ts``: the record's version time, used by latest-wins dedupe (see each table's rule in ``tables.py``);
- ``_ingested_at``, ``_source_file``, ``_line_number``, ``ingest_date``: bronze lineage.

Builders are pure: the source's name, kind, value formats (Spark patterns per column) and value maps are keyword
parameters (mapped sources take them from their mapping file).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.silver import parsing as P
from transforms.silver import standardize as S

AUDIT_COLUMNS = ("_ingested_at", "_source_file", "_line_number", "_raw_line", "_parse_error", "_run_id", "ingest_date")
BATCH_COLUMNS = ("_row_json", "_parse_error", "_unparsed")
LINEAGE_COLUMNS = ("_version_ts", "_ingested_at", "_source_file", "_line_number", "ingest_date")

POS_CURRENCY = "GBP"  # the POS system records no currency: every store trades in pounds

# Enum synonyms (after lower-casing and turning spaces/hyphens into underscores).
ORDER_STATUS_SYNONYMS = {"canceled": "cancelled", "cancel": "cancelled", "return": "returned", "complete": "completed",
                         "dispatched": "shipped", "new": "placed", "pending": "placed"}
CHANNEL_SYNONYMS = {"online": "web", "website": "web", "www": "web", "mobile_app": "app", "ios": "app",
                    "android": "app", "pos": "store", "shop": "store"}
DEVICE_SYNONYMS = {"pc": "desktop", "computer": "desktop", "laptop": "desktop", "phone": "mobile",
                   "smartphone": "mobile", "ipad": "tablet"}
PAYMENT_METHOD_SYNONYMS = {"credit_card": "card", "debit_card": "card", "credit": "card", "debit": "card",
                           "visa": "card", "mastercard": "card", "giftcard": "gift_card", "voucher": "gift_card",
                           "transfer": "bank_transfer", "bank": "bank_transfer", "apple_pay": "mobile",
                           "google_pay": "mobile", "contactless_mobile": "mobile"}
PAYMENT_STATUS_SYNONYMS = {"paid": "captured", "success": "captured", "succeeded": "captured", "settled": "captured",
                           "refund": "refunded", "declined": "failed", "error": "failed"}
TRANSACTION_TYPE_SYNONYMS = {"sales": "sale", "sold": "sale", "purchase": "sale", "refund": "return",
                             "returned": "return", "returns": "return"}
TRANSACTION_STATUS = {"sale": "completed", "return": "returned"}
LOCATION_TYPE_SYNONYMS = {"shop": "store", "branch": "store", "dc": "warehouse", "distribution_centre": "warehouse",
                          "distribution_center": "warehouse"}
EVENT_TYPE_SYNONYMS = {"add_to_cart": "cart", "addtocart": "cart", "remove": "remove_from_cart",
                       "removefromcart": "remove_from_cart", "buy": "purchase", "page_view": "view"}
MOVEMENT_TYPE_SYNONYMS = {"in": "inbound", "receipt": "inbound", "out": "outbound", "dispatch": "outbound",
                          "adjust": "adjustment", "stock_adjustment": "adjustment"}

KIND_TIMESTAMP_FORMATS = {"online": P.ISO_UTC, "pos": P.POS_TS, "clickstream": P.REES46_TS, "inventory": P.ISO_UTC}
KIND_DATE_FORMATS = {"online": P.ISO_DATE, "pos": P.POS_DATE, "clickstream": P.ISO_DATE, "inventory": P.ISO_DATE}

Builder = Callable[..., DataFrame]


class _Ctx:
    """Per-source parsing context: formats and value maps for the columns of one entity."""

    def __init__(self, kind: str, formats: Mapping[str, str] | None, values: Mapping[str, Mapping[str, str]] | None):
        self.kind = kind
        self.formats = {k: P.strptime_to_spark(v) for k, v in (formats or {}).items()}
        self.values = values or {}
        self.pairs: dict[str, tuple[Column, Column]] = {}

    def raw(self, column: str) -> Column:
        """The raw string, passed through the mapping's value map when there is one."""
        col = F.col(column)
        mapping = self.values.get(column)
        if not mapping:
            return col
        trimmed = F.trim(col)
        return F.coalesce(S.lookup(mapping, trimmed), S.lookup(mapping, F.lower(trimmed)), col)

    def _track(self, name: str, raw_column: str, typed: Column) -> Column:
        self.pairs[name] = (F.col(raw_column), typed)
        return typed

    def ts(self, column: str, name: str | None = None) -> Column:
        formats = (self.formats[column],) if column in self.formats else KIND_TIMESTAMP_FORMATS[self.kind]
        return self._track(name or column, column, P.parse_timestamp(self.raw(column), formats))

    def date(self, column: str, name: str | None = None) -> Column:
        formats = (self.formats[column],) if column in self.formats else KIND_DATE_FORMATS[self.kind]
        return self._track(name or column, column, P.parse_date(self.raw(column), formats))

    def money(self, column: str, name: str | None = None) -> Column:
        return self._track(name or column, column, P.parse_decimal(self.raw(column)))

    def int(self, column: str, name: str | None = None) -> Column:
        return self._track(name or column, column, P.parse_int(self.raw(column)))

    def long(self, column: str, name: str | None = None) -> Column:
        return self._track(name or column, column, P.parse_long(self.raw(column)))

    def bool(self, column: str, name: str | None = None) -> Column:
        return self._track(name or column, column, P.parse_boolean(self.raw(column)))

    def text(self, column: str) -> Column:
        return P.clean_text(self.raw(column))

    def enum(self, column: str, synonyms: Mapping[str, str] | None = None) -> Column:
        return S.enum_value(self.raw(column), synonyms)

    def unparsed(self) -> Column:
        return P.unparsed_columns(self.pairs)


def ensure_columns(df: DataFrame, columns: Sequence[str]) -> DataFrame:
    """Add the listed columns as null strings where the frame lacks them (a source may not map every column)."""
    missing = [c for c in (*columns, *AUDIT_COLUMNS) if c not in df.columns]
    if not missing:
        return df
    types = {"_ingested_at": "timestamp", "_line_number": "bigint", "ingest_date": "date"}
    return df.withColumns({c: F.lit(None).cast(types.get(c, "string")) for c in missing})


def with_row_json(df: DataFrame, *, bronze_table: str) -> DataFrame:
    """Add ``_row_json``: every bronze column of the row (nulls omitted) plus ``_bronze_table``, as JSON (the
    quarantine's ``row_json``; columns a source lacks are null, so they are omitted like any other null).

    A frame that already has ``_row_json`` (a quarantine replay rebuilt from it) keeps it unchanged.
    """
    if "_row_json" in df.columns:
        return df
    cols = [F.col(f"`{c}`") for c in df.columns]
    return df.withColumn("_row_json", F.to_json(F.struct(*cols, F.lit(bronze_table).alias("_bronze_table"))))


def _finish(df: DataFrame, ctx: _Ctx, typed: dict[str, Column], *, source_system: str, source_kind: str,
            extra: dict[str, Column] | None = None) -> DataFrame:
    """One select: the typed columns, source columns, batch columns and bronze lineage (then ``extra``, columns a
    builder needs in its next step and drops)."""
    return df.select(
        F.lit(source_system).alias("source_system"),
        F.lit(source_kind).alias("source_kind"),
        *[expr.alias(name) for name, expr in typed.items()],
        ctx.unparsed().alias("_unparsed"),
        F.col("_parse_error").cast("string").alias("_parse_error"),
        F.col("_row_json") if "_row_json" in df.columns else F.lit(None).cast("string").alias("_row_json"),
        F.col("_ingested_at").cast("timestamp").alias("_ingested_at"),
        F.col("_source_file").cast("string").alias("_source_file"),
        F.col("_line_number").cast("bigint").alias("_line_number"),
        F.col("ingest_date").cast("date").alias("ingest_date"),
        *[expr.alias(name) for name, expr in (extra or {}).items()],
    )


def _prepare(df: DataFrame, columns: str) -> DataFrame:
    return ensure_columns(df, columns.split())


# --- customers ---------------------------------------------------------------------------------------------------
def customers_from_online(df: DataFrame, *, source_system: str, source_kind: str = "online",
                          formats: Mapping[str, str] | None = None,
                          values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """Online accounts -> silver.customers batch."""
    df = _prepare(df, "customer_id email first_name last_name phone date_of_birth address_line1 city postcode country "
                      "marketing_opt_in created_at updated_at")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, {
        "source_customer_id": c.text("customer_id"),
        "first_name": S.person_name_value(c.raw("first_name")),
        "last_name": S.person_name_value(c.raw("last_name")),
        "email": S.email_value(c.raw("email")),
        "phone_raw": c.text("phone"),
        "date_of_birth": c.date("date_of_birth"),
        "address_line1": c.text("address_line1"),
        "city": S.place_name_value(c.raw("city")),
        "postcode": S.postcode_value(c.raw("postcode")),
        "country": S.country_value(c.raw("country")),
        "loyalty_card": F.lit(None).cast("string"),
        "marketing_opt_in": c.bool("marketing_opt_in"),
        "created_at": c.ts("created_at"),
        "updated_at": c.ts("updated_at"),
    }, source_system=source_system, source_kind=source_kind)
    return _customer_common(out)


def customers_from_pos(df: DataFrame, *, source_system: str, source_kind: str = "pos",
                       formats: Mapping[str, str] | None = None,
                       values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """POS loyalty members -> silver.customers batch ("Last, First" names split, DD/MM/YYYY birth dates, Y/N opt-in)."""
    df = _prepare(df, "member_id loyalty_card full_name email phone birth_date street town post_code country opt_in "
                      "joined_at updated_at")
    c = _Ctx(source_kind, formats, values)
    first, last = S.split_full_name(c.raw("full_name"))
    out = _finish(df, c, {
        "source_customer_id": c.text("member_id"),
        "first_name": first,
        "last_name": last,
        "email": S.email_value(c.raw("email")),
        "phone_raw": c.text("phone"),
        "date_of_birth": c.date("birth_date", "date_of_birth"),
        "address_line1": c.text("street"),
        "city": S.place_name_value(c.raw("town")),
        "postcode": S.postcode_value(c.raw("post_code")),
        "country": S.country_value(c.raw("country")),
        "loyalty_card": F.upper(F.regexp_replace(c.raw("loyalty_card"), r"\s+", "")),
        "marketing_opt_in": c.bool("opt_in", "marketing_opt_in"),
        "created_at": c.ts("joined_at", "created_at"),
        "updated_at": c.ts("updated_at"),
    }, source_system=source_system, source_kind=source_kind)
    return _customer_common(out)


def _customer_common(df: DataFrame) -> DataFrame:
    """Phone to E.164 with the row's country; full name; a phone that does not parse is reported in ``_unparsed``."""
    bad_phone = F.col("phone_raw").isNotNull() & F.col("phone_e164").isNull()
    unparsed = F.when(bad_phone, F.concat_ws(",", F.col("_unparsed"), F.lit("phone"))).otherwise(F.col("_unparsed"))
    full = F.concat_ws(" ", "first_name", "last_name")
    return (
        df.withColumn("phone_e164", S.phone_value("phone_raw", "country"))
        .withColumn("_unparsed", unparsed)
        .withColumn("full_name", F.when(full != "", full))
        .withColumn("_version_ts", F.coalesce("updated_at", "created_at"))
        .drop("phone_raw")
    )


# --- products ----------------------------------------------------------------------------------------------------
def products_from_online(df: DataFrame, *, source_system: str, source_kind: str = "online",
                         formats: Mapping[str, str] | None = None,
                         values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """Online catalogue -> silver.products batch."""
    df = _prepare(df, "sku product_name brand category_code unit_price unit_cost currency updated_at")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, {
        "sku": c.text("sku"),
        "product_name": c.text("product_name"),
        "brand": S.brand_value(c.raw("brand")),
        "category_code": S.category_code_value(c.raw("category_code")),
        "unit_price": c.money("unit_price"),
        "unit_cost": c.money("unit_cost"),
        "currency": F.upper(c.text("currency")),
        "updated_at": c.ts("updated_at"),
    }, source_system=source_system, source_kind=source_kind)
    return _product_common(out)


def products_from_pos(df: DataFrame, *, source_system: str, source_kind: str = "pos",
                      formats: Mapping[str, str] | None = None,
                      values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """Store catalogue -> silver.products batch (department path "A > B > C" becomes the category code)."""
    df = _prepare(df, "item_code description brand department price cost updated_at")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, {
        "sku": c.text("item_code"),
        "product_name": c.text("description"),
        "brand": S.brand_value(c.raw("brand")),
        "category_code": S.category_code_value(c.raw("department")),
        "unit_price": c.money("price", "unit_price"),
        "unit_cost": c.money("cost", "unit_cost"),
        "currency": F.lit(POS_CURRENCY),
        "updated_at": c.ts("updated_at"),
    }, source_system=source_system, source_kind=source_kind)
    return _product_common(out)


def _product_common(df: DataFrame) -> DataFrame:
    l1, l2, l3 = S.category_levels("category_code")
    return df.withColumns({"category_l1": l1, "category_l2": l2, "category_l3": l3, "_version_ts": F.col("updated_at")})


# --- stores ------------------------------------------------------------------------------------------------------
def stores_from_pos(df: DataFrame, *, source_system: str, source_kind: str = "pos",
                    formats: Mapping[str, str] | None = None,
                    values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """Stores and warehouses -> silver.stores batch."""
    df = _prepare(df, "store_id store_name location_type city region postcode country opened_at")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, {
        "store_id": c.text("store_id"),
        "store_name": c.text("store_name"),
        "location_type": c.enum("location_type", LOCATION_TYPE_SYNONYMS),
        "city": S.place_name_value(c.raw("city")),
        "region": c.text("region"),
        "postcode": S.postcode_value(c.raw("postcode")),
        "country": S.country_value(c.raw("country")),
        "opened_at": c.date("opened_at") if "opened_at" in c.formats else _date_any(c, "opened_at"),
    }, source_system=source_system, source_kind=source_kind)
    return out.withColumn("_version_ts", F.lit(None).cast("timestamp"))


def _date_any(c: _Ctx, column: str) -> Column:
    """A date written as YYYY-MM-DD or in the kind's own date format."""
    formats = tuple(dict.fromkeys((*P.ISO_DATE, *KIND_DATE_FORMATS[c.kind])))
    return c._track(column, column, P.parse_date(c.raw(column), formats))


# --- payments ----------------------------------------------------------------------------------------------------
def payments_from_online(df: DataFrame, *, source_system: str, source_kind: str = "online",
                         formats: Mapping[str, str] | None = None,
                         values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """Online payments -> silver.payments batch."""
    df = _prepare(df, "payment_id order_id payment_ts payment_method amount status")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, {
        "payment_id": c.text("payment_id"),
        "order_id": c.text("order_id"),
        "payment_ts": c.ts("payment_ts"),
        "payment_method": c.enum("payment_method", PAYMENT_METHOD_SYNONYMS),
        "amount": c.money("amount"),
        "status": c.enum("status", PAYMENT_STATUS_SYNONYMS),
    }, source_system=source_system, source_kind=source_kind)
    return out.withColumns({"payment_date": F.to_date("payment_ts"), "_version_ts": F.col("payment_ts")})


# --- orders ------------------------------------------------------------------------------------------------------
def orders_from_online(df: DataFrame, *, source_system: str, source_kind: str = "online",
                       formats: Mapping[str, str] | None = None,
                       values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """Online order headers -> silver.orders batch (the flow attaches payment_method; order_total is the sum of the
    order's silver lines, set after the lines step)."""
    df = _prepare(df, "order_id customer_id order_ts status channel device_type currency shipping_postcode updated_at")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, {
        "order_id": c.text("order_id"),
        "source_customer_id": c.text("customer_id"),
        "channel": c.enum("channel", CHANNEL_SYNONYMS),
        "order_ts": c.ts("order_ts"),
        "status": c.enum("status", ORDER_STATUS_SYNONYMS),
        "store_id": F.lit(None).cast("string"),
        "device_type": c.enum("device_type", DEVICE_SYNONYMS),
        "payment_method": F.lit(None).cast("string"),
        "currency": F.upper(c.text("currency")),
        "order_total": F.lit(None).cast("decimal(12,2)"),
        "shipping_postcode": S.postcode_value(c.raw("shipping_postcode")),
        "updated_at": c.ts("updated_at"),
    }, source_system=source_system, source_kind=source_kind)
    return out.withColumns({"order_date": F.to_date("order_ts"), "_version_ts": F.coalesce("updated_at", "order_ts")})


def orders_from_pos(df: DataFrame, *, source_system: str, source_kind: str = "pos",
                    formats: Mapping[str, str] | None = None,
                    values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """POS receipts -> silver.orders batch (channel store; status completed for a sale, returned for a return)."""
    df = _prepare(df, "transaction_id store_id member_id transaction_ts transaction_type payment_method total_amount")
    c = _Ctx(source_kind, formats, values)
    ttype = c.enum("transaction_type", TRANSACTION_TYPE_SYNONYMS)
    out = _finish(df, c, {
        "order_id": c.text("transaction_id"),
        "source_customer_id": c.text("member_id"),
        "channel": F.lit("store"),
        "order_ts": c.ts("transaction_ts", "order_ts"),
        "status": F.coalesce(S.lookup(TRANSACTION_STATUS, ttype), ttype),
        "store_id": c.text("store_id"),
        "device_type": F.lit(None).cast("string"),
        "payment_method": c.enum("payment_method", PAYMENT_METHOD_SYNONYMS),
        "currency": F.lit(POS_CURRENCY),
        "order_total": c.money("total_amount", "order_total"),
        "shipping_postcode": F.lit(None).cast("string"),
        "updated_at": F.lit(None).cast("timestamp"),
    }, source_system=source_system, source_kind=source_kind)
    return out.withColumns({"order_date": F.to_date("order_ts"), "_version_ts": F.col("order_ts")})


# --- order lines -------------------------------------------------------------------------------------------------
def order_lines_from_online(df: DataFrame, *, source_system: str, source_kind: str = "online",
                            formats: Mapping[str, str] | None = None,
                            values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """Online order lines -> silver.order_lines batch (header columns are attached by :func:`attach_order_headers`)."""
    df = _prepare(df, "order_id line_number sku quantity unit_price discount_amount line_total updated_at")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, _line_columns(c, {
        "order_id": c.text("order_id"),
        "line_number": c.int("line_number"),
        "sku": c.text("sku"),
        "quantity": c.int("quantity"),
        "unit_price": c.money("unit_price"),
        "discount_amount": c.money("discount_amount"),
        "line_total_given": c.money("line_total"),
        "updated_at": c.ts("updated_at"),
    }), source_system=source_system, source_kind=source_kind)
    return _line_common(out).withColumn("_version_ts", F.col("updated_at"))


def order_lines_from_pos(df: DataFrame, *, source_system: str, source_kind: str = "pos",
                         formats: Mapping[str, str] | None = None,
                         values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """POS receipt lines -> silver.order_lines batch (header columns are attached by :func:`attach_order_headers`)."""
    df = _prepare(df, "transaction_id line_number item_code quantity unit_price discount line_total")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, _line_columns(c, {
        "order_id": c.text("transaction_id"),
        "line_number": c.int("line_number"),
        "sku": c.text("item_code"),
        "quantity": c.int("quantity"),
        "unit_price": c.money("unit_price"),
        "discount_amount": c.money("discount", "discount_amount"),
        "line_total_given": c.money("line_total"),
        "updated_at": F.lit(None).cast("timestamp"),
    }), source_system=source_system, source_kind=source_kind)
    return _line_common(out).withColumn("_version_ts", F.lit(None).cast("timestamp"))


HEADER_COLUMNS = ("channel", "source_customer_id", "store_id", "order_ts", "order_date", "order_status",
                  "payment_method", "currency")


def _line_columns(c: _Ctx, typed: dict[str, Column]) -> dict[str, Column]:
    out = dict(typed)
    for name in HEADER_COLUMNS:
        out.setdefault(name, F.lit(None).cast("timestamp" if name == "order_ts" else "date" if name == "order_date" else "string"))
    return out


def _line_common(df: DataFrame) -> DataFrame:
    """The discount takes the sign of the quantity (a return refunds the discounted price; 0 when missing); a missing
    line total is quantity * unit_price - discount (a given one is kept and checked by a rule)."""
    sign = F.when(F.col("quantity") < 0, F.lit(-1)).otherwise(F.lit(1))
    discount = (F.abs(F.coalesce(F.col("discount_amount"), F.lit(0).cast("decimal(12,2)"))) * sign).cast("decimal(12,2)")
    derived = (F.col("quantity") * F.col("unit_price") - discount).cast("decimal(12,2)")
    return (
        df.withColumn("discount_amount", discount)
        .withColumn("line_total", F.coalesce(F.col("line_total_given"), derived))
        .drop("line_total_given")
        .withColumn("line_type", F.lit(None).cast("string"))
    )


def attach_order_headers(lines: DataFrame, *, headers: DataFrame) -> DataFrame:
    """Fill each line's channel, customer, store, order time, status, payment method and currency from its order
    header in silver.orders (joined on source_system, order_id), and derive ``line_type``: ``return`` for a negative
    quantity or a returned order, ``cancelled`` for a cancelled order, else ``sale``. Lines without a header keep
    nulls (the ``order_header_found`` rule quarantines them)."""
    h = headers.select(
        F.col("source_system").alias("_h_source_system"), F.col("order_id").alias("_h_order_id"),
        *[F.col(c if c != "order_status" else "status").alias(f"_h_{c}") for c in HEADER_COLUMNS],
    )
    joined = lines.join(
        h, (lines["source_system"] == h["_h_source_system"]) & (lines["order_id"] == h["_h_order_id"]), "left"
    )
    filled = joined.withColumns({c: F.coalesce(F.col(f"_h_{c}"), F.col(c)) for c in HEADER_COLUMNS})
    status = F.col("order_status")
    line_type = (
        F.when(F.col("quantity") < 0, F.lit("return"))
        .when(status == "cancelled", F.lit("cancelled"))
        .when(status == "returned", F.lit("return"))
        .when(F.col("quantity").isNotNull(), F.lit("sale"))
    )
    return (
        filled.withColumn("line_type", line_type)
        .withColumn("_version_ts", F.coalesce(F.col("_version_ts"), F.col("updated_at")))
        .drop("_h_source_system", "_h_order_id", *[f"_h_{c}" for c in HEADER_COLUMNS])
    )


def attach_payment_methods(orders: DataFrame, *, payments: DataFrame) -> DataFrame:
    """Fill an order's missing payment_method from its payments (captured first, then earliest, then payment id)."""
    from pyspark.sql import Window

    w = Window.partitionBy("source_system", "order_id").orderBy(
        F.when(F.col("status") == "captured", 0).otherwise(1), F.col("payment_ts").asc_nulls_last(), F.col("payment_id")
    )
    first = (
        payments.select("source_system", "order_id", "payment_method", "status", "payment_ts", "payment_id")
        .withColumn("_rn", F.row_number().over(w))
        .filter("_rn = 1")
        .select(F.col("source_system").alias("_p_ss"), F.col("order_id").alias("_p_oid"),
                F.col("payment_method").alias("_p_method"))
    )
    joined = orders.join(first, (orders["source_system"] == first["_p_ss"]) & (orders["order_id"] == first["_p_oid"]), "left")
    return joined.withColumn("payment_method", F.coalesce("payment_method", "_p_method")).drop("_p_ss", "_p_oid", "_p_method")


# --- events ------------------------------------------------------------------------------------------------------
def events_from_clickstream(df: DataFrame, *, source_system: str, source_kind: str = "clickstream",
                            formats: Mapping[str, str] | None = None,
                            values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """Clickstream events -> silver.events batch (seed 003 events_cleaned: lower-cased type and brand, 'unknown'
    category/brand, category levels, event date/hour/day of week, event_id hash)."""
    df = _prepare(df, "event_time event_type product_id category_id category_code brand price user_id user_session "
                      "device_type")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, {
        "event_time": c.ts("event_time"),
        "event_type": c.enum("event_type", EVENT_TYPE_SYNONYMS),
        "product_id": c.text("product_id"),
        "category_id": c.long("category_id"),
        "category_code": S.category_code_value(c.raw("category_code")),
        "brand": S.brand_value(c.raw("brand")),
        "price": c.money("price"),
        "user_id": c.text("user_id"),
        "user_session": c.text("user_session"),
        "device_type": c.enum("device_type", DEVICE_SYNONYMS),
    }, source_system=source_system, source_kind=source_kind, extra={"_event_time_raw": F.trim(c.raw("event_time"))})
    l1, l2, l3 = S.category_levels("category_code")
    key = F.concat_ws(
        "|", _event_time_key(c, raw_column="_event_time_raw"), F.coalesce("user_id", F.lit("")),
        F.coalesce("product_id", F.lit("")), F.coalesce("user_session", F.lit("")), F.coalesce("event_type", F.lit("")),
    )
    return (
        out.withColumn("event_id", F.sha2(key, 256))
        .drop("_event_time_raw")
        .transform(S.derive_time_parts, column="event_time", prefix="event")
        .withColumns({"category_l1": l1, "category_l2": l2, "category_l3": l3, "_version_ts": F.col("event_time")})
    )


#: A raw event time already written as the event_id key writes it (``yyyy-MM-dd HH:mm:ss``, optionally `` UTC``),
#: with every field in range: the built-in clickstream formats read it back to the same digits.
_KEY_SHAPED_TIME = (r"\A[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                    r"( UTC)?\z")


def _event_time_key(c: _Ctx, *, raw_column: str) -> Column:
    """``event_time`` as the event_id key writes it, ``date_format(event_time, 'yyyy-MM-dd HH:mm:ss')``; null when
    it did not parse.

    With the built-in formats (REES46: ``2019-10-01 00:00:05 UTC``), a parsed time whose trimmed raw text
    (``raw_column``) has that shape is its first 19 characters: parsing and formatting in UTC give back the same
    digits, and the regex lets through no value a strict parser could read differently (a month 13, a second 60, a
    year before 1000). Formatting every timestamp cost about 1.2 s of engine CPU per 1.8M events. A mapping's own
    format for event_time (``%d/%m/%Y ...``) always goes through ``date_format``."""
    formatted = F.date_format("event_time", "yyyy-MM-dd HH:mm:ss")
    if "event_time" in c.formats:
        return formatted
    raw = F.col(raw_column)
    return F.when(F.col("event_time").isNotNull() & raw.rlike(_KEY_SHAPED_TIME), F.substring(raw, 1, 19)).otherwise(
        formatted)


# --- inventory ---------------------------------------------------------------------------------------------------
def movements_from_inventory(df: DataFrame, *, source_system: str, source_kind: str = "inventory",
                             formats: Mapping[str, str] | None = None,
                             values: Mapping[str, Mapping[str, str]] | None = None) -> DataFrame:
    """Stock movements -> silver.inventory_movements batch."""
    df = _prepare(df, "movement_id movement_ts location_id sku movement_type quantity unit_cost reference")
    c = _Ctx(source_kind, formats, values)
    out = _finish(df, c, {
        "movement_id": c.text("movement_id"),
        "movement_ts": c.ts("movement_ts"),
        "location_id": c.text("location_id"),
        "sku": c.text("sku"),
        "movement_type": c.enum("movement_type", MOVEMENT_TYPE_SYNONYMS),
        "quantity": c.int("quantity"),
        "unit_cost": c.money("unit_cost"),
        "reference": c.text("reference"),
    }, source_system=source_system, source_kind=source_kind)
    return out.withColumns({"movement_date": F.to_date("movement_ts"), "_version_ts": F.col("movement_ts")})
