"""Customer-list files for ad platforms: Meta Customer List and Google Customer Match, identifiers hashed by each
platform's rules, members without ads consent left out."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.contract import parse_boolean
from leadscope.schema import CONTACT_COLUMNS
from leadscope.tables import safe_cell
from serving.signals import hashing

FORMATS = ("meta", "google")

META_COLUMNS = ("email", "phone", "fn", "ln", "ct", "st", "zip", "country", "extern_id", "value")
GOOGLE_COLUMNS = ("Email", "Phone", "First Name", "Last Name", "Country", "Zip")
# hashing.meta_user / google_user keys in the files' column order
META_KEYS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "external_id")
GOOGLE_KEYS = ("em", "ph", "fn", "ln")


def contacts_of(customers: pd.DataFrame) -> pd.DataFrame:
    """The customers table's identifiers, country and ads consent: all an export reads."""
    return customers[[c for c in [*CONTACT_COLUMNS, "country", "consent_ads"] if c in customers]]


def _clear(v: object) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()


def export_rows(fmt: str, people: pd.DataFrame, similarity: pd.Series) -> Iterable[list[str]]:
    """Rows of the platform's customer-list file; every identifier normalised and hashed by its rules (a value
    the rules cannot read is left empty for that row, never sent raw).

    Meta (Customer List, value-based): email, phone (E.164 digits, no '+'), fn, ln, ct, st, zip, country,
    extern_id hashed; `value` is the lookalike similarity. Google (Customer Match CSV): Email, Phone (E.164 with
    '+'), First Name, Last Name hashed; Country and Zip in clear, as Google's template wants them."""
    for row, sim in zip(people.to_dict("records"), similarity, strict=True):
        if fmt == "meta":
            ids = hashing.meta_user(row, strict=False)
            yield [ids[k] or "" for k in META_KEYS] + [f"{float(sim):.6f}"]
        else:
            ids = hashing.google_user(row, strict=False)
            yield [ids[k] or "" for k in GOOGLE_KEYS] + [_clear(row.get("country")).upper(), _clear(row.get("zip"))]


def export_csv(fmt: str, customers: pd.DataFrame, audience: pd.DataFrame) -> tuple[str, dict]:
    """(CSV text, counts). Consent is default-deny: only members whose consent_ads parses as true are written;
    those with consent false, and those whose consent is missing or unreadable, are left out and counted. So are
    members with no usable identifier. Every cell is safe to open in a spreadsheet."""
    people = audience.merge(customers, on="customer_id", how="left")
    consent = parse_boolean(people["consent_ads"]).values if "consent_ads" in people else None
    allowed = people[consent.fillna(False).to_numpy(bool)] if consent is not None else people.iloc[:0]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180: a cell with a carriage return is quoted
    writer.writerow(META_COLUMNS if fmt == "meta" else GOOGLE_COLUMNS)
    written = 0
    for r in export_rows(fmt, allowed, allowed["similarity"]):
        if any(r[:4]):  # at least one of email, phone, first/last name
            writer.writerow([safe_cell(v) for v in r])
            written += 1
    denied = int((consent == False).sum()) if consent is not None else 0  # noqa: E712 - NA stays out of both
    return buf.getvalue(), {
        "members": len(audience),
        "without_ads_consent": denied,
        "consent_unknown": len(people) - len(allowed) - denied,
        "without_identifier": len(allowed) - written,
        "rows": written,
    }
