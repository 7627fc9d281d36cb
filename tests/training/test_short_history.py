"""A company with nine months of orders, through the CLI: the value model picks the horizons its history allows,
trains, registers and serves; a horizon the history cannot hold is refused by name."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscope.cli import app

pytestmark = pytest.mark.company  # generates a company in its tests (make test-fast skips it)


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
    # the company's own spend outcomes over one horizon it names
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    as_of = pd.Timestamp(settings.world_end) - pd.Timedelta(days=90)
    payers = tx[tx["ts"] <= as_of]["customer_id"].unique()
    window = tx[(tx["ts"] > as_of) & (tx["ts"] <= as_of + pd.Timedelta(days=60))]
    spend = window.groupby("customer_id")["amount"].sum().reindex(payers, fill_value=0.0)
    own = tmp_path / "spend.csv"
    pd.DataFrame({"customer_id": payers, "as_of": as_of.isoformat(), "label": spend.to_numpy()}).to_csv(
        own, index=False
    )
    res = CliRunner().invoke(app, ["train", "value", "--labels", str(own)], env=env)
    assert res.exit_code == 2 and "--labels needs --horizons with one number" in res.output, res.output
    res = CliRunner().invoke(app, ["train", "value", "--labels", str(own), "--horizons", "60"], env=env)
    out = " ".join(res.output.split())
    assert res.exit_code == 0 and "60d lightgbm" in out and "registered value v3 as challenger: 60 d by" in out, out
    bad = pd.read_csv(own).assign(label=lambda d: d["label"].where(d.index != 3, -5.0))
    bad.to_csv(own, index=False)
    res = CliRunner().invoke(app, ["train", "value", "--labels", str(own), "--horizons", "60"], env=env)
    assert res.exit_code == 2 and "row 4 column label: must not be negative" in " ".join(res.output.split())
