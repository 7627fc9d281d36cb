"""The same company exported the way CRMs and spreadsheets write it (all text, booleans spelt every way, a BOM, a
';' file, time-zone suffixes, spreadsheet dates, rows exported twice) imports through the CLI to the same features
and the same model as the clean parquet tables."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from leadscope.cli import app
from leadscope.tables import read_feature_meta

TABLES = ("customers", "transactions", "events", "edges", "stages", "campaigns")


def _cli(env: dict, *args: str):  # noqa: ANN202 - click Result
    res = CliRunner().invoke(app, list(args), env=env)
    assert res.exit_code == 0, res.output
    return res


def test_a_messy_crm_export_gives_the_same_features_and_model(prepared, tmp_path) -> None:
    # broken: real exports lost rows, turned numbers into categories and booleans into text, so a company's own
    # files trained a different (worse) model than the same data as parquet
    clean = prepared.settings
    env = {"LEADSCOPE_HOME": str(tmp_path), "LEADSCOPE_SEED": str(clean.seed)}
    export = tmp_path / "export"
    _cli(
        env,
        "generate",
        "--customers",
        str(clean.customers),
        "--seed",
        str(clean.seed),
        "--out",
        str(export),
        "--export-style",
        "crm",
    )
    assert (export / "customers.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM
    assert ";" in (export / "transactions.csv").read_text().splitlines()[0]
    files = [a for t in TABLES for a in (f"--{t}", str(export / f"{t}.csv"))]
    res = _cli(env, "import", *files, "--report", str(tmp_path / "rejects.csv"))
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert set(rejects["reason"]) <= {"duplicate key in this file; the later row is kept"}, rejects.head()
    _cli(env, "features", "build")

    ours, theirs = tmp_path / "data" / "features", clean.feature_dir
    assert read_feature_meta(ours).schema == read_feature_meta(theirs).schema
    for view in read_feature_meta(theirs).schema:
        a = pd.read_parquet(ours / f"{view}.parquet").sort_values(["customer_id", "event_timestamp"], ignore_index=True)
        b = pd.read_parquet(theirs / f"{view}.parquet").sort_values(
            ["customer_id", "event_timestamp"], ignore_index=True
        )
        assert list(a.columns) == list(b.columns) and len(a) == len(b), view
        for col in a.columns:
            if pd.api.types.is_float_dtype(b[col]):
                np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-9, err_msg=col)
            else:
                assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), (view, col)

    res = _cli(env, "train", "propensity")
    messy_auc = float(re.search(r"holdout ROC-AUC (\d\.\d+)", res.output).group(1))
    clean_auc = prepared.metrics["roc_auc"]
    print(f"\npropensity holdout ROC-AUC: messy CSV export {messy_auc:.4f}, clean parquet {clean_auc:.4f}")
    assert abs(messy_auc - clean_auc) <= 0.005
