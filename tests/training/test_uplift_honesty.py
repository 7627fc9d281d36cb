"""Uplift honesty through the CLI: a randomised e-mail experiment whose conversion outcome is noise must be called
"no detectable uplift", with the policy's value within its stated interval of doing nothing; the same experiment's
visit outcome, which the e-mail does raise, must be called detected."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscope.cli import app
from leadscope.tables import read_feature_meta, read_table

CATALOGUE = """
actions:
  - {id: email_offer, channel: email, cost: 0.05, goal: convert}
  - {id: do_nothing, channel: do_nothing, cost: 0.0, goal: convert}
"""


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tests.conftest import prepare, small_settings

    home = tmp_path_factory.mktemp("experiment")
    settings = small_settings(home, customers=1_500)
    prepare(settings, train=False)
    (settings.raw_dir / "campaigns.parquet").unlink()  # a company with no campaign log of its own yet
    (home / "actions.yaml").write_text(CATALOGUE)
    return settings


def _experiment(settings, effect: float, seed: int) -> pd.DataFrame:  # noqa: ANN001
    """Three randomised e-mail sends per customer in the last months of the data; the outcome rises by `effect`
    for the treated (0: the outcome is noise)."""
    rng = np.random.default_rng(seed)
    ids = read_table(settings.raw_dir, "customers")["customer_id"].to_numpy()
    end = read_feature_meta(settings.feature_dir).end
    n = 3 * len(ids)
    treated = rng.random(n) < 0.5
    outcome = rng.random(n) < 0.10 + effect * treated
    days = rng.integers(30, 150, n)
    return pd.DataFrame(
        {
            "customer_id": np.tile(ids, 3),
            "ts": [(end - pd.Timedelta(days=int(d))).strftime("%Y-%m-%dT%H:%M:%SZ") for d in days],
            "action_id": "email_offer",
            "treated": np.where(treated, "yes", "no"),
            "outcome": outcome.astype(int),
            "value": np.where(outcome, 40.0, 0.0),
            "randomized": "true",
        }
    ).drop_duplicates(["customer_id", "ts"])


def _train(settings, frame: pd.DataFrame, name: str) -> str:  # noqa: ANN001
    path = settings.home / f"{name}.csv"
    frame.to_csv(path, index=False)
    env = {"LEADSCOPE_HOME": str(settings.home), "LEADSCOPE_ACTIONS_CATALOGUE": str(settings.home / "actions.yaml")}
    (settings.raw_dir / "campaigns.parquet").unlink(missing_ok=True)
    res = CliRunner().invoke(app, ["import", "--campaigns", str(path)], env=env)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["train", "nba"], env=env)
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())


def test_a_noise_outcome_is_called_no_detectable_uplift_and_the_policy_is_within_its_interval(company) -> None:
    out = _train(company, _experiment(company, effect=0.0, seed=11), "conversion")
    assert "verdict: no detectable uplift: serve the best single action or do nothing" in out, out
    qini, floor = map(float, re.search(r"Qini ([+-][\d.]+) \(noise floor ± ([\d.]+)\)", out).groups())
    assert qini <= 2 * floor
    dr, se = map(float, re.search(r"ours .*?DR ([+-]\s*[\d.]+) ± ([\d.]+)", out).groups())
    assert abs(dr) <= 2 * se  # the policy's value is within its stated interval of doing nothing


def test_a_real_effect_is_called_detected(company) -> None:
    out = _train(company, _experiment(company, effect=0.15, seed=12), "visit")
    assert "verdict: uplift detected: the policy gains" in out, out
    # the same lift for everyone: the Qini (how well the model ranks who gains most) has nothing to rank, so the
    # verdict rests on the policy's gain over doing nothing
    dr, se = map(float, re.search(r"ours .*?DR ([+-]\s*[\d.]+) ± ([\d.]+)", out).groups())
    assert dr > 2 * se


def test_a_campaign_log_given_with_labels_trains_without_an_import_and_bad_rows_are_refused(company) -> None:
    env = {"LEADSCOPE_HOME": str(company.home), "LEADSCOPE_ACTIONS_CATALOGUE": str(company.home / "actions.yaml")}
    path = company.home / "log.csv"
    frame = _experiment(company, effect=0.15, seed=13)
    frame.to_csv(path, index=False)
    (company.raw_dir / "campaigns.parquet").unlink(missing_ok=True)
    res = CliRunner().invoke(app, ["train", "nba", "--labels", str(path)], env=env)
    assert res.exit_code == 0 and "verdict: uplift detected" in " ".join(res.output.split()), res.output
    frame.assign(treated=frame["treated"].where(frame.index != 4, "maybe")).to_csv(path, index=False)
    res = CliRunner().invoke(app, ["train", "nba", "--labels", str(path)], env=env)
    assert res.exit_code == 2 and "row 5 column treated: not 0/1" in " ".join(res.output.split()), res.output


def test_campaign_rows_after_the_data_end_are_refused(company) -> None:
    # broken: behaviour features went silently empty for campaign times more than ~15 days past the data end
    env = {"LEADSCOPE_HOME": str(company.home), "LEADSCOPE_ACTIONS_CATALOGUE": str(company.home / "actions.yaml")}
    path = company.home / "late.csv"
    frame = _experiment(company, effect=0.15, seed=14)
    frame.iloc[:10, frame.columns.get_loc("ts")] = "2027-03-01T00:00:00Z"
    frame.to_csv(path, index=False)
    res = CliRunner().invoke(app, ["train", "nba", "--labels", str(path)], env=env)
    assert res.exit_code == 2 and "ts: 10 of" in res.output and "dated after the data ends" in res.output, res.output
