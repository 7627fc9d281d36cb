"""Build step: raw tables → feature parquet files (Feast offline sources) + schema + time range."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features import engineering
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings


def read_table(raw_dir: Path, name: str) -> pd.DataFrame:
    path = raw_dir / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"missing input table '{name}' at {path}")
    return pd.read_parquet(path)


def data_end(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The dataset's 'now': the day after the newest timestamp anywhere."""
    newest = max(
        pd.to_datetime(df[c], utc=True).max()
        for df, c in ((tables["customers"], "created_at"), (tables["events"], "ts"), (tables["transactions"], "ts"))
    )
    return newest.floor("D") + pd.Timedelta(days=1)


def split_view(name: str, df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Summary features stay in `name`; the long tail of windowed counts goes to `<name>_detail`."""
    core = engineering.CORE.get(name)
    if core is None:
        return {name: df}
    rest = [c for c in df.columns if c not in core and c not in (ENTITY, TS)]
    return {name: df[[ENTITY, TS, *core]], f"{name}_detail": df[[ENTITY, TS, *rest]]}


def build(settings: Settings, progress: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Compute every feature view's source and write it; returns row counts per view."""
    raw = settings.raw_dir
    tables = {t: read_table(raw, t) for t in ("customers", "transactions", "events")}
    cust = tables["customers"]
    end = data_end(tables)
    start = pd.to_datetime(cust["created_at"], utc=True).min().floor("D")
    cuts = engineering.cut_times(start=start, end=end, cadence_days=settings.feature_cadence_days)
    out = settings.feature_dir
    out.mkdir(parents=True, exist_ok=True)
    steps = {
        "customer_profile": lambda: engineering.profile_features(cust),
        "customer_transactions": lambda: engineering.transaction_features(tables["transactions"], cust, cuts),
        "customer_engagement": lambda: engineering.engagement_features(tables["events"], cust, cuts),
    }
    schema, counts = {}, {}
    for name, step in steps.items():
        progress(name)
        for view, df in split_view(name, step()).items():
            df.to_parquet(out / f"{view}.parquet", index=False)
            schema[view] = {
                c: ("string" if pd.api.types.is_string_dtype(df[c]) else "float")
                for c in df.columns
                if c not in (ENTITY, TS)
            }
            counts[view] = len(df)
    (out / "schema.json").write_text(json.dumps(schema, indent=1))
    meta = {"start": start.isoformat(), "end": end.isoformat(), "cuts": [c.isoformat() for c in cuts]}
    (out / "meta.json").write_text(json.dumps(meta))
    return counts
