"""Masking of raw rows (quarantined records) for keys without the ``pii`` scope.

Golden records are masked by :func:`api.views.customer_public` (the API's rules). Quarantined rows are raw source
records, possibly malformed, so they are masked more broadly: every field whose name says email, phone, address,
postcode or birth date, and, in every other field and in the gate's ``reasons`` text, anything that looks like an
email address or a phone number. An unparseable raw line is hidden whole.
"""

from __future__ import annotations

import re
from typing import Any

from api.views import MASK, mask_email, mask_phone, mask_postcode

PII_KEY = re.compile(r"e_?mail|phone|mobile|telephone|address|post_?code|zip|birth|dob", re.IGNORECASE)
EMAIL = re.compile(r"[^\s\"'<>(),;:=@\[\]{}]+@[^\s\"'<>(),;:=@\[\]{}]+")
PHONE = re.compile(r"(?<![\w.\-/])(?:\+|00)?\(?\d[\d ().\-/]{7,}\d(?![\w])")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}/\d{2}/\d{4}")
RAW_HIDDEN = "[raw line hidden: it may hold personal data; a key with the pii scope shows it]"


def _mask_phone_match(m: re.Match) -> str:
    text = m.group(0)
    digits = re.sub(r"\D", "", text)
    if not 9 <= len(digits) <= 15 or DATE.search(text):
        return text
    return mask_phone(("+" if text.startswith("+") else "") + digits) or MASK


def scrub_text(text: str) -> str:
    """``text`` with every email-like and phone-like substring masked."""
    text = EMAIL.sub(lambda m: mask_email(m.group(0)) or MASK, text)
    return PHONE.sub(_mask_phone_match, text)


def mask_field(key: str, value: Any) -> Any:
    """One field of a raw row, masked by its name (PII fields) or by its content (everything else)."""
    if value is None or value == "":
        return value
    if PII_KEY.search(key):
        lowered = key.lower()
        text = str(value)
        if "mail" in lowered:
            return mask_email(text) if "@" in text else MASK
        if "phone" in lowered or "mobile" in lowered:
            return mask_phone(re.sub(r"[^\d+]", "", text)) or MASK
        if "post" in lowered or "zip" in lowered:
            return mask_postcode(text.strip().upper())
        return MASK
    if isinstance(value, str):
        return scrub_text(value)
    return value


def mask_row(row: dict[str, Any], *, pii: bool) -> dict[str, Any]:
    """A raw row (a quarantined record's JSON) as a key without ``pii`` may see it; unchanged with ``pii``."""
    if pii:
        return dict(row)
    out = {}
    for key, value in row.items():
        if key == "_raw_line" and value:
            out[key] = RAW_HIDDEN
        else:
            out[key] = mask_field(key, value)
    return out


_REASON_VALUE = re.compile(r"(\b[A-Za-z_][\w]*)=(\"(?:[^\"\\]|\\.)*\"|[^,;)]*)")


def mask_reasons(text: str | None, *, pii: bool) -> str | None:
    """The gate's reasons text (``rule: description (column=value)``) with PII values masked unless ``pii``."""
    if pii or not text:
        return text

    def one(m: re.Match) -> str:
        key, value = m.group(1), m.group(2)
        if PII_KEY.search(key) and value not in ("null", ""):
            return f"{key}={MASK}"
        return f"{key}={scrub_text(value)}"

    return scrub_text(_REASON_VALUE.sub(one, text))
