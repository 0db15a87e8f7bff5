"""The API's pure-Python normalizers (lakehouse.normalize) agree with silver's Spark column expressions."""

from __future__ import annotations

import pytest

from lakehouse import normalize

PHONES = [
    ("+44 7700 900123", "GB"), ("07700 900123", "GB"), ("(0)7700-900-123", "GB"), ("447700900123", "GB"),
    ("0044 7700 900123", "GB"), ("+44 (0)7700 900123", "GB"), ("+44 07700 900123", "GB"), ("+353 87 123 4567", "IE"),
    ("087 123 4567", "IE"), ("087 123 4567", "GB"), ("01 23 45 67 89", "FR"), ("030 1234567", "DE"),
    ("202-555-0147", "US"), ("12345", "GB"), ("abc", "GB"), ("", "GB"), ("   ", "GB"), ("07700 900123", "XX"),
    ("+1 202 555 0147", None), ("07700 900123", None), ("\t+44 7700 900123", "GB"), ("+999 1234 5678 9012 345", "GB"),
    ("0 7700 900123", "GB"), ("44 07700 900123", "GB"),
]
EMAILS = [" Jane@Example.COM ", "jane @example.com", "JANE.DOE+tag@Mail.co.uk", "", "   ", "not-an-email", "\tA@B.C\n"]
POSTCODES = ["sw1a1aa", " SW1A  1AA ", "ec1a 1bb", "m1 1ae", "d02x285", "D6W 1234", "75001", "10115", " ", "",
             "bs1\t5tr", "w1a0ax", "ab12"]
COUNTRIES = ["GB", "uk", "United Kingdom", "u.k.", " great  britain ", "IE", "Ireland", "fr", "Deutschland", "", "  ",
             "Narnia", "usa"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+44 7700 900123", "GB", "+447700900123"),
        ("07700 900123", "GB", "+447700900123"),
        ("(0)7700-900-123", "GB", "+447700900123"),
        ("447700900123", "GB", "+447700900123"),
        ("0044 7700 900123", "GB", "+447700900123"),
        ("087 123 4567", "IE", "+353871234567"),
        ("07700 900123", "XX", None),
        ("123", "GB", None),
        ("", "GB", None),
    ],
)
def test_normalize_phone_cases(raw, country, expected):
    assert normalize.normalize_phone(raw, country) == expected


@pytest.mark.unit
def test_normalize_simple_cases():
    assert normalize.normalize_email(" Jane@Example.COM ") == "jane@example.com"
    assert normalize.normalize_email("   ") is None
    assert normalize.normalize_postcode("sw1a1aa") == "SW1A 1AA"
    assert normalize.normalize_postcode("d02x285") == "D02 X285"
    assert normalize.normalize_postcode(" 75001 ") == "75001"
    assert normalize.normalize_country("United Kingdom") == "GB"
    assert normalize.name_tokens("O'Brien, Seán", "Jean-Luc") == ["brien", "sean", "jean", "luc"]


@pytest.mark.unit
def test_python_normalizers_agree_with_silver(spark):
    """Every case gives the same value through silver's column expressions (on Sail) and lakehouse.normalize."""
    standardize = pytest.importorskip("transforms.silver.standardize")
    rows = [(raw, ctry, None, None, None) for raw, ctry in PHONES]
    rows += [(None, None, e, None, None) for e in EMAILS]
    rows += [(None, None, None, p, None) for p in POSTCODES]
    rows += [(None, None, None, None, c) for c in COUNTRIES]
    df = spark.createDataFrame(rows, "phone string, ctry string, email string, postcode string, country string")
    out = df.select(
        "phone", "ctry", "email", "postcode", "country",
        standardize.phone_value("phone", "ctry").alias("phone_s"),
        standardize.email_value("email").alias("email_s"),
        standardize.postcode_value("postcode").alias("postcode_s"),
        standardize.country_value("country").alias("country_s"),
    ).collect()
    mismatches = []
    for r in out:
        if r["phone"] is not None and normalize.normalize_phone(r["phone"], r["ctry"]) != r["phone_s"]:
            mismatches.append(("phone", r["phone"], r["ctry"], r["phone_s"], normalize.normalize_phone(r["phone"], r["ctry"])))
        if r["email"] is not None and normalize.normalize_email(r["email"]) != r["email_s"]:
            mismatches.append(("email", r["email"], r["email_s"], normalize.normalize_email(r["email"])))
        if r["postcode"] is not None and normalize.normalize_postcode(r["postcode"]) != r["postcode_s"]:
            mismatches.append(("postcode", r["postcode"], r["postcode_s"], normalize.normalize_postcode(r["postcode"])))
        if r["country"] is not None and normalize.normalize_country(r["country"]) != r["country_s"]:
            mismatches.append(("country", r["country"], r["country_s"], normalize.normalize_country(r["country"])))
    assert not mismatches, mismatches


@pytest.mark.unit
def test_lookup_tables_match_silver():
    """The copied country and calling-code tables are silver's."""
    standardize = pytest.importorskip("transforms.silver.standardize")
    assert normalize.COUNTRY_ALIASES == standardize.COUNTRY_ALIASES
    assert normalize.CALLING_CODES == standardize.CALLING_CODES
    assert tuple(normalize.TRUNK_ZERO_COUNTRIES) == tuple(standardize.TRUNK_ZERO_COUNTRIES)
