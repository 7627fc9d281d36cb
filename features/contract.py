"""The data contract of the canonical tables (docs/DATA.md): each column's kind, and the parsers that turn what a
company exports (CSV text from spreadsheets and CRMs, parquet from pandas) into the stored types.

The same parsers serve CSV and parquet, so a table means the same whichever way it arrived. Every parser returns
the parsed column and a mask of values it could not read: those rows are rejected naming the column, never
silently turned into something else. pandas does the parsing (to_datetime, to_numeric); pandera then checks the
parsed frame's rules (features/ingest.py).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from leadscope.schema import FALSE, TRUE

KINDS = ("id", "text", "category", "number", "flag", "boolean", "timestamp")
Kind = Literal["id", "text", "category", "number", "flag", "boolean", "timestamp"]
# Timestamps that are not ISO 8601, tried in this order for a whole column; the first that reads every such value
# wins, so one column never mixes day-first and month-first readings. Excel's serial day numbers are read too.
DATE_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")
EXCEL_EPOCH = pd.Timestamp("1899-12-30", tz="UTC")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

# Declared kinds of the columns DATA.md names; a column not listed here is a custom attribute whose kind is
# inferred once over the whole column (or pinned with --schema).
COLUMNS: dict[str, dict[str, str]] = {
    "customers": {
        "customer_id": "id",
        "created_at": "timestamp",
        **dict.fromkeys(("email", "phone", "first_name", "last_name", "city", "state", "zip"), "text"),
        **dict.fromkeys(("wechat_id", "device_id", "gclid", "gbraid", "wbraid", "fbc", "fbp", "bd_vid"), "text"),
        **dict.fromkeys(("meta_lead_id", "ttclid"), "text"),
        **dict.fromkeys(("country", "source_channel", "role"), "category"),
        **dict.fromkeys(("consent_email", "consent_sms", "consent_ads"), "boolean"),
    },
    "transactions": {
        "transaction_id": "id",
        "customer_id": "id",
        "ts": "timestamp",
        "amount": "number",
        "currency": "category",
        "category": "category",
        "quantity": "number",
        "is_refund": "boolean",
        "channel": "category",
    },
    "events": {
        "event_id": "id",
        "customer_id": "id",
        "ts": "timestamp",
        "channel": "category",
        "event_type": "category",
        "page": "text",
        "campaign_id": "text",
        "value": "number",
    },
    "edges": {
        "src_customer_id": "id",
        "dst_customer_id": "id",
        "ts": "timestamp",
        "kind": "category",
        "weight": "number",
    },
    "stages": {
        "event_id": "id",
        "customer_id": "id",
        "ts": "timestamp",
        "stage": "category",
        "value": "number",
        "currency": "category",
        "crm_name": "text",
    },
    "campaigns": {
        "customer_id": "id",
        "ts": "timestamp",
        "action_id": "id",
        "treated": "flag",
        "outcome": "flag",
        "value": "number",
        "cost": "number",
        "randomized": "boolean",
    },
    "labels": {"customer_id": "id", "as_of": "timestamp", "label": "flag", "model": "text"},
    # `train value --labels F`: the spend each customer made over the horizon after as_of (not a stored table)
    "value_labels": {"customer_id": "id", "as_of": "timestamp", "label": "number"},
}


@dataclass(frozen=True)
class Parsed:
    values: pd.Series  # the column in its stored type
    bad: pd.Series  # True where a value was given but cannot be read as the column's kind
    reason: str  # why those values were refused


ARROW_TEXT = pd.StringDtype("pyarrow")
_TRUE, _FALSE = pa.array(sorted(TRUE), pa.large_string()), pa.array(sorted(FALSE), pa.large_string())


def _arrow(s: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow data behind an Arrow-backed text column, without a copy; None for any other column. The parsers
    below run Arrow kernels on it directly: through pandas' wrappers each step cost a conversion of 10 M values."""
    return s.array.__arrow_array__() if s.dtype == ARROW_TEXT else None


def _mask(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow boolean column as a numpy mask, missing as False."""
    return pc.fill_null(values, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _trimmed(arr: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """(stripped values, mask of values given: present and not blank)."""
    t = pc.utf8_trim_whitespace(arr)
    return t, _mask(pc.greater(pc.binary_length(t), 0))


def _text(s: pd.Series) -> pd.Series:
    """The column as stripped Arrow-backed text with missing values as NA (numbers and flags from parquet
    included): the string operations below then run as Arrow kernels, not per Python object."""
    arr = _arrow(s)
    if arr is not None:
        t, given = _trimmed(arr)
        if not given.all():
            t = pc.if_else(pa.array(given), t, pa.scalar(None, t.type))
        return pd.Series(pd.arrays.ArrowStringArray(t), index=s.index)
    try:
        out = s.astype(ARROW_TEXT).str.strip()
    except UnicodeEncodeError:  # bytes that were not UTF-8 (kept as surrogates): Python strings can hold them
        out = s.astype("string").str.strip()
    return out.mask(out == "")


def _no(index: pd.Index) -> pd.Series:
    return pd.Series(np.zeros(len(index), bool), index=index)


def parse_boolean(s: pd.Series) -> Parsed:
    """true/false, 1/0, yes/no, y/n, t/f, on/off (any case: leadscope/schema.py TRUE, FALSE) → pandas boolean;
    missing stays missing (consent: means no)."""
    reason = "not a yes/no value (true/false, 1/0, yes/no, y/n, t/f, on/off)"
    if pd.api.types.is_bool_dtype(s):
        return Parsed(s.astype("boolean"), _no(s.index), "")
    t = _text(s)
    arr = _arrow(t)
    if arr is None:  # text that is not UTF-8: compared as Python strings (its rows are reported anyway)
        low = t.str.lower()
        yes, no = low.isin(TRUE).fillna(False).to_numpy(bool), low.isin(FALSE).fillna(False).to_numpy(bool)
    else:
        low = pc.utf8_lower(arr)
        yes, no = _mask(pc.is_in(low, value_set=_TRUE)), _mask(pc.is_in(low, value_set=_FALSE))
    out = pd.Series(pd.arrays.BooleanArray(yes, ~(yes | no)), index=s.index)
    return Parsed(out, pd.Series(t.notna().to_numpy(bool) & ~(yes | no), index=s.index), reason)


def parse_flag(s: pd.Series) -> Parsed:
    """A required 0/1 outcome: the boolean spellings → int64 0/1; a missing value is refused."""
    b = parse_boolean(s)
    bad = b.bad | b.values.isna()
    return Parsed(b.values.fillna(False).astype("int64"), bad, "not 0/1 (true/false, 1/0, yes/no, y/n, t/f, on/off)")


def parse_number(s: pd.Series) -> Parsed:
    """Numbers as written (a leading '+', exponents; no thousands separators) → float64."""
    reason = "wrong type: expected a number"
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return Parsed(s.astype("float64"), _no(s.index), "")
    arr = _arrow(_text(s))
    if arr is None:  # not UTF-8 text
        t = _text(s)
        ok = t.str.fullmatch(_NUMBER.pattern).fillna(False).astype(bool)
        return Parsed(t.where(ok).astype("float64"), t.notna() & ~ok, reason)
    try:  # a clean column: Arrow's cast alone. Every finite value it reads is one the pattern accepts (its extra
        # spellings, inf and nan, are not finite), so the answer is the pattern's; a third of the parse of 10 M values
        values = pc.cast(arr, pa.float64())
        if pc.all(pc.is_finite(values)).as_py() is not False:
            return Parsed(pd.Series(values.to_numpy(zero_copy_only=False), index=s.index), _no(s.index), reason)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    ok_arrow = pc.fill_null(pc.match_substring_regex(arr, _NUMBER.pattern), False)
    ok, given = _mask(ok_arrow), _mask(pc.is_valid(arr))
    numbers = arr if ok.all() else pc.if_else(ok_arrow, arr, pa.scalar(None, arr.type))  # cast only numbers
    values = pc.cast(numbers, pa.float64()).to_numpy(zero_copy_only=False)
    return Parsed(pd.Series(values, index=s.index), pd.Series(given & ~ok, index=s.index), reason)


def parse_timestamp(s: pd.Series) -> Parsed:
    """ISO 8601 with an offset, `Z` or naive (UTC), parquet timestamps of any unit, or one spreadsheet date format
    for the whole column (DATE_FORMATS, Excel serial days) → datetime64[ns, UTC]."""
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        return Parsed(ts.astype("datetime64[ns, UTC]"), pd.Series(False, index=s.index), "")
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        # a parquet column of numbers has no unit (seconds, milliseconds, days?): refused, never guessed
        return Parsed(pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]"), s.notna(), NUMBER_NOT_TIME)
    t = _text(s)
    out = _arrow_iso(t)
    if out is None:
        out = _pandas_iso(t)
    rest = t.notna() & out.isna()
    if rest.any():
        out = out.where(~rest, _spreadsheet_dates(t[rest]))
    bad = t.notna() & out.isna()
    return Parsed(out.astype("datetime64[ns, UTC]", copy=False), bad, "not an ISO 8601 timestamp")


_ZONED = r"(Z|[+-]\d\d:\d\d)$"
NUMBER_NOT_TIME = "a number, not a timestamp: ISO 8601 expected (e.g. 2026-03-01T09:30:00Z)"


def _arrow_iso(t: pd.Series) -> pd.Series | None:
    """ISO 8601 through Arrow's cast (zoned values to UTC, naive ones read as UTC), ~10× pandas' parser; None when
    some value is not plain ISO 8601, so pandas reads the column and names the bad rows. A long column is cast in
    two halves side by side (Arrow's casts use one core each); the answer does not depend on the split."""
    arr = _arrow(t)
    if arr is None:
        return None
    half = len(arr) // 2
    parts = [arr.slice(0, half), arr.slice(half)] if len(arr) >= 2_000_000 else [arr]
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        cast = list(pool.map(_iso_cast, parts))
    if any(c is None for c in cast):
        return None
    return _series(pa.chunked_array([chunk for c in cast for chunk in c.chunks], type=cast[0].type), t.index)


def _iso_cast(arr: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A column written one way (all zoned or all naive, as most exports are) takes one cast; a mixed one is split
    by its zone suffix."""
    utc, naive = pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")
    try:
        return pc.cast(arr, utc)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        return pc.cast(pc.cast(arr, naive), utc)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    zoned = pc.match_substring_regex(arr, _ZONED)
    try:
        with_zone = pc.cast(pc.if_else(zoned, arr, pa.scalar(None, arr.type)), utc)
        without = pc.cast(pc.cast(pc.if_else(zoned, pa.scalar(None, arr.type), arr), naive), utc)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pc.coalesce(with_zone, without)


def _series(ts: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    out = ts.to_pandas()
    out.index = index
    return out


def _pandas_iso(t: pd.Series) -> pd.Series:
    """ISO 8601 through pandas, zoned and naive values apart: pandas 2.3 parsing one column that mixes them gives
    a naive value the offset of the zoned value before it (a silent shift by hours)."""
    zoned = t.str.contains(_ZONED, regex=True, na=False).astype(bool)
    out = pd.Series(pd.NaT, index=t.index, dtype="datetime64[ns, UTC]")
    for part in (zoned, ~zoned):
        if part.any():
            out[part] = pd.to_datetime(t[part].astype(object), errors="coerce", utc=True, format="ISO8601")
    return out


def _spreadsheet_dates(t: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(t, errors="coerce")
    if numeric.notna().all() and numeric.between(1, 2_958_465).all():  # Excel serial days, 1900 → 9999
        return EXCEL_EPOCH + pd.to_timedelta(numeric, unit="D")
    for fmt in DATE_FORMATS:
        parsed = pd.to_datetime(t, errors="coerce", utc=True, format=fmt)
        if parsed.notna().all():
            return parsed
    return pd.Series(pd.NaT, index=t.index, dtype="datetime64[ns, UTC]")


def parse_text(s: pd.Series) -> Parsed:
    """Identifiers and free text: stripped strings, missing as NA. Arrow-backed (checked and stored without a
    Python object per value); text that is not valid UTF-8 stays Python strings so its rows can be reported."""
    return Parsed(_text(s), pd.Series(False, index=s.index), "")


PARSERS = {
    "id": parse_text,
    "text": parse_text,
    "category": parse_text,
    "number": parse_number,
    "flag": parse_flag,
    "boolean": parse_boolean,
    "timestamp": parse_timestamp,
}


def infer_kind(s: pd.Series) -> str:
    """A custom attribute's kind from the whole column: number when every value is one, boolean when every value
    is a yes/no spelling (0/1 alone counts as a number), else category. A column that is all missing is text."""
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_numeric_dtype(s):
        return "number"
    t = _text(s).dropna()
    if t.empty:
        return "text"
    if t.str.fullmatch(_NUMBER.pattern).all():
        return "number"
    if t.str.lower().isin(TRUE | FALSE).all():
        return "boolean"
    return "category"


def kind_of_stored(dtype: object) -> str | None:
    """The kind a stored column's dtype pins (so a later import cannot change it), None for text."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    return None


class PinnedKinds(BaseModel):
    """`--schema` YAML: per table, columns whose kind the user pins, e.g. `customers: {monthly_charges: number}`."""

    model_config = ConfigDict(extra="forbid")
    customers: dict[str, Kind] = {}
    transactions: dict[str, Kind] = {}
    events: dict[str, Kind] = {}
    edges: dict[str, Kind] = {}
    stages: dict[str, Kind] = {}
    campaigns: dict[str, Kind] = {}
    labels: dict[str, Kind] = {}


def load_pinned(path: Path) -> dict[str, dict[str, str]]:
    """The pinned kinds of a --schema file; ValueError naming the file and field when it is not one."""
    from leadscope.yamlfile import load_validated

    return load_validated(path, PinnedKinds, "--schema").model_dump()


def parse(kind: str, s: pd.Series) -> Parsed:
    return PARSERS[kind](s)


def consented(s: pd.Series | None, index: pd.Index) -> np.ndarray:
    """Default-deny consent: True only where the value parses as true; missing, unknown or absent is False."""
    if s is None:
        return np.zeros(len(index), bool)
    return parse_boolean(s).values.fillna(False).to_numpy(bool)
