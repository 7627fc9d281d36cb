"""Score items as a flat table (one row per customer) for files: parquet/CSV/NDJSON from `leadscope score`,
written chunk by chunk."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pandas as pd

from leadscope.schema import SCORED_MODELS
from leadscope.tables import spreadsheet_safe
from serving.schemas import ScoreItem
from serving.scoring import TOP_REASONS


def flatten(items: list[ScoreItem], names: list[str]) -> pd.DataFrame:
    """customer_id, error, then per model: probability, score, grade and reason_1..3 (feature names), or for
    value the expected spend per horizon."""
    rows = []
    for it in items:
        row: dict = {"customer_id": it.customer_id, "error": it.error.code if it.error else None}
        for m in names:
            out = getattr(it, m) if m in SCORED_MODELS else (it.outcomes or {}).get(m)
            if m == "value":
                row["value_expected_spend_90d"] = out.expected_spend_90d if out else None
                row["value_expected_spend_365d"] = out.expected_spend_365d if out else None
                for h, v in (out.expected_spend if out else {}).items():
                    if h not in ("90d", "365d"):
                        row[f"value_expected_spend_{h}"] = v
                for h, v in (out.expected_orders if out else {}).items():
                    row[f"value_expected_orders_{h}"] = v
                continue
            row[f"{m}_probability"] = out.probability if out else None
            row[f"{m}_score"] = out.score if out else None
            row[f"{m}_grade"] = out.grade if out else None
            for k in range(TOP_REASONS):
                row[f"{m}_reason_{k + 1}"] = out.reasons[k].feature if out and k < len(out.reasons) else None
        rows.append(row)
    return pd.DataFrame(rows)


def columns_of(models: dict[str, object], reasons: bool = True) -> list[str]:
    """The output's columns, in flatten's order, for these models (name → scorer or value model): fixed before
    the first chunk, whatever ids it holds (a chunk of unknown ids has no horizons to show)."""
    import numpy as np

    cols = ["customer_id", "error"]
    for m, model in models.items():
        if m == "value":
            X = np.zeros((1, len(model.encoder.features)))  # a probe row: which horizons the model answers
            spend, orders = model.predict(X), model.expected_orders(X)
            cols += ["value_expected_spend_90d", "value_expected_spend_365d"]
            cols += [f"value_expected_spend_{h}d" for h in spend if h not in (90, 365)]
            cols += [f"value_expected_orders_{h}d" for h in orders]
            continue
        cols += [f"{m}_probability", f"{m}_score", f"{m}_grade"]
        cols += [f"{m}_reason_{k + 1}" for k in range(TOP_REASONS)] if reasons else []
    return cols


class FrameWriter:
    """Writes frames of the same columns to one file as they come (bounded memory): parquet (row groups), CSV
    (safe to open in a spreadsheet, CRLF rows as write_frame writes them) or NDJSON (one JSON object per line)."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, columns
        self.kind = {".parquet": "parquet", ".csv": "csv", ".ndjson": "ndjson"}[path.suffix]
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.partial")  # renamed into place once complete
        self.rows = 0
        self._parquet = None
        self._fh = None

    def write(self, df: pd.DataFrame) -> None:
        df = df.reindex(columns=self.columns)  # a column a chunk lacks is empty in it
        if self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._parquet is None:
                self._schema = pa.schema([(c, _arrow_type(c)) for c in df.columns])
                self._parquet = pq.ParquetWriter(self.tmp, self._schema)
            self._parquet.write_table(pa.Table.from_pandas(df, schema=self._schema, preserve_index=False))
        else:
            if self._fh is None:
                self._fh = open(self.tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
            if self.kind == "csv":
                spreadsheet_safe(df).to_csv(self._fh, index=False, header=self.rows == 0, lineterminator="\r\n")
            elif len(df):
                self._fh.write(df.to_json(orient="records", lines=True, force_ascii=False).rstrip("\n") + "\n")
        self.rows += len(df)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._fh is not None:
            self._fh.close()
        if self._parquet is None and self._fh is None:  # no chunk at all: the columns, no rows
            self.write(pd.DataFrame({c: pd.Series([], dtype=object) for c in self.columns}))
            return self.close()
        self.tmp.replace(self.path)
        return None

    def abort(self) -> None:
        for h in (self._parquet, self._fh):
            if h is not None:
                with contextlib.suppress(Exception):
                    h.close()
        self.tmp.unlink(missing_ok=True)


def _arrow_type(column: str):  # noqa: ANN202 - a pyarrow DataType
    import pyarrow as pa

    if column.endswith("_probability") or column.startswith("value_expected"):
        return pa.float64()
    if column.endswith("_score"):
        return pa.int64()
    return pa.string()
