"""Pure-Python normalizers for emails, phones, postcodes, countries and names (no Spark).

They mirror the silver layer's column expressions so that a value typed into the API ("07700 900123",
"sw1a1aa", " Jane@Example.COM ") is compared with gold in the same canonical form the pipeline stored.
``tests/test_api_normalize.py`` checks that both agree on a table of cases.
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_COUNTRY = "GB"

# Country names and codes seen in the sources -> ISO-3166 alpha-2.
COUNTRY_ALIASES: dict[str, str] = {
    "GB": "GB", "UK": "GB", "UNITED KINGDOM": "GB", "GREAT BRITAIN": "GB", "ENGLAND": "GB", "SCOTLAND": "GB",
    "WALES": "GB", "NORTHERN IRELAND": "GB",
    "IE": "IE", "IRELAND": "IE", "EIRE": "IE", "REPUBLIC OF IRELAND": "IE",
    "FR": "FR", "FRANCE": "FR",
    "DE": "DE", "GERMANY": "DE", "DEUTSCHLAND": "DE",
    "ES": "ES", "SPAIN": "ES", "IT": "IT", "ITALY": "IT", "NL": "NL", "NETHERLANDS": "NL",
    "US": "US", "USA": "US", "UNITED STATES": "US", "BR": "BR", "BRAZIL": "BR",
}

# Calling codes and whether the national format starts with a trunk "0" that E.164 drops.
CALLING_CODES: dict[str, str] = {
    "GB": "44", "IE": "353", "FR": "33", "DE": "49", "ES": "34", "IT": "39", "NL": "31", "US": "1", "BR": "55",
}
_TRUNK_ZERO = {"GB", "IE", "FR", "DE", "IT", "NL", "BR"}

_UK_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
_IE_EIRCODE = re.compile(r"^([AC-FHKNPRTV-Y][0-9]{2}|D6W)([0-9AC-FHKNPRTV-Y]{4})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize_email(value: str | None) -> str | None:
    """Trimmed, lower-cased email; None when empty or not shaped like ``local@domain.tld``."""
    if value is None:
        return None
    email = value.strip().lower()
    if not email or not _EMAIL.match(email):
        return None
    return email


def normalize_country(value: str | None, default: str | None = None) -> str | None:
    """ISO-3166 alpha-2 code for a code or name ("uk", "United Kingdom" -> "GB"); ``default`` when unknown."""
    if value is None:
        return default
    key = re.sub(r"\s+", " ", value.strip().upper().replace(".", ""))
    if not key:
        return default
    if key in COUNTRY_ALIASES:
        return COUNTRY_ALIASES[key]
    if len(key) == 2 and key.isalpha():
        return key
    return default


def normalize_phone(value: str | None, country: str | None = DEFAULT_COUNTRY) -> str | None:
    """E.164 form ("+447700900123") of a phone in any common format; national numbers use ``country``.

    Handles "+44 7700 900123", "07700 900123", "(0)7700-900-123", "447700900123" and "0044 7700 900123".
    Returns None when fewer than 7 digits remain or the number cannot be placed in a country.
    """
    if value is None:
        return None
    raw = value.strip()
    if not raw:
        return None
    country = normalize_country(country, DEFAULT_COUNTRY) or DEFAULT_COUNTRY
    plus = raw.startswith("+")
    # "(0)" is an optional trunk prefix written after a country code or alone: drop it.
    raw = raw.replace("(0)", "")
    digits = re.sub(r"\D", "", raw)
    if not digits:
        return None
    if plus:
        full = digits
    elif digits.startswith("00"):
        full = digits[2:]
    else:
        code = CALLING_CODES.get(country)
        if code is None:
            return None
        if digits.startswith(code) and len(digits) >= len(code) + 9 and not digits.startswith("0"):
            full = digits  # country code written without "+", e.g. "447700900123"
        elif digits.startswith("0") and country in _TRUNK_ZERO:
            full = code + digits[1:]
        else:
            full = code + digits
    # A trunk zero kept after the country code ("+44 07700 ...") is dropped too.
    for code in sorted(set(CALLING_CODES.values()), key=len, reverse=True):
        if full.startswith(code + "0") and len(full) > len(code) + 9:
            full = code + full[len(code) + 1:]
            break
    if len(full) < 7 or len(full) > 15:
        return None
    return "+" + full


def normalize_postcode(value: str | None) -> str | None:
    """Upper-case postcode with one space: UK and Irish codes get the space before the inward part ("SW1A 1AA")."""
    if value is None:
        return None
    compact = re.sub(r"\s+", "", value.strip().upper())
    if not compact:
        return None
    for pattern in (_UK_POSTCODE, _IE_EIRCODE):
        m = pattern.match(compact)
        if m:
            return f"{m.group(1)} {m.group(2)}"
    return re.sub(r"\s+", " ", value.strip().upper())


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
