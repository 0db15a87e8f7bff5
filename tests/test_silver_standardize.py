"""Silver standardization and parsing rules, one parametrized case table per rule (tiny inline frames)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from transforms.silver import parsing as P
from transforms.silver import standardize as S

pytestmark = pytest.mark.unit

# rule name -> (function of the input column(s), cases: (inputs..., expected))
EMAIL_CASES = [
    (" Jane.Doe@Example.COM ", "jane.doe@example.com"),
    ("JOHN@x.co.uk", "john@x.co.uk"),
    ("a b@c.com", "ab@c.com"),
    ("   ", None),
    (None, None),
]
COUNTRY_CASES = [
    ("GB", "GB"), ("uk", "GB"), ("United Kingdom", "GB"), (" united  kingdom ", "GB"), ("U.K.", "GB"),
    ("IE", "IE"), ("Eire", "IE"), ("fr", "FR"), ("Germany", "DE"), ("de", "DE"), ("Brazil", "BR"),
    ("Unspecified", "UNSPECIFIED"), ("", None), (None, None),
]
PHONE_CASES = [  # (phone, country alpha-2, expected)
    ("+44 7700 900123", "GB", "+447700900123"),
    ("07700 900123", "GB", "+447700900123"),
    ("(0)7700-900-123", "GB", "+447700900123"),
    ("447700900123", "GB", "+447700900123"),
    ("0044 7700 900123", "GB", "+447700900123"),
    ("+44 (0)7700 900123", "GB", "+447700900123"),
    ("+44 07700 900123", "GB", "+447700900123"),
    ("07700 900123", None, "+447700900123"),
    ("087 123 4567", "IE", "+353871234567"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("+1 (415) 555-0100", "GB", "+14155550100"),
    ("0151 496 0000", "XX", None),  # national number of a country whose calling code is unknown
    ("12", "GB", None),  # too short to be a phone
    ("n/a", "GB", None),
    ("", "GB", None),
    (None, "GB", None),
]
POSTCODE_CASES = [
    ("SW1A 1AA", "SW1A 1AA"), ("sw1a1aa", "SW1A 1AA"), ("  sw1a   1aa ", "SW1A 1AA"), ("m11ae", "M1 1AE"),
    ("EC1A1BB", "EC1A 1BB"), ("d02x285", "D02 X285"), ("75001", "75001"), ("35182", "35182"),
    ("1234 ab", "1234 AB"), ("", None), (None, None),
]
NAME_CASES = [("  mARY  ann ", "Mary Ann"), ("JOHN", "John"), ("smith-jones", "Smith-Jones"), ("", None), (None, None),
              ("o'BRIEN", "O'Brien"), ("st.john 2nd", "St.John 2nd"), ("élodie-ann", "Élodie-Ann")]
FULL_NAME_CASES = [  # (full name, first, last)
    ("Smith, Jane", "Jane", "Smith"),
    ("  smith ,  jane ", "Jane", "Smith"),
    ("Jane Smith", "Jane", "Smith"),
    ("jane van der berg", "Jane", "Van Der Berg"),
    ("Cher", "Cher", None),
    (None, None, None),
]
BRAND_CASES = [(" Samsung ", "samsung"), ("APPLE", "apple"), ("Bang  &  Olufsen", "bang & olufsen"), ("", "unknown"), (None, "unknown")]
ENUM_CASES = [  # (value, expected) with synonyms {"canceled": "cancelled"}
    (" Delivered ", "delivered"), ("CANCELED", "cancelled"), ("cancelled", "cancelled"), ("Gift Card", "gift_card"),
    ("bank-transfer", "bank_transfer"), ("", None), (None, None),
]
CATEGORY_CASES = [  # (raw, code, l1, l2, l3)
    ("electronics.audio.headphones", "electronics.audio.headphones", "electronics", "audio", "headphones"),
    ("Electronics > Audio > Headphones", "electronics.audio.headphones", "electronics", "audio", "headphones"),
    ("Home & Garden > Kitchen", "home_garden.kitchen", "home_garden", "kitchen", "unknown"),
    ("appliances.environment.water_heater", "appliances.environment.water_heater", "appliances", "environment", "water_heater"),
    ("a.b.c.d", "a.b.c.d", "a", "b", "c"),
    ("moveis_decoracao", "moveis_decoracao", "moveis_decoracao", "unknown", "unknown"),
    ("  ", "unknown", "unknown", "unknown", "unknown"),
    (None, "unknown", "unknown", "unknown", "unknown"),
    # next to the already-clean form that is passed through as is: each needs the full clean-up
    ("a__b.c", "a_b.c", "a_b", "c", "unknown"),
    ("a_.b", "a.b", "a", "b", "unknown"),
    ("_a.b_", "a.b", "a", "b", "unknown"),
    ("a..b", "a.b", "a", "b", "unknown"),
    ("A.b", "a.b", "a", "b", "unknown"),
    (" a.b", "a.b", "a", "b", "unknown"),
    ("a.b.", "a.b", "a", "b", "unknown"),
    ("a.b\n", "a.b", "a", "b", "unknown"),
    ("électroménager.four", "électroménager.four", "électroménager", "four", "unknown"),
    ("x9.y_2.z", "x9.y_2.z", "x9", "y_2", "z"),
]
TIMESTAMP_CASES = [  # (raw, spark formats, expected)
    ("2026-01-03T10:15:00Z", P.ISO_UTC, dt.datetime(2026, 1, 3, 10, 15)),
    ("2026-01-03T10:15:00.250Z", P.ISO_UTC, dt.datetime(2026, 1, 3, 10, 15, 0, 250000)),
    ("2026-01-03T10:15:00+01:00", P.ISO_UTC, dt.datetime(2026, 1, 3, 9, 15)),
    ("2026-01-03 10:15:00", P.POS_TS, dt.datetime(2026, 1, 3, 10, 15)),
    ("2019-10-01 00:00:00 UTC", P.REES46_TS, dt.datetime(2019, 10, 1)),
    ("12/1/10 8:26", (P.strptime_to_spark("%m/%d/%y %H:%M"),), dt.datetime(2010, 12, 1, 8, 26)),
    ("2026-13-03 10:15:00", P.POS_TS, None),
    ("yesterday", P.ISO_UTC, None),
    ("", P.ISO_UTC, None),
]
DATE_CASES = [
    ("03/02/1990", P.POS_DATE, dt.date(1990, 2, 3)),
    ("31/02/1990", P.POS_DATE, None),
    ("1990-02-03", P.ISO_DATE, dt.date(1990, 2, 3)),
    ("1990/02/03", P.ISO_DATE, None),
]
DECIMAL_CASES = [("12.50", Decimal("12.50")), ("12.505", Decimal("12.51")), (" -3 ", Decimal("-3.00")),
                 ("£4.99", Decimal("4.99")), ("12,50", None), ("abc", None), ("", None), (None, None)]
INT_CASES = [("3", 3), (" -2 ", -2), ("3.0", 3), ("3.5", None), ("x", None), ("", None), (None, None)]
BOOL_CASES = [("true", True), ("Y", True), ("yes", True), ("1", True), ("FALSE", False), ("n", False),
              ("0", False), ("maybe", None), ("", None), (None, None)]
STRPTIME_CASES = [("%Y-%m-%d %H:%M:%S", "yyyy-M-d H:mm:ss"), ("%d/%m/%Y", "d/M/yyyy"),
                  ("%Y-%m-%dT%H:%M:%SZ", "yyyy-M-d'T'H:mm:ss'Z'"), ("yyyy-MM-dd", "yyyy-MM-dd")]


def _eval(spark, rows, schema, expr_fn):
    """Evaluate ``expr_fn(df)`` (a list of columns) for every input row, in one query, in input order."""
    df = spark.createDataFrame([(i, *r) for i, r in enumerate(rows)], f"i int, {schema}")
    out = df.select("i", *expr_fn(df)).orderBy("i").collect()
    return [tuple(r)[1:] for r in out]


@pytest.fixture(scope="module")
def results(spark):
    """Every case table evaluated once (one Spark query per rule)."""
    r = {}
    r["email"] = _eval(spark, [(c[0],) for c in EMAIL_CASES], "v string", lambda d: [S.email_value("v")])
    r["country"] = _eval(spark, [(c[0],) for c in COUNTRY_CASES], "v string", lambda d: [S.country_value("v")])
    r["phone"] = _eval(spark, [c[:2] for c in PHONE_CASES], "v string, c string", lambda d: [S.phone_value("v", "c")])
    r["postcode"] = _eval(spark, [(c[0],) for c in POSTCODE_CASES], "v string", lambda d: [S.postcode_value("v")])
    r["name"] = _eval(spark, [(c[0],) for c in NAME_CASES], "v string", lambda d: [S.person_name_value("v")])
    r["full_name"] = _eval(spark, [(c[0],) for c in FULL_NAME_CASES], "v string", lambda d: list(S.split_full_name("v")))
    r["brand"] = _eval(spark, [(c[0],) for c in BRAND_CASES], "v string", lambda d: [S.brand_value("v")])
    r["enum"] = _eval(spark, [(c[0],) for c in ENUM_CASES], "v string",
                      lambda d: [S.enum_value("v", {"canceled": "cancelled"})])
    r["category"] = _eval(spark, [(c[0],) for c in CATEGORY_CASES], "v string",
                          lambda d: [S.category_code_value("v"), *S.category_levels(S.category_code_value("v"))])
    r["timestamp"] = [
        _eval(spark, [(c[0],)], "v string", lambda d, f=c[1]: [P.parse_timestamp(F.col("v"), f)])[0] for c in TIMESTAMP_CASES
    ]
    r["date"] = [_eval(spark, [(c[0],)], "v string", lambda d, f=c[1]: [P.parse_date(F.col("v"), f)])[0] for c in DATE_CASES]
    r["decimal"] = _eval(spark, [(c[0],) for c in DECIMAL_CASES], "v string", lambda d: [P.parse_decimal(F.col("v"))])
    r["int"] = _eval(spark, [(c[0],) for c in INT_CASES], "v string", lambda d: [P.parse_int(F.col("v"))])
    r["bool"] = _eval(spark, [(c[0],) for c in BOOL_CASES], "v string", lambda d: [P.parse_boolean(F.col("v"))])
    return r


def _cases(name, table, n_in=1):
    return [pytest.param(name, i, c[n_in:] if len(c) - n_in > 1 else c[n_in], id=f"{name}-{c[0]!r}") for i, c in enumerate(table)]


@pytest.mark.parametrize(
    "rule, index, expected",
    _cases("email", EMAIL_CASES) + _cases("country", COUNTRY_CASES) + _cases("phone", PHONE_CASES, 2)
    + _cases("postcode", POSTCODE_CASES) + _cases("name", NAME_CASES) + _cases("full_name", FULL_NAME_CASES)
    + _cases("brand", BRAND_CASES) + _cases("enum", ENUM_CASES) + _cases("category", CATEGORY_CASES)
    + _cases("timestamp", TIMESTAMP_CASES, 2) + _cases("date", DATE_CASES, 2) + _cases("decimal", DECIMAL_CASES)
    + _cases("int", INT_CASES) + _cases("bool", BOOL_CASES),
)
def test_rule_case(results, rule, index, expected):
    got = results[rule][index]
    got = got if len(got) > 1 else got[0]
    assert got == expected


@pytest.mark.parametrize("fmt, expected", STRPTIME_CASES)
def test_strptime_to_spark(fmt, expected):
    assert P.strptime_to_spark(fmt) == expected


def test_unsupported_strptime_token_is_a_clear_error():
    from lakehouse.errors import MappingError

    with pytest.raises(MappingError, match="%Q is not supported"):
        P.strptime_to_spark("%Y-%Q")


def test_unparsed_columns_names_only_values_that_failed(spark):
    df = spark.createDataFrame([("x", "1"), ("2", ""), ("3", "y"), (None, None)], "a string, b string")
    pairs = {"a": (F.col("a"), P.parse_int(F.col("a"))), "b": (F.col("b"), P.parse_int(F.col("b")))}
    got = [r[0] for r in df.select(P.unparsed_columns(pairs)).collect()]
    assert got == ["a", None, "b", None]


def test_dataframe_transforms_compose(spark):
    df = spark.createDataFrame(
        [(" A@B.COM ", "07700 900123", "uk", "sw1a1aa", "Smith, Jane", " ACME ", "Electronics > Audio", "2026-01-03 23:15:00")],
        "email string, phone string, country string, postcode string, full_name string, brand string, "
        "category_code string, ts string",
    )
    out = (
        df.transform(S.standardize_emails)
        .transform(S.standardize_countries)
        .transform(S.standardize_phones)
        .transform(S.standardize_postcodes)
        .transform(S.split_person_name)
        .transform(S.standardize_brands)
        .transform(S.split_categories)
        .withColumn("ts", F.to_timestamp("ts"))
        .transform(S.derive_time_parts, column="ts", prefix="event")
    ).collect()[0].asDict()
    assert out["email"] == "a@b.com" and out["country"] == "GB" and out["phone_e164"] == "+447700900123"
    assert out["postcode"] == "SW1A 1AA" and (out["first_name"], out["last_name"]) == ("Jane", "Smith")
    assert out["brand"] == "acme" and out["category_code"] == "electronics.audio"
    assert (out["category_l1"], out["category_l2"], out["category_l3"]) == ("electronics", "audio", "unknown")
    # 2026-01-03 is a Saturday: ISO day of week 6
    assert (out["event_date"], out["event_hour"], out["event_day_of_week"]) == (dt.date(2026, 1, 3), 23, 6)


#: Raw clickstream times: the key's shape (with and without " UTC", padded), values out of range that a lenient
#: parser might still read, other shapes, blanks and garbage.
EVENT_TIMES = [
    "2026-01-03 10:15:00 UTC", "2026-01-03 10:15:00", "  2026-12-31 23:59:59 UTC ", "1900-01-01 00:00:00 UTC",
    "9999-12-31 23:59:59 UTC", "0999-06-01 12:00:00 UTC", "2026-02-30 00:00:00 UTC", "2026-02-29 00:00:00 UTC",
    "2024-02-29 08:00:00 UTC", "2026-13-01 00:00:00 UTC", "2026-01-01 24:00:00 UTC", "2026-01-01 23:59:60 UTC",
    "2026-01-01T10:15:00Z", "2026-01-03 10:15:00.123 UTC", "2026-1-3 1:2:3 UTC", "2026-01-03 10:15:00 CET", "",
    "   ", None, "garbage", "2026-01-03 10:15:00 UTC\n2026",
]


@pytest.mark.parametrize("formats", [None, {"event_time": "%d/%m/%Y %H:%M"}], ids=["built-in", "mapped"])
def test_event_id_hashes_the_formatted_event_time_whatever_the_raw_text(spark, formats):
    from transforms.silver.entities import events_from_clickstream

    times = EVENT_TIMES + ["03/01/2026 10:15", "3/1/2026 9:05"]
    rows = [(t, "view", "SKU-1", "u1", "s1", "f.jsonl", i + 1) for i, t in enumerate(times)]
    bronze = spark.createDataFrame(rows, "event_time string, event_type string, product_id string, user_id string, "
                                         "user_session string, _source_file string, _line_number long")
    out = events_from_clickstream(bronze.withColumn("_ingested_at", F.current_timestamp())
                                  .withColumn("ingest_date", F.current_date()), source_system="web", formats=formats)
    assert "_event_time_raw" not in out.columns
    # the seed's definition: SHA-256 of the formatted time and the ids, '|'-joined (a null time drops out)
    expected = F.sha2(F.concat_ws(
        "|", F.date_format("event_time", "yyyy-MM-dd HH:mm:ss"), F.coalesce("user_id", F.lit("")),
        F.coalesce("product_id", F.lit("")), F.coalesce("user_session", F.lit("")), F.coalesce("event_type", F.lit(""))),
        256)
    got = out.select("_line_number", "event_time", "event_id", expected.alias("expected")).orderBy("_line_number")
    result = got.collect()
    assert len(result) == len(times)
    assert [(times[r["_line_number"] - 1], r["event_time"]) for r in result if r["event_id"] != r["expected"]] == []
    parsed = sum(r["event_time"] is not None for r in result)
    assert parsed >= (2 if formats else 6)  # the cases above really reach both paths
