"""`leadscope monitor`: drift per feature and of the score, realised vs predicted, logged to MLflow."""

from __future__ import annotations

import mlflow
import pytest

from training import monitoring, tracking


def test_monitor_reports_drift_and_calibration(prepared) -> None:
    # broken: a data scientist would not see drift or a miscalibrated champion before customers do
    settings = prepared.settings
    result = monitoring.monitor(settings, "propensity")
    drift, calib = result["drift"], result["calibration"]
    champ = tracking.load_champion(settings, "propensity")
    assert set(drift["feature"]) == {"(score)", *champ.model.encoder.features}
    assert (drift["psi"] >= 0).all() and drift["psi"].is_monotonic_decreasing
    assert len(calib) == 4 and (calib["rows"] > 0).all()
    assert 0.4 < calib["realised"].sum() / calib["predicted"].sum() < 2.5  # calibrated in the large
    runs = mlflow.search_runs(experiment_names=["monitoring"])
    assert "metrics.psi.score" in runs.columns and len(runs) >= 1
    assert any(line.startswith("(score)") or "PSI" in line for line in monitoring.summary(result))


def test_cli_refuses_unknown_models_and_missing_data_without_a_traceback(tmp_path, monkeypatch) -> None:
    # broken: an operator would get a Python traceback instead of what to do next
    from typer.testing import CliRunner

    from leadscope.cli import app, main

    res = CliRunner().invoke(app, ["monitor", "lifetime"], env={"LEADSCOPE_HOME": str(tmp_path)})
    assert res.exit_code == 2 and "lifetime" in res.output
    monkeypatch.setenv("LEADSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["leadscope", "features", "build"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
