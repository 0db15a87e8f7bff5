"""Source mappings: the file format is validated, and every shipped mapping lands and ingests its real sample."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse import delta
from lakehouse.catalog import FILE_LEDGER, bronze_table
from lakehouse.errors import MappingError
from lakehouse.mappings import REPO_MAPPINGS_DIR, land_export, load_mapping, load_mappings, resolve_mapping
from lakehouse.sources import all_sources

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DAY = dt.date(2026, 2, 1)

#: Every shipped mapping and the sample folder it maps.
SAMPLES = {"olist": "olist", "online_retail": "online_retail", "rees46": "rees46"}


def csv_records(path: str) -> tuple[int, int]:
    """(records, records with the wrong number of fields) of a CSV file, counted with Python's csv module."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    header, body = rows[0], rows[1:]
    return len(body), sum(1 for r in body if len(r) != len(header))


def write_mapping(tmp_path: Path, text: str, name: str = "shop.yaml") -> Path:
    folder = tmp_path / "mappings"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


GOOD = """
name: shop
kind: online
entities:
  orders:
    files: ["orders_*.csv"]
    columns: {order_id: OrderNo, customer_id: Cust, order_ts: Placed}
    constants: {channel: web}
    formats: {order_ts: "%d.%m.%Y %H:%M"}
"""


@pytest.mark.unit
def test_every_shipped_mapping_loads_and_has_a_sample(settings):
    mappings = load_mappings(settings)
    assert set(mappings) == set(SAMPLES)
    assert {m.kind for m in mappings.values()} == {"online", "clickstream"}
    for name, mapping in mappings.items():
        sample = DATASETS / SAMPLES[name]
        names = [p.name for p in sample.iterdir()]
        for em in mapping.entities:
            assert any(em.matches(n) for n in names), f"{name}.{em.entity} matches no file of {sample}"
    assert sorted(p.name for p in REPO_MAPPINGS_DIR.glob("*.yaml")) == sorted(f"{n}.yaml" for n in SAMPLES)


@pytest.mark.unit
def test_mapping_file_is_parsed_into_the_contract(tmp_path):
    m = load_mapping(write_mapping(tmp_path, GOOD))
    assert (m.name, m.kind) == ("shop", "online")
    orders = m.entity("orders")
    assert orders.files == ("orders_*.csv",) and orders.matches("orders_2026.csv") and not orders.matches("x.csv")
    assert orders.columns == {"order_id": "OrderNo", "customer_id": "Cust", "order_ts": "Placed"}
    assert orders.constants == {"channel": "web"} and orders.formats == {"order_ts": "%d.%m.%Y %H:%M"}
    assert orders.csv == {"delimiter": ",", "quote_char": '"'}


@pytest.mark.unit
@pytest.mark.parametrize(
    "change, message",
    [
        (("  orders:", "  order:"), r"shop.yaml: entities.order: unknown entity 'order' of kind online"),
        (("customer_id: Cust", "customer: Cust"), r"entities.orders.columns.customer: unknown canonical column"),
        (("constants: {channel: web}", "constants: {chanel: web}"), r"entities.orders.constants.chanel: unknown"),
        (("    files:", "    file_names: [x]\n    files:"), r"entities.orders.file_names: unknown key"),
        (("kind: online", "kind: webshop"), r"shop.yaml: kind: Input should be"),
        (("name: shop", "name: pos"), r"name: 'pos' is a built-in source"),
        (("constants: {channel: web}", "constants: {order_id: x}"), r"constants.order_id: is also mapped"),
    ],
)
def test_bad_mapping_is_a_mapping_error_naming_file_and_key(tmp_path, change, message):
    path = write_mapping(tmp_path, GOOD.replace(*change))
    with pytest.raises(MappingError, match=message):
        load_mapping(path)


@pytest.mark.unit
def test_mappings_dir_setting_adds_sources(tmp_path, settings):
    write_mapping(tmp_path, GOOD)
    s = settings.model_copy(update={"mappings_dir": str(tmp_path / "mappings")})
    assert all_sources(s)["shop"] == "online"
    assert resolve_mapping(s, "shop").name == "shop"
    with pytest.raises(MappingError, match="unknown mapping 'nope'"):
        resolve_mapping(s, "nope")


@pytest.mark.flow
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_shipped_mapping_lands_and_ingests_its_sample_with_matching_counts(spark, settings, name):
    from flows.ingest import ingest_days

    mapping = resolve_mapping(settings, name)
    landed = land_export(settings, mapping, str(DATASETS / SAMPLES[name]), DAY)
    assert landed.copied and not landed.unchanged
    expected: dict[str, tuple[int, int]] = {}
    for entity, source_file, dest in landed.copied:
        assert Path(dest).read_bytes() == Path(source_file).read_bytes()  # landed unchanged
        records, bad = csv_records(source_file)
        prev = expected.get(entity, (0, 0))
        expected[entity] = (prev[0] + records, prev[1] + bad)
    assert set(expected) == set(mapping.entity_names)

    runs = {r.table_name: r for r in ingest_days(settings, [DAY], sources=[name])}
    for entity, (records, bad) in expected.items():
        spec = bronze_table(name, entity)
        rows = delta.read_table(spark, spec, settings).select("_parse_error", "_line_number", "_source_file").collect()
        assert len(rows) == records, f"{spec.qualified}: {len(rows)} rows, file has {records} records"
        assert sum(1 for r in rows if r["_parse_error"]) == bad
        assert len({(r["_source_file"], r["_line_number"]) for r in rows}) == records
        assert runs[spec.qualified].rows_in == records and runs[spec.qualified].files_rejected == 0

    # canonical names in bronze, unmapped export columns kept
    em = mapping.entities[0]
    df = delta.read_table(spark, bronze_table(name, em.entity), settings)
    assert set(em.columns) <= set(df.columns)

    # landing the same export again changes nothing and ingests nothing
    again = land_export(settings, mapping, str(DATASETS / SAMPLES[name]), DAY)
    assert not again.copied and len(again.unchanged) == len(landed.copied)
    assert all(r.files_loaded == 0 for r in ingest_days(settings, [DAY], sources=[name]))


@pytest.mark.flow
def test_olist_values_are_mapped_onto_canonical_columns(spark, settings):
    from flows.ingest import ingest_day

    land_export(settings, resolve_mapping(settings, "olist"), str(DATASETS / "olist"), DAY)
    ingest_day(settings, DAY, sources=["olist"], entities=["payments", "order_lines"], spark=spark)
    pay = delta.read_table(spark, bronze_table("olist", "payments"), settings).where(
        "order_id = '42fdf880ba16b47b59251dd489d4441a'").collect()[0]
    assert (pay["payment_id"], pay["payment_method"], pay["amount"], pay["status"], pay["payment_installments"]) == (
        "42fdf880ba16b47b59251dd489d4441a-1", "credit_card", "128.45", "captured", "2")
    line = delta.read_table(spark, bronze_table("olist", "order_lines"), settings).where(
        "order_id = '0009792311464db532ff765bf7b182ae'").collect()[0]
    assert (line["line_number"], line["sku"], line["quantity"], line["unit_price"], line["line_total"]) == (
        "1", "8cab8abac59158715e0d70a36c807415", "1", "99.9", "99.9")
    assert line["seller_id"] == "530ec6109d11eaaf87999465c6afee01"
    assert "price" not in delta.read_table(spark, bronze_table("olist", "order_lines"), settings).columns


@pytest.mark.flow
def test_export_missing_a_mapped_required_column_is_rejected(spark, settings, tmp_path):
    from flows.ingest import ingest_day

    mapping_file = write_mapping(tmp_path, GOOD)
    s = settings.model_copy(update={"mappings_dir": str(mapping_file.parent)})
    export = tmp_path / "export"
    export.mkdir()
    (export / "orders_1.csv").write_text("OrderNo,Cust,Placed\nA1,C1,03.01.2026 10:15\n")
    (export / "orders_2.csv").write_text("Cust,Placed\nC2,03.01.2026 10:16\n")
    (export / "readme.txt").write_text("not an export")
    landed = land_export(s, resolve_mapping(s, "shop"), str(export), DAY)
    assert len(landed.copied) == 2 and landed.unmatched[0].endswith("readme.txt")
    run = ingest_day(s, DAY, spark=spark)[0]
    assert (run.table_name, run.files_loaded, run.files_rejected, run.rows_out) == ("bronze.shop_orders", 1, 1, 1)
    rejected = [r for r in delta.read_table(spark, FILE_LEDGER, s).collect() if r["status"] == "rejected"]
    assert rejected[0]["file_path"].endswith("orders_2.csv")
    assert "`order_id` (mapped from export column `OrderNo`)" in rejected[0]["reason"]
    row = delta.read_table(spark, bronze_table("shop", "orders"), s).collect()[0]
    assert (row["order_id"], row["customer_id"], row["order_ts"], row["channel"]) == ("A1", "C1", "03.01.2026 10:15", "web")


@pytest.mark.flow
def test_cli_land_with_unknown_entity_prints_no_traceback(tmp_path):
    bad = write_mapping(tmp_path, GOOD.replace("  orders:", "  invoices:"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["LAKEHOUSE_DATA_ROOT"] = str(tmp_path / "lh")
    proc = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "land", "--mapping", str(bad), "--input", str(tmp_path),
         "--date", "2026-02-01"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert f"{bad}: entities.invoices: unknown entity 'invoices' of kind online" in proc.stderr
    assert "Traceback" not in proc.stderr
