"""Bad-input corpus: hostile landing files never crash the pipeline and never lose a row silently.

The corpus (``tests/corpus/make_corpus.py``, written into tmp_path at test time) holds empty and header-only files,
the wrong delimiter, Latin-1, UTF-8 with a BOM and CRLF, mixed encodings, embedded newlines and quotes, a 1 MB field,
10,000 columns, binary garbage, truncated gzip and Parquet, JSON with wrong types, dates in five formats, far-future
and pre-1900 dates, negative/zero/huge quantities, and SQL/script injection strings in names and in a file name.

One pipeline run (ingest, refine, publish) over the corpus day, then per file: the ledger status, reason, encoding and
record count; bronze holds exactly the records of every loaded file (malformed ones with their raw text); after
refine, every bronze row of a corpus file is in silver, in quarantine (with the expected rule), or counted as
deduplicated, and per silver table bronze == silver + quarantined + deduplicated.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "corpus"))

from make_corpus import ONLINE_PAYMENTS, WIDE_COLUMNS, Expected, write_corpus  # noqa: E402

pytestmark = [pytest.mark.flow, pytest.mark.filterwarnings("ignore:.*No Partition Defined")]

DAY = dt.date(2026, 2, 1)


def _read(path) -> list[dict]:
    from deltalake import DeltaTable

    return DeltaTable(str(path)).to_pyarrow_table().to_pylist()


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory):
    """Write the corpus, run ingest, refine and publish for its day (in-process, shared session), keep the outcomes."""
    from flows.ingest import ingest_day
    from flows.refine import refine_day
    from lakehouse.settings import load_settings

    root = tmp_path_factory.mktemp("corpus")
    settings = load_settings(data_root=str(root / "lh"), spark_remote=None)
    expected = write_corpus(settings.landing_root, DAY)
    out = {"settings": settings, "expected": expected, "errors": {}}
    out["ingest_runs"] = ingest_day(settings, DAY)
    out["refine_runs"] = refine_day(settings, DAY)
    try:
        from flows.publish import publish_day

        out["publish_runs"] = publish_day(settings, DAY)
    except Exception as exc:  # noqa: BLE001 - asserted by its own test
        out["errors"]["publish"] = exc
    return out


def _warehouse(settings) -> Path:
    return Path(settings.warehouse_root)


def _ledger(corpus) -> dict[str, dict]:
    rows = _read(_warehouse(corpus["settings"]) / "system" / "file_ledger")
    by_path: dict[str, dict] = {}
    for r in rows:
        by_path[r["file_path"]] = r
    assert len(by_path) == len(rows), "a corpus file has more than one ledger row after one run"
    return by_path


def _bronze_rows(corpus, exp: Expected) -> list[dict]:
    folder = _warehouse(corpus["settings"]) / "bronze" / f"{exp.source}_{exp.entity}"
    if not (folder / "_delta_log").is_dir():
        return []
    from deltalake import DeltaTable

    import pyarrow.compute as pc

    t = DeltaTable(str(folder)).to_pyarrow_table()
    return t.filter(pc.equal(t["_source_file"], str(exp.path))).to_pylist()


def _ids(exps: list[Expected]) -> list[str]:
    return [e.name for e in exps]


def test_corpus_covers_the_hostile_cases():
    names = " ".join(e.what for e in write_corpus_preview())
    for case in ("empty", "header", "delimiter", "Latin-1", "byte-order mark", "CRLF", "newlines", "quotes", "1 MB",
                 "10,000 columns", "binary garbage", "truncated gzip", "truncated Parquet", "wrong types",
                 "five formats", "far-future", "pre-1900", "negative", "huge", "injection", "mixed encodings"):
        assert case.lower() in names.lower(), f"the corpus lacks a file for: {case}"


def write_corpus_preview() -> list[Expected]:
    from make_corpus import build_corpus

    return [e for e, _ in build_corpus(DAY)]


def test_the_pipeline_finishes_every_layer(corpus):
    assert corpus["ingest_runs"] and corpus["refine_runs"]
    assert not [r for r in corpus["refine_runs"] if r.status == "failed"]
    assert "publish" not in corpus["errors"], f"publish failed on the corpus day: {corpus['errors'].get('publish')}"
    from lakehouse.manifest import latest_manifest

    manifest = latest_manifest(corpus["settings"])
    assert manifest is not None and manifest.run_date == DAY.isoformat()


def test_every_file_is_loaded_or_rejected_with_a_reason(corpus):
    ledger = _ledger(corpus)
    problems = []
    for exp in corpus["expected"]:
        entry = ledger.get(str(exp.path))
        if entry is None:
            problems.append(f"{exp.name}: no ledger row")
            continue
        bronze = _bronze_rows(corpus, exp)
        if exp.any_outcome:  # loaded (every record kept, counted) or rejected with a reason naming the file
            if entry["status"] == "rejected":
                ok = exp.name in entry["reason"] and len(bronze) == 0 and len(entry["reason"]) > 20
            else:
                ok = entry["status"] == "loaded" and len(bronze) == entry["rows"] and entry["rows"] > 0
                ok = ok and entry["malformed_rows"] == sum(1 for r in bronze if r["_parse_error"] is not None)
            if not ok:
                problems.append(f"{exp.name} ({exp.what}): {entry['status']} rows={entry['rows']} bronze={len(bronze)} "
                                f"reason={entry['reason']!r}")
            continue
        got = (entry["status"], entry["rows"], entry["malformed_rows"])
        want = (exp.status, exp.records, exp.malformed)
        if got != want:
            problems.append(f"{exp.name} ({exp.what}): ledger (status, rows, malformed) {got}, expected {want}; "
                            f"reason {entry['reason']!r}")
        if exp.reason and exp.reason not in (entry["reason"] or ""):
            problems.append(f"{exp.name}: ledger reason {entry['reason']!r} lacks {exp.reason!r}")
        if exp.status == "rejected" and exp.name not in (entry["reason"] or ""):
            problems.append(f"{exp.name}: the rejection reason does not name the file: {entry['reason']!r}")
        if exp.encoding and entry["encoding"] != exp.encoding:
            problems.append(f"{exp.name}: encoding {entry['encoding']!r}, expected {exp.encoding!r}")
        if len(bronze) != exp.loaded_rows:
            problems.append(f"{exp.name}: bronze holds {len(bronze)} rows, expected {exp.loaded_rows}")
        numbers = sorted(r["_line_number"] for r in bronze)
        if len(set(numbers)) != len(numbers) or (".jsonl" not in exp.name and numbers != list(range(1, len(bronze) + 1))):
            # CSV and Parquet number records 1..n; JSON lines keep the physical line number (blank lines skipped)
            problems.append(f"{exp.name}: bronze line numbers {numbers[:12]} are not unique record numbers")
        bad = [r for r in bronze if r["_parse_error"] is not None]
        if len(bad) != exp.malformed or any(not r["_raw_line"] for r in bad):
            problems.append(f"{exp.name}: {len(bad)} malformed rows in bronze (raw text kept for all?), expected {exp.malformed}")
        by_line = {r["_line_number"]: r for r in bronze}
        for (line, column), value in exp.bronze_values.items():
            got_value = by_line.get(line, {}).get(column)
            if got_value != value:
                problems.append(f"{exp.name} line {line} {column}: bronze has {str(got_value)[:80]!r}, expected {value[:80]!r}")
    assert not problems, "\n".join(problems)


def test_bronze_counts_match_the_ledger_and_the_run_records(corpus):
    ledger = _ledger(corpus)
    by_table: Counter = Counter()
    for e in ledger.values():
        if e["status"] == "loaded":
            by_table[e["table_name"]] += e["rows"]
    runs = {r.table_name: r for r in corpus["ingest_runs"]}
    for name, run in runs.items():
        assert run.balanced, f"{name}: {run}"
        folder = _warehouse(corpus["settings"]) / "bronze" / name.removeprefix("bronze.")
        rows = len(_read(folder)) if (folder / "_delta_log").is_dir() else 0
        assert rows == by_table[name] == run.rows_out, f"{name}: bronze {rows}, ledger {by_table[name]}, run {run.rows_out}"
        rejected = sum(e["rows"] for e in ledger.values() if e["table_name"] == name and e["status"] == "rejected")
        assert run.rows_rejected == rejected


def _silver(corpus, name: str) -> list[dict]:
    folder = _warehouse(corpus["settings"]) / "silver" / name
    return _read(folder) if (folder / "_delta_log").is_dir() else []


def _quarantine(corpus) -> list[dict]:
    rows = _read(_warehouse(corpus["settings"]) / "system" / "quarantine")
    for r in rows:
        key = json.loads(r["index_key"])
        r["_file"], r["_line"] = key.get("_source_file"), int(key["_line_number"]) if key.get("_line_number") else None
    return rows


def test_no_row_is_lost_between_bronze_and_silver(corpus):
    """Per silver table: bronze rows of the day == silver + quarantined + deduplicated, from the data and the runs."""
    from flows.refine import feeds_for
    from transforms.silver.tables import TABLES

    settings = corpus["settings"]
    quarantine = _quarantine(corpus)
    runs = {r.table_name: r for r in corpus["refine_runs"]}
    for name, table in TABLES.items():
        qualified = f"silver.{name}"
        bronze: list[tuple[str, int]] = []
        for feed in feeds_for(settings, table):
            folder = _warehouse(settings) / "bronze" / feed.bronze.name
            if (folder / "_delta_log").is_dir():
                bronze += [(r["_source_file"], r["_line_number"]) for r in _read(folder) if r["ingest_date"] == DAY]
        silver = {(r["_source_file"], r["_line_number"]) for r in _silver(corpus, name) if r["ingest_date"] == DAY}
        held = {(r["_file"], r["_line"]) for r in quarantine if r["source_table"] == qualified and r["ingest_date"] == DAY}
        assert not silver & held, f"{qualified}: rows both in silver and quarantined: {sorted(silver & held)[:3]}"
        unaccounted = [k for k in bronze if k not in silver and k not in held]
        run = runs.get(qualified)
        if not bronze:
            continue
        assert run is not None and run.balanced, f"{qualified}: {run}"
        assert run.rows_in == len(bronze)
        assert run.rows_quarantined == len(held)
        assert run.rows_out == len(silver)
        assert len(unaccounted) == run.rows_deduplicated, (
            f"{qualified}: {len(unaccounted)} bronze rows are neither in silver nor quarantined, but the run counts "
            f"{run.rows_deduplicated} as deduplicated: {unaccounted[:5]}")


def _record_level() -> list[Expected]:
    return [e for e in write_corpus_preview() if e.silver_table and (e.quarantine or e.passes or e.silver_values)]


@pytest.mark.parametrize("exp", _record_level(), ids=_ids(_record_level()))
def test_defects_are_quarantined_with_their_rule(corpus, exp):
    """Each defective record fails its rule in quarantine; each good record of the file reaches silver."""
    exp = next(e for e in corpus["expected"] if e.name == exp.name)
    held = {r["_line"]: r for r in _quarantine(corpus) if r["_file"] == str(exp.path) and r["source_table"] == exp.silver_table}
    silver = {r["_line_number"]: r for r in _silver(corpus, exp.silver_table.removeprefix("silver."))
              if r["_source_file"] == str(exp.path)}
    problems = []
    for line, rule in exp.quarantine.items():
        if line not in held:
            where = "in silver" if line in silver else "nowhere (deduplicated?)"
            problems.append(f"line {line}: expected quarantined by `{rule}`, but it is {where}")
        elif rule not in held[line]["failed_rules"]:
            problems.append(f"line {line}: quarantined by {held[line]['failed_rules']}, expected `{rule}` among them "
                            f"({held[line]['reasons']})")
        elif not held[line]["reasons"] or not held[line]["row_json"]:
            problems.append(f"line {line}: quarantine row lacks reasons or the original row")
    for line in exp.passes:
        if line not in silver:
            problems.append(f"line {line}: expected in {exp.silver_table}, but it is "
                            + (f"quarantined by {held[line]['failed_rules']}: {held[line]['reasons']}" if line in held
                               else "missing"))
    for (line, column), value in exp.silver_values.items():  # silver title-cases names: compare ignoring case
        got = silver.get(line, {}).get(column)
        if str(got).lower() != value.lower():
            problems.append(f"line {line} {column}: silver has {got!r}, expected {value!r}")
    assert not problems, f"{exp.name} ({exp.what}):\n" + "\n".join(problems)


def test_injection_strings_are_data_not_code(corpus):
    """Injection strings are stored verbatim, and every table still exists (no statement ran)."""
    settings = corpus["settings"]
    rows = _silver(corpus, "customers")
    names = {str(r[c]).lower() for r in rows for c in ("first_name", "full_name")}
    assert "robert'); drop table students;--" in names and "<script>alert('pwned')</script>" in names
    for layer in ("bronze", "silver", "system"):
        for folder in (Path(settings.warehouse_root) / layer).iterdir():
            if (folder / "_delta_log").is_dir():
                _read(folder)  # readable


def test_the_wide_file_does_not_widen_bronze(corpus):
    """10,000 columns: rejected as a whole (more unexpected columns than LAKEHOUSE_MAX_EXTRA_COLUMNS), the reason
    in the ledger, the file left in landing; bronze.online_payments keeps its contract columns and the other file."""
    settings = corpus["settings"]
    exp = next(e for e in corpus["expected"] if "10000" in e.name)
    entry = _ledger(corpus)[str(exp.path)]
    extra = WIDE_COLUMNS - len(ONLINE_PAYMENTS)
    assert entry["status"] == "rejected" and entry["rows"] == 2, entry
    assert f"{extra:,} unexpected columns" in entry["reason"] and exp.name in entry["reason"]
    assert f"more than the {settings.max_extra_columns:,} extra columns" in entry["reason"]
    assert "LAKEHOUSE_MAX_EXTRA_COLUMNS" in entry["reason"] and len(entry["reason"]) < 1000, entry["reason"]
    assert exp.path.exists() and exp.path.stat().st_size > WIDE_COLUMNS  # nothing lost: still in landing
    from deltalake import DeltaTable

    folder = _warehouse(settings) / "bronze" / "online_payments"
    names = DeltaTable(str(folder)).schema().to_arrow().names
    assert not [n for n in names if n.startswith("x0")], "bronze.online_payments was widened by the rejected file"
    assert len(names) < 30, names
    assert {r["_source_file"] for r in _read(folder)} == {str(e.path) for e in corpus["expected"]
                                                         if e.entity == "payments" and e.status == "loaded"}


PLAUSIBLE_TIME_RULES = {"silver.orders": "order_time_plausible", "silver.events": "event_time_plausible",
                        "silver.payments": "payment_time_plausible",
                        "silver.inventory_movements": "movement_time_plausible"}


def test_far_future_and_pre_1900_business_times_are_quarantined(corpus):
    """Order, event, payment and movement times outside [1990-01-01, ingest_date + 2 days) are held by their
    plausibility rule and reach neither silver nor gold; late and clock-skewed times within the bounds pass."""
    held = {(r["_file"], r["_line"]): r for r in _quarantine(corpus)}
    checked: Counter = Counter()
    problems = []
    for exp in corpus["expected"]:
        rule = PLAUSIBLE_TIME_RULES.get(exp.silver_table)
        if rule is None or exp.status != "loaded":
            continue
        silver = {r["_line_number"] for r in _silver(corpus, exp.silver_table.removeprefix("silver."))
                  if r["_source_file"] == str(exp.path)}
        for line, want in exp.quarantine.items():
            if want != rule:
                continue
            checked[exp.silver_table] += 1
            row = held.get((str(exp.path), line))
            if row is None or rule not in row["failed_rules"]:
                problems.append(f"{exp.name} line {line}: not quarantined by `{rule}`")
            if line in silver:
                problems.append(f"{exp.name} line {line}: reached {exp.silver_table}")
        for line in exp.passes:
            row = held.get((str(exp.path), line))
            if row is not None and rule in row["failed_rules"]:
                problems.append(f"{exp.name} line {line}: a plausible time quarantined by `{rule}`: {row['reasons']}")
    assert not problems, "\n".join(problems)
    assert set(checked) == set(PLAUSIBLE_TIME_RULES), f"the corpus has no implausible time for some table: {checked}"
    # gold never sees them: no business date or time in any gold table lies outside the bounds
    low, high = dt.datetime(1990, 1, 1), dt.datetime.combine(DAY + dt.timedelta(days=2), dt.time())
    business = {"order_date", "order_ts", "event_date", "event_time", "payment_date", "payment_ts", "movement_date",
                "movement_ts"}
    seen = 0
    for folder in sorted((_warehouse(corpus["settings"]) / "gold").iterdir()):
        if not (folder / "_delta_log").is_dir():
            continue
        for row in _read(folder):
            for column in business & row.keys():
                value = row[column]
                if value is None:
                    continue
                seen += 1
                when = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
                if not low <= when.replace(tzinfo=None) < high:
                    problems.append(f"gold.{folder.name} {column} = {value}")
    assert seen and not problems, "\n".join(problems[:10]) or "gold has no business dates to check"
