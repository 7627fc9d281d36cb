"""The generated company written the way real tools export it (`leadscope generate --export-style crm`): CSV with
everything as text, booleans spelt every which way, a BOM, a ';'-delimited file, time-zone suffixes, spreadsheet
dates in one column and a few rows exported twice. Same values as the parquet tables, so an import of these files
must give the same features and models (tests/features/test_messy_export.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TRUE = ("true", "True", "TRUE", "1", "yes", "Yes", "t", "Y")
FALSE = ("false", "False", "FALSE", "0", "no", "No", "f", "N")
ZONES = ("Z", "+08:00", "-05:00", "+00:00", "")  # the same instant written with different offsets, or naive UTC
SEMICOLON = {"transactions"}  # a European spreadsheet's export
EXCEL_DATES = {"customers": "created_at"}  # m/d/Y H:M:S, as a US spreadsheet writes it
DUPLICATES = 5  # rows per table exported twice (a CRM's paging overlap)


def _flags(rng: np.random.Generator, s: pd.Series) -> pd.Series:
    b = s.astype("boolean")
    t = pd.Series(rng.choice(TRUE, len(s)), index=s.index)
    f = pd.Series(rng.choice(FALSE, len(s)), index=s.index)
    return t.where(b.fillna(False), f).where(b.notna(), "")


def _stamps(rng: np.random.Generator, s: pd.Series) -> pd.Series:
    ts = pd.to_datetime(s, utc=True)
    zone = rng.choice(ZONES, len(s))
    out = []
    for t, z in zip(ts, zone, strict=True):
        if pd.isna(t):
            out.append("")
        elif z in ("Z", ""):
            out.append(t.strftime("%Y-%m-%dT%H:%M:%S") + z)
        else:
            sign, hh, mm = (1 if z[0] == "+" else -1), int(z[1:3]), int(z[4:6])
            local = t + pd.Timedelta(hours=sign * hh, minutes=sign * mm)
            out.append(local.strftime("%Y-%m-%dT%H:%M:%S") + z)
    return pd.Series(out, index=s.index)


def _text(df: pd.DataFrame, table: str, rng: np.random.Generator) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s):
            out[col] = _flags(rng, s)
        elif pd.api.types.is_datetime64_any_dtype(s):
            if EXCEL_DATES.get(table) == col:
                out[col] = pd.to_datetime(s, utc=True).dt.strftime("%m/%d/%Y %H:%M:%S")
            else:
                out[col] = _stamps(rng, s)
        else:
            out[col] = s.astype("string").fillna("")
    return out


def write_export(tables: dict[str, pd.DataFrame], out: Path, *, seed: int = 0) -> dict[str, Path]:
    """One CSV per table under `out`; returns table → file."""
    rng = np.random.default_rng([seed, 99])
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for table, df in tables.items():
        text = _text(df, table, rng)
        again = text.sample(min(DUPLICATES, len(text)), random_state=seed) if len(text) else text
        text = pd.concat([text, again]).sort_index(kind="stable")
        path = out / f"{table}.csv"
        sep = ";" if table in SEMICOLON else ","
        text.to_csv(path, index=False, sep=sep, encoding="utf-8-sig" if table == "customers" else "utf-8")
        files[table] = path
    return files
