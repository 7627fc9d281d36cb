"""A company with nine months of orders, through the CLI: the value model picks the horizons its history allows,
trains, registers and serves; a horizon the history cannot hold is refused by name."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from leadscope.cli import app


def test_value_on_nine_months_of_history_trains_scores_and_says_what_it_left_out(tmp_path) -> None:
    # broken: horizons were fixed at 90 and 365 days: a 9-month history failed with "No objects to concatenate"
    from tests.conftest import prepare, small_settings

    settings = small_settings(tmp_path, customers=1_500, world_days=270)
    prepare(settings, train=False)
    env = {"LEADSCOPE_HOME": str(tmp_path)}
    res = CliRunner().invoke(app, ["train", "value"], env=env)
    out = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "90d lightgbm" in out and "365d" not in out
    assert "registered value v1 as champion: 90 d by" in out
    ids = tmp_path / "ids.csv"
    customers = pd.read_parquet(settings.raw_dir / "customers.parquet")["customer_id"].head(50)
    customers.to_frame().to_csv(ids, index=False)
    scored = tmp_path / "scores.csv"
    res = CliRunner().invoke(app, ["score", "--input", str(ids), "--models", "value", "--out", str(scored)], env=env)
    assert res.exit_code == 0, res.output
    table = pd.read_csv(scored)
    assert table["value_expected_spend_90d"].notna().any() and table["value_expected_spend_365d"].isna().all()
    assert table["value_expected_orders_90d"].dropna().ge(0).all()
    res = CliRunner().invoke(app, ["train", "value", "--horizons", "30,365"], env=env)
    assert res.exit_code == 2 and "--horizons: 365 d needs a longer history than the" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["train", "value", "--horizons", "30,60"], env=env)
    assert res.exit_code == 0 and "registered value v2 as challenger: 30 d by" in " ".join(res.output.split())
