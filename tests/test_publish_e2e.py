"""Landing -> bronze -> silver -> gold on generated days: every good order line reaches gold with its amount."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from lakehouse import delta
from lakehouse.catalog import table as catalog_table

pytestmark = [pytest.mark.flow, pytest.mark.filterwarnings("ignore:.*No Partition Defined")]

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
ORDER_LINE_FILES = {("online", "order_lines"): ("order_id", "line_total"), ("pos", "transaction_lines"): ("transaction_id", "line_total")}


def generator_truth(settings) -> dict[str, Decimal]:
    """{source|order|line: line_total} of every landed order line the generator did not spoil (late ones count)."""
    root = Path(settings.landing_root)
    bad: set[tuple[str, int]] = set()
    with open(Path(settings.truth_root) / "bad_records.csv", newline="") as f:
        for r in csv.DictReader(f):
            if (r["source"], r["entity"]) in ORDER_LINE_FILES and r["kind"] != "late_arriving":
                bad.add((r["file"], int(r["line_number"])))
    truth: dict[str, Decimal] = {}
    for (source, entity), (order_col, total_col) in ORDER_LINE_FILES.items():
        for path in sorted((root / source / entity).rglob("*.csv")):
            rel = str(path.relative_to(root))
            reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8")))
            header = next(reader)
            for n, values in enumerate(reader, start=1):
                if (rel, n) in bad:
                    continue
                rec = dict(zip(header, values))
                truth[f"{source}|{rec[order_col]}|{int(rec['line_number'])}"] = Decimal(rec[total_col])
    return truth


def quarantined_keys(spark, settings) -> set[str]:
    """source|order|line of every silver.order_lines row the gate quarantined."""
    spec = catalog_table("system.quarantine")
    if not delta.table_exists(spec, settings):
        return set()
    out = set()
    for r in delta.read_table(spark, spec, settings).where("source_table = 'silver.order_lines'").collect():
        key = json.loads(r["business_key"] or "{}")
        if key.get("order_id") and key.get("line_number"):
            try:
                out.add(f"{key['source_system']}|{key['order_id']}|{int(float(key['line_number']))}")
            except (TypeError, ValueError):
                continue
    return out


def test_generated_days_reconcile_from_landing_to_gold(spark, settings):
    from deltalake import DeltaTable

    from flows.ingest import ingest_days
    from flows.publish import publish_day
    from flows.refine import refine_days
    from generator import generate
    from lakehouse.manifest import latest_manifest

    generate(settings, start=DAYS[0], days=len(DAYS), customers=120, orders_per_day=30, seed=11, bad_share=0.03)
    ingest_days(settings, DAYS)
    refine_days(settings, DAYS)
    publish_day(settings, DAYS[-1])
    # the frames the voucher build staged are gone once the table is written
    assert not list(Path(settings.warehouse_root, "_staging").glob("*/publish"))

    manifest = latest_manifest(settings)
    ref = manifest.table("fact_sales")
    fact = DeltaTable(ref.location, version=ref.delta_version).to_pyarrow_table(
        columns=["sales_key", "net_amount", "order_date"]).to_pylist()
    gold = {r["sales_key"]: r["net_amount"] for r in fact}
    assert len(gold) == len(fact) > 50

    truth = generator_truth(settings)
    quarantined = quarantined_keys(spark, settings)
    expected = {k: v for k, v in truth.items() if k not in quarantined}
    assert set(gold) == set(expected)
    assert gold == expected                                   # every amount, line by line
    assert sum(gold.values()) == sum(expected.values())

    silver = delta.read_table(spark, catalog_table("silver.order_lines"), settings).collect()
    by_day_silver: dict = {}
    for r in silver:
        by_day_silver[r["order_date"]] = by_day_silver.get(r["order_date"], Decimal(0)) + r["line_total"]
    by_day_gold: dict = {}
    for r in fact:
        by_day_gold[r["order_date"]] = by_day_gold.get(r["order_date"], Decimal(0)) + r["net_amount"]
    assert by_day_gold == by_day_silver

    daily = DeltaTable(manifest.table("daily_sales_summary").location,
                       version=manifest.table("daily_sales_summary").delta_version).to_pyarrow_table().to_pylist()
    revenue = DeltaTable(ref.location, version=ref.delta_version).to_pyarrow_table(
        columns=["order_date", "revenue_amount"]).to_pylist()
    for day in {r["order_date"] for r in revenue}:
        want = sum(r["revenue_amount"] for r in revenue if r["order_date"] == day)
        assert [r["total_revenue"] for r in daily if r["event_date"] == day and r["channel"] == "all"] == [want]
