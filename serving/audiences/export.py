"""Customer-list files for ad platforms: Meta Customer List and Google Customer Match, identifiers hashed by each
platform's rules, members without ads consent left out."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import numpy as np
import pandas as pd

from leadscope.schema import CONTACT_COLUMNS
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
    """(CSV text, counts). Members without ads consent are left out; so are members with no usable identifier."""
    people = audience.merge(customers, on="customer_id", how="left")
    consent = people["consent_ads"] if "consent_ads" in people else pd.Series(True, index=people.index)
    allowed = people[consent.fillna(False).astype(bool).to_numpy()]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(META_COLUMNS if fmt == "meta" else GOOGLE_COLUMNS)
    written = 0
    for r in export_rows(fmt, allowed, allowed["similarity"]):
        if any(r[:4]):  # at least one of email, phone, first/last name
            writer.writerow(r)
            written += 1
    return buf.getvalue(), {
        "members": len(audience),
        "without_ads_consent": len(people) - len(allowed),
        "without_identifier": len(allowed) - written,
        "rows": written,
    }
