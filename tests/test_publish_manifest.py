"""The publication manifest: versions, atomic immutable files, readers, local and S3."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from lakehouse.manifest import (
    ManifestError, TableRef, latest_manifest, list_versions, manifest_dir, read_manifest, write_manifest,
)
from lakehouse.storage import Storage

pytestmark = pytest.mark.unit


def _tables(settings, version=0):
    base = f"{settings.warehouse_root}/gold"
    return {
        "gold.fact_sales": TableRef(f"{base}/fact_sales", version, 10),
        "dim_product": {"location": f"{base}/dim_product", "delta_version": version + 1, "rows": 3},
    }


def test_versions_start_at_one_and_increase(settings):
    assert latest_manifest(settings) is None
    m1 = write_manifest(settings, _tables(settings), "publish-1", dt.date(2026, 1, 1), {"passed": True})
    m2 = write_manifest(settings, _tables(settings, 4), "publish-2", "2026-01-02", {"passed": True})
    assert (m1.version, m2.version) == (1, 2)
    assert list_versions(settings) == [1, 2]
    latest = latest_manifest(settings)
    assert latest.version == 2 and latest.run_id == "publish-2" and latest.run_date == "2026-01-02"
    assert latest.table("fact_sales").delta_version == 4          # bare name
    assert latest.table("gold.dim_product") == TableRef(f"{settings.warehouse_root}/gold/dim_product", 5, 3)
    with pytest.raises(KeyError, match="no table nope"):
        latest.table("nope")
    assert read_manifest(settings, 1).table("gold.fact_sales").delta_version == 0


def test_file_layout_and_content_follow_the_contract(settings):
    m = write_manifest(settings, _tables(settings), "publish-x", dt.date(2026, 1, 3), {"passed": True, "tables": {}})
    folder = manifest_dir(settings)
    assert folder == f"{settings.warehouse_root}/gold/_manifest"
    assert sorted(os.listdir(folder)) == ["v0000000001.json"]       # no temporary left behind
    doc = json.loads(open(f"{folder}/v0000000001.json").read())
    assert set(doc) == {"version", "published_at", "run_id", "run_date", "tables", "gates"}
    assert doc["tables"]["gold.dim_product"] == {"location": f"{settings.warehouse_root}/gold/dim_product",
                                                 "delta_version": 1, "rows": 3}
    assert doc["published_at"].endswith("Z") and doc["run_date"] == "2026-01-03"
    assert m.uri.endswith("v0000000001.json")


def test_a_published_version_is_never_overwritten(settings):
    write_manifest(settings, _tables(settings), "publish-1", "2026-01-01")
    path = f"{manifest_dir(settings)}/v0000000001.json"
    before = open(path).read()
    # a second writer that still believes the folder is empty claims the next free version instead
    from lakehouse import manifest as mod

    real = mod.list_versions
    calls = {"n": 0}

    def stale(settings_):
        calls["n"] += 1
        return [] if calls["n"] == 1 else real(settings_)

    mod.list_versions = stale
    try:
        m = write_manifest(settings, _tables(settings, 7), "publish-2", "2026-01-02")
    finally:
        mod.list_versions = real
    assert m.version == 2 and open(path).read() == before


def test_readers_ignore_temporaries_and_bad_input_is_a_sentence(settings):
    folder = manifest_dir(settings)
    os.makedirs(folder)
    open(f"{folder}/.v0000000009.json.tmp", "w").write("{partial")
    assert latest_manifest(settings) is None
    with pytest.raises(ManifestError, match="no tables"):
        write_manifest(settings, {}, "r", "2026-01-01")
    open(f"{folder}/v0000000001.json", "w").write("{not json")
    with pytest.raises(ManifestError, match="not valid"):
        latest_manifest(settings)


@pytest.mark.s3
def test_manifest_on_s3(s3_settings):
    assert latest_manifest(s3_settings) is None
    write_manifest(s3_settings, _tables(s3_settings), "publish-1", "2026-01-01")
    m = write_manifest(s3_settings, _tables(s3_settings, 2), "publish-2", "2026-01-02")
    assert m.version == 2 and m.uri.startswith("s3://")
    assert latest_manifest(s3_settings).table("fact_sales").delta_version == 2
    names = [f.name for f in Storage(s3_settings).list_files(manifest_dir(s3_settings))]
    assert names == ["v0000000001.json", "v0000000002.json"]


def test_select_tables_and_failure_messages():
    from flows.publish import BUILD_ORDER, _failed_rules, select_tables
    from lakehouse.errors import LakehouseError

    assert select_tables(None) == list(BUILD_ORDER)
    assert select_tables(["gold.daily_sales_summary", "dim_date"]) == ["dim_date", "daily_sales_summary"]
    with pytest.raises(LakehouseError, match="unknown gold table"):
        select_tables(["fact_sale"])
    gates = [
        {"table": "gold.fact_sales", "passed": False, "rules": [
            {"name": "sales_key_unique", "severity": "fail", "success": False, "unexpected_count": 2,
             "examples": [{"sales_key": "online|o1|1"}]},
            {"name": "customers_resolved", "severity": "warn", "success": False, "unexpected_count": 5},
        ]},
        {"table": "gold.dim_date", "passed": True, "rules": [{"name": "no_gaps", "severity": "fail", "success": True}]},
    ]
    assert _failed_rules(gates) == [
        'gold.fact_sales: rule `sales_key_unique` failed on 2 row(s), e.g. [{"sales_key": "online|o1|1"}]'
    ]
