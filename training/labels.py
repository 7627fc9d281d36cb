"""A company's own outcomes: a labels file (`train … --labels F`) or the labels table `leadscope import --labels`
stored, validated so that a model is never trained on labels that cannot teach it anything."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import has_table, read_feature_meta, read_table


def own_value_labels(path: Path, settings: Settings) -> pd.DataFrame:
    """A company's spend outcomes (customer_id, as_of, label = net spend over the horizon after as_of, ≥ 0), checked
    like own_labels; a table where nobody spent anything is refused."""
    from features import files

    rows = checked(files.read(path, "labels"), path.name, settings, table="value_labels")
    return rows.assign(label=rows["label"].astype(float))


def own_labels(path: Path, settings: Settings) -> pd.DataFrame:
    """A company's outcome table (customer_id, as_of, label) as entity rows. The whole file is refused (ValueError
    naming the column and the count) when any row is invalid, names a customer leadscope does not know, is dated
    after the data ends (its behaviour features would be empty), or when every label is the same: a model trained
    on such labels would be registered and look like a model."""
    from features import files

    return checked(files.read(path, "labels"), path.name, settings)


def checked(raw: pd.DataFrame, name: str, settings: Settings, table: str = "labels") -> pd.DataFrame:
    """The labels as entity rows, or ValueError naming the column and the count (see own_labels)."""
    from features import ingest

    raw = raw[[c for c in raw.columns if c in ("customer_id", "as_of", "label", "model")]]
    rows, rejects = ingest.validate(table, raw, file=name, known_customers=set(raw["customer_id"].astype(str)))
    if not rejects.empty:
        first = rejects.iloc[0]
        raise ValueError(
            f"{name}: {len(rejects)} invalid label rows, e.g. row {first['row']} "
            f"column {first['column']}: {first['reason']}"
        )
    known = set(read_table(settings.raw_dir, "customers", columns=[ENTITY])[ENTITY].astype(str))
    unknown = ~rows["customer_id"].astype(str).isin(known).to_numpy(bool)
    if unknown.any():
        raise ValueError(
            f"{name}: customer_id: {unknown.sum():,} of {len(rows):,} labels name customers that are not in "
            f"the customers table (first at row {int(unknown.argmax()) + 1}); import them first"
        )
    meta = read_feature_meta(settings.feature_dir)
    late = (rows["as_of"] > meta.end).to_numpy(bool)
    behaviour = set(meta.schema) - {"customer_profile"}  # static attributes do not go stale after the data ends
    end = meta.end
    if late.any() and behaviour:
        raise ValueError(
            f"{name}: as_of: {late.sum():,} of {len(rows):,} labels are dated after the data ends "
            f"({end:%Y-%m-%d}; first at row {int(late.argmax()) + 1}); features at that time would be empty"
        )
    if table == "value_labels":
        if not (rows["label"] > 0).any():
            raise ValueError(f"{name}: label: all {len(rows):,} spend labels are 0; nothing to learn a value from")
        return pd.DataFrame({ENTITY: rows["customer_id"].astype(str), TS: rows["as_of"], "label": rows["label"]})
    if rows["label"].nunique() < 2:
        raise ValueError(
            f"{name}: label: all {len(rows):,} labels are {int(rows['label'].iloc[0])}; a model needs both outcomes"
        )
    return pd.DataFrame(
        {ENTITY: rows["customer_id"].astype(str), TS: rows["as_of"], "label": rows["label"].astype(int)}
    )


def stored_labels(settings: Settings, model: str) -> pd.DataFrame | None:
    """The imported labels table's rows for `model` (all rows when it has no `model` column), checked like a
    labels file; None when nothing was imported."""
    if not has_table(settings.raw_dir, "labels"):
        return None
    raw = read_table(settings.raw_dir, "labels")
    if "model" in raw:
        raw = raw[raw["model"].isna() | (raw["model"].astype(str) == model)]
    return checked(raw.reset_index(drop=True), "the imported labels", settings)
