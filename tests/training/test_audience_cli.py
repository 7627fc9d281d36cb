"""`leadscope audience lookalike | insight | export` on the prepared company."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from leadscope.cli import app


def _env(settings) -> dict:
    return {"LEADSCOPE_HOME": str(settings.home), "LEADSCOPE_CUSTOMERS": str(settings.customers), "COLUMNS": "200"}


def test_lookalike_insight_and_export_from_the_command_line(prepared, tmp_path) -> None:
    settings = prepared.settings
    truth = pd.read_parquet(settings.raw_dir / "truth" / "customers.parquet")
    seed = tmp_path / "seed.csv"
    truth.loc[truth["segment"], ["customer_id"]].head(160).to_csv(seed, index=False)
    out = tmp_path / "audience.csv"
    res = CliRunner().invoke(
        app, ["audience", "lookalike", "--seed", str(seed), "--percent", "5", "--out", str(out)], env=_env(settings)
    )
    assert res.exit_code == 0, res.output
    members = pd.read_csv(out)
    assert list(members.columns) == ["customer_id", "rank", "similarity"]
    assert len(members) == round(0.05 * len(pd.read_parquet(settings.raw_dir / "customers.parquet")))
    assert not set(members["customer_id"]) & set(pd.read_csv(seed)["customer_id"])
    audience_id = res.output.split("audience ", 1)[1].split(":", 1)[0]

    res = CliRunner().invoke(
        app, ["audience", "insight", "--audience", audience_id, "--cross", "industry,interest"], env=_env(settings)
    )
    assert res.exit_code == 0, res.output
    assert "most distinguishing" in res.output and "lift" in res.output and "industry × interest" in res.output

    g = tmp_path / "g.csv"
    res = CliRunner().invoke(
        app,
        ["audience", "export", "--audience", audience_id, "--format", "google", "--out", str(g)],
        env=_env(settings),
    )
    assert res.exit_code == 0, res.output
    assert g.read_text().splitlines()[0] == "Email,Phone,First Name,Last Name,Country,Zip"


def test_command_line_refusals_exit_2_naming_the_option(prepared, tmp_path) -> None:
    settings = prepared.settings
    small = tmp_path / "small.csv"
    pd.DataFrame({"customer_id": ["C0000001", "nobody"]}).to_csv(small, index=False)
    cases = [
        (["--seed", str(small), "--percent", "1"], "--seed: 1 of 2 distinct ids resolved"),
        (["--seed", str(small), "--percent", "50"], "--percent: 50.0 is outside 0.1-10"),
        (["--seed", str(small), "--percent", "0"], "--percent: 0.0 is outside 0.1-10"),
        (["--seed", str(tmp_path / "none.csv"), "--size", "10"], "--seed: no file"),
        (["--seed", str(small), "--size", "10", "--exclude", "all"], "--exclude: 'all'"),
        (["--seed", str(small)], "exactly one of --percent and --size"),
    ]
    for args, message in cases:
        res = CliRunner().invoke(
            app, ["audience", "lookalike", *args, "--out", str(tmp_path / "a.csv")], env=_env(settings)
        )
        assert res.exit_code == 2 and message in " ".join(res.output.split()), (args, res.output)
    res = CliRunner().invoke(
        app, ["audience", "export", "--audience", "aud_nope", "--format", "meta", "--out", "x.csv"], env=_env(settings)
    )
    assert res.exit_code == 2 and "unknown" in res.output
