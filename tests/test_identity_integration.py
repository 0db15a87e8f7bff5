"""Identity resolution on generated data through the real pipeline: generator -> ingest -> refine -> resolve."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pyspark.sql import functions as F

pytestmark = [pytest.mark.flow, pytest.mark.slow]

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]


def test_generated_customers_resolve_against_ground_truth(spark, settings):
    from bench.identity import accuracy
    from flows.identity import resolve_customers
    from flows.ingest import ingest_days
    from flows.refine import refine_days
    from generator import generate
    from lakehouse import delta
    from lakehouse.catalog import CUSTOMER_XREF, GOLDEN_CUSTOMERS, SILVER_CUSTOMERS
    from lakehouse.settings import load_settings

    generate(settings, start=DAYS[0], days=2, customers=300, orders_per_day=2, seed=11)
    ingest_days(settings, DAYS, sources=["online", "pos"], entities=["customers", "members"])
    refine_days(settings, DAYS, tables=["silver.customers"])
    silver = delta.read_table(spark, SILVER_CUSTOMERS, settings)
    n_silver = silver.count()

    # day by day on one copy (day 1's records, then everything), a full build on another
    inc = settings
    resolve_customers(inc, customers=silver.where(F.col("ingest_date") <= F.lit(DAYS[0])), day=DAYS[0])
    counts = resolve_customers(inc, day=DAYS[1])
    assert counts["mode"] == "incremental"
    full = load_settings(data_root=str(settings.data_root) + "_full", spark_remote=None)
    resolve_customers(full, customers=silver, day=DAYS[1], full_rebuild=True)

    xref = delta.read_table(spark, CUSTOMER_XREF, inc).toPandas()
    assert len(xref) == n_silver and not xref.duplicated(["source_system", "source_customer_id"]).any()
    golden = delta.read_table(spark, GOLDEN_CUSTOMERS, inc).toPandas()
    assert set(golden["golden_id"]) == set(xref["golden_id"])
    assert golden.set_index("golden_id")["source_record_count"].sum() == n_silver

    truth = pd.read_csv(f"{settings.truth_root}/identity_map.csv", dtype=str)
    joined = xref.merge(truth, on=["source_system", "source_customer_id"])
    acc = accuracy(joined["golden_id"], joined["person_id"])
    assert acc["pairwise_precision"] >= 0.95 and acc["pairwise_recall"] >= 0.85, acc

    full_xref = delta.read_table(spark, CUSTOMER_XREF, full).toPandas()
    both = xref.merge(full_xref, on=["source_system", "source_customer_id"], suffixes=("_inc", "_full"))
    assert len(both) == n_silver
    assert accuracy(both["golden_id_inc"], both["golden_id_full"])["exact_cluster_share"] == 1.0, \
        "incremental and full build find the same identities"
