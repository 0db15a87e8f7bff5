"""Pure-Python normalizers for emails, phones, postcodes, countries and names (no Spark).

They mirror the silver layer's column expressions so that a value typed into the API ("07700 900123",
"sw1a1aa", " Jane@Example.COM ") is compared with gold in the same canonical form the pipeline stored.
``tests/test_api_normalize.py`` checks that both agree on a table of cases.
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_COUNTRY = "GB"

# The tables below are copies of transforms/silver/standardize.py's (lakehouse may not import transforms, and those
# are Spark column expressions); tests/test_api_normalize.py fails when they drift apart.
COUNTRY_ALIASES: dict[str, str] = {
    "UK": "GB", "UNITED KINGDOM": "GB", "GREAT BRITAIN": "GB", "BRITAIN": "GB", "ENGLAND": "GB",
    "SCOTLAND": "GB", "WALES": "GB", "NORTHERN IRELAND": "GB", "GBR": "GB",
    "IRELAND": "IE", "EIRE": "IE", "REPUBLIC OF IRELAND": "IE", "IRL": "IE",
    "FRANCE": "FR", "FRA": "FR", "GERMANY": "DE", "DEUTSCHLAND": "DE", "DEU": "DE",
    "SPAIN": "ES", "ESP": "ES", "PORTUGAL": "PT", "ITALY": "IT", "NETHERLANDS": "NL", "THE NETHERLANDS": "NL",
    "HOLLAND": "NL", "BELGIUM": "BE", "LUXEMBOURG": "LU", "SWITZERLAND": "CH", "AUSTRIA": "AT", "DENMARK": "DK",
    "NORWAY": "NO", "SWEDEN": "SE", "FINLAND": "FI", "ICELAND": "IS", "POLAND": "PL", "CZECH REPUBLIC": "CZ",
    "CZECHIA": "CZ", "GREECE": "GR", "CYPRUS": "CY", "MALTA": "MT", "LITHUANIA": "LT", "LATVIA": "LV",
    "ESTONIA": "EE", "CHANNEL ISLANDS": "JE", "JERSEY": "JE", "GUERNSEY": "GG", "ISRAEL": "IL", "BAHRAIN": "BH",
    "SAUDI ARABIA": "SA", "UNITED ARAB EMIRATES": "AE", "LEBANON": "LB", "JAPAN": "JP", "SINGAPORE": "SG",
    "HONG KONG": "HK", "AUSTRALIA": "AU", "CANADA": "CA", "USA": "US", "UNITED STATES": "US",
    "UNITED STATES OF AMERICA": "US", "BRAZIL": "BR", "BRASIL": "BR", "RSA": "ZA", "SOUTH AFRICA": "ZA",
}
CALLING_CODES: dict[str, str] = {
    "GB": "44", "IE": "353", "FR": "33", "DE": "49", "ES": "34", "PT": "351", "IT": "39", "NL": "31", "BE": "32",
    "LU": "352", "CH": "41", "AT": "43", "DK": "45", "NO": "47", "SE": "46", "FI": "358", "PL": "48", "US": "1",
    "CA": "1", "AU": "61", "BR": "55", "JE": "44", "GG": "44",
}
TRUNK_ZERO_COUNTRIES = ("GB", "IE", "FR", "DE", "IT", "NL", "BR", "BE", "CH", "AT", "PT", "FI", "AU", "JE", "GG")

_UK_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
_IE_EIRCODE = re.compile(r"^([AC-FHKNPRTV-Y][0-9]{2}|D6W)([0-9AC-FHKNPRTV-Y]{4})$")
_E164_DIGITS = re.compile(r"^[1-9][0-9]{6,14}$")
_CODES = sorted(set(CALLING_CODES.values()), key=lambda c: (-len(c), c))
_TRUNK_AFTER_CODE = re.compile(rf"^({'|'.join(_CODES)})0([0-9]{{9,}})$")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def _clean_text(value: str) -> str | None:
    """Trimmed, inner whitespace collapsed to one space; None when empty (silver's ``clean_text``)."""
    text = re.sub(r"\s+", " ", value).strip()
    return text or None


def normalize_email(value: str | None) -> str | None:
    """Email with every space removed, lower-cased; None when empty (silver's ``email_value``)."""
    if value is None:
        return None
    email = re.sub(r"\s+", "", value).lower()
    return email or None


def normalize_country(value: str | None) -> str | None:
    """ISO-3166 alpha-2 from a code or name ("uk", "United Kingdom" -> "GB"); other text upper-cased."""
    if value is None:
        return None
    key = _clean_text(value.replace(".", ""))
    if key is None:
        return None
    key = key.upper()
    return COUNTRY_ALIASES.get(key, key)


def normalize_phone(value: str | None, country: str | None = DEFAULT_COUNTRY) -> str | None:
    """E.164 ("+447700900123") from "+44 7700 900123", "07700 900123", "(0)7700-900-123", "447700900123" or
    "0044 7700 900123"; ``country`` (alpha-2, default GB) gives the calling code of national numbers.

    None when no digits remain, the country's code is unknown, or the result is not 7-15 digits (silver's
    ``phone_value``).
    """
    if value is None:
        return None
    raw = value.strip()
    if not raw:
        return None
    plus = raw.startswith("+")
    digits = re.sub(r"[^0-9]", "", raw.replace("(0)", ""))
    if not digits:
        return None
    ctry = country or DEFAULT_COUNTRY
    cc = CALLING_CODES.get(ctry)
    if plus:
        full = digits
    elif digits.startswith("00"):
        full = digits[2:]
    elif cc is None:
        return None
    elif digits.startswith(cc) and len(digits) >= len(cc) + 9 and not digits.startswith("0"):
        full = digits  # country code written without "+", e.g. "447700900123"
    elif digits.startswith("0") and ctry in TRUNK_ZERO_COUNTRIES:
        full = cc + digits[1:]
    else:
        full = cc + digits
    # A trunk zero written after the country code ("+44 07700 900123") is dropped too (9+ digits must remain).
    full = _TRUNK_AFTER_CODE.sub(r"\1\2", full)
    return "+" + full if _E164_DIGITS.match(full) else None


def normalize_postcode(value: str | None) -> str | None:
    """Upper-case postcode, single spaces; UK postcodes and Irish Eircodes get the space before the inward part
    ("sw1a1aa" -> "SW1A 1AA", "d02x285" -> "D02 X285") (silver's ``postcode_value``)."""
    if value is None:
        return None
    text = _clean_text(value)
    if text is None:
        return None
    text = text.upper()
    compact = re.sub(r"\s", "", text)
    if _UK_POSTCODE.match(compact):
        return f"{compact[:-3]} {compact[-3:]}"
    if _IE_EIRCODE.match(compact):
        return f"{compact[:3]} {compact[3:7]}"
    return text


def strip_accents(value: str) -> str:
    """Remove diacritics ("Zoë" -> "Zoe")."""
    return "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))


def name_tokens(*values: str | None) -> list[str]:
    """Distinct lower-case, accent-free word tokens of 2+ characters ("O'Brien, Seán" -> ["brien", "sean"])."""
    seen: dict[str, None] = {}
    for value in values:
        if not value:
            continue
        for token in _NON_WORD.split(strip_accents(value).lower()):
            if len(token) >= 2:
                seen.setdefault(token, None)
    return list(seen)
