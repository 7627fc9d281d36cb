"""Identifier normalisation and SHA-256 hashing, per ad platform.

Written here rather than calling the platforms' SDKs: those SDKs pull in their whole API clients (and Google's
needs gRPC/KMS), and we hash at ingest time so raw personal data is never stored. The rules are the SDKs'
own, and tests/serving/test_signals_hashing.py checks every function against them (facebook-business
`Normalize.normalize_field`, google-ads-datamanager-util `Formatter`) on a table of tricky inputs.

Phones go through libphonenumber first (E.164, with the record's country as the default region), so a national
number like "(650) 555-1234" from a US record gets its country code: Google wants E.164 with '+', Meta the same
digits without it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import phonenumbers

_HASHED = re.compile(r"^([a-f0-9]{32}|[a-f0-9]{64})$")  # already an MD5/SHA-256 hex digest: sent as is (Meta)
_META_LOCATION = re.compile(r"[0-9.\s\-()]")  # Meta: city/state lose digits, spaces, periods, '-', '(' and ')'
_META_EMAIL = re.compile(r".+@.+\..+")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def e164(phone: str | None, country: str | None = None) -> str | None:
    """+<country code><number>, or None when libphonenumber cannot read it as a possible number."""
    if not phone or not phone.strip():
        return None
    region = (country or "").strip().upper() or None
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# --- Meta (Conversions API user_data) --------------------------------------------------------------------------


def meta_email(email: str | None) -> str | None:
    """Trimmed, lower-cased, hashed (Meta keeps Gmail dots and +tags)."""
    v = (email or "").strip().lower()
    if not v:
        return None
    if _HASHED.match(v):
        return v
    if not _META_EMAIL.match(v):
        raise ValueError("email: not an e-mail address")
    return sha256(v)


def meta_phone(phone: str | None, country: str | None = None) -> str | None:
    """E.164 digits without '+' (country code first), hashed."""
    v = (phone or "").strip().lower()
    if not v:
        return None
    if _HASHED.match(v):
        return v
    number = e164(phone, country)
    if number is None:
        raise ValueError("phone: not a phone number")
    return sha256(number.lstrip("+"))


def meta_name(name: str | None) -> str | None:
    """fn / ln: trimmed and lower-cased (accents kept, UTF-8), hashed."""
    v = (name or "").strip().lower()
    return None if not v else (v if _HASHED.match(v) else sha256(v))


def meta_location(value: str | None) -> str | None:
    """ct / st: lower-cased without digits, spaces, periods, dashes or parentheses, hashed."""
    v = (value or "").strip().lower()
    if not v:
        return None
    return v if _HASHED.match(v) else sha256(_META_LOCATION.sub("", v))


def meta_zip(value: str | None) -> str | None:
    """zp: lower-cased, no whitespace, the part before a '-' (US ZIP+4 → ZIP), hashed."""
    v = (value or "").strip().lower()
    if not v:
        return None
    return v if _HASHED.match(v) else sha256(re.sub(r"\s", "", v).split("-")[0])


def meta_country(value: str | None) -> str | None:
    v = re.sub(r"[^a-z]", "", (value or "").strip().lower())
    if not v:
        return None
    if v.upper() not in phonenumbers.SUPPORTED_REGIONS:  # libphonenumber's regions are the ISO 3166-1 codes
        raise ValueError("country: not an ISO 3166-1 alpha-2 code")
    return sha256(v)


def meta_external_id(value: str | None) -> str | None:
    v = (value or "").strip().lower()
    return None if not v else (v if _HASHED.match(v) else sha256(v))


# --- Google (Ads API enhanced conversions for leads / Data Manager) ---------------------------------------------


def google_email(email: str | None) -> str | None:
    """Trimmed, lower-cased; for gmail.com / googlemail.com the +tag and the dots of the local part removed."""
    if email is None or not email.strip():
        return None
    v = email.strip()
    if re.search(r"\s", v):
        raise ValueError("email: contains whitespace")
    v = v.lower()
    parts = v.split("@")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError("email: not of the form user@domain")
    user, domain = parts
    if domain in ("gmail.com", "googlemail.com"):
        user = user.split("+")[0].replace(".", "")
        if not user:
            raise ValueError("email: empty before the domain")
    return sha256(f"{user}@{domain}")


def google_phone(phone: str | None, country: str | None = None) -> str | None:
    """E.164 with the leading '+', hashed."""
    if phone is None or not phone.strip():
        return None
    number = e164(phone, country)
    if number is None:
        raise ValueError("phone: not a phone number")
    return sha256(number)


def google_name(name: str | None) -> str | None:
    v = (name or "").strip().lower()
    return sha256(v) if v else None


# --- one record's identifiers, per platform (conversion payloads and audience exports share these) -------------


def _each(rules: dict[str, tuple], row: Mapping[str, object], strict: bool) -> dict[str, str | None]:
    """Apply each rule to the row's columns. strict: an unreadable value raises (the API refuses the event,
    naming the field); lenient: it is left empty for that record (an export row), never sent raw."""
    out: dict[str, str | None] = {}
    for key, (fn, *columns) in rules.items():
        args = [_text(row.get(c)) for c in columns]
        try:
            out[key] = fn(*args)
        except ValueError:
            if strict:
                raise
            out[key] = None
    return out


def _text(v: object) -> str | None:
    return None if v is None or (isinstance(v, float) and v != v) else str(v)  # NaN: a missing cell


_META = {
    "em": (meta_email, "email"),
    "ph": (meta_phone, "phone", "country"),
    "fn": (meta_name, "first_name"),
    "ln": (meta_name, "last_name"),
    "ct": (meta_location, "city"),
    "st": (meta_location, "state"),
    "zp": (meta_zip, "zip"),
    "country": (meta_country, "country"),
    "external_id": (meta_external_id, "customer_id"),
}
_GOOGLE = {
    "em": (google_email, "email"),
    "ph": (google_phone, "phone", "country"),
    "fn": (google_name, "first_name"),
    "ln": (google_name, "last_name"),
}


def meta_user(row: Mapping[str, object], *, strict: bool = True) -> dict[str, str | None]:
    """Meta's user_data keys (em, ph, fn, ln, ct, st, zp, country, external_id), each normalised and hashed."""
    return _each(_META, row, strict)


def google_user(row: Mapping[str, object], *, strict: bool = True) -> dict[str, str | None]:
    """Google's hashed identifiers (em, ph, fn, ln)."""
    return _each(_GOOGLE, row, strict)
