"""MLflow wiring: tracking URI, experiments with artifacts under mlruns/, the pyfunc wrapper, the registry."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from leadscope.settings import Settings, quiet_environment
from training.scorer import Scorer

CHAMPION = "champion"
CHALLENGER = "challenger"


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store; nothing is touched until this is called."""
    quiet_environment()
    settings.resolve(settings.mlruns_dir).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    return MlflowClient()


def experiment(settings: Settings, name: str) -> str:
    client = configure(settings)
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=f"{settings.artifact_root}/{name}")


class ScorerModel(mlflow.pyfunc.PythonModel):
    """pyfunc face of a Scorer: DataFrame of features in, calibrated probability out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.scorer = Scorer.load(Path(context.artifacts["scorer"]))

    def predict(self, context: object, model_input: pd.DataFrame, params: dict | None = None) -> pd.Series:
        X = self.scorer.encoder.transform(model_input)
        return pd.Series(self.scorer.probability(X), name="probability")


def requirements() -> list[str]:
    """Pinned runtime needs of a logged model (explicit: MLflow's inference would re-load the model)."""
    return [f"{p}=={version(p)}" for p in ("lightgbm", "numpy", "pandas", "scikit-learn", "mlflow")]


@dataclass(frozen=True)
class Champion:
    name: str
    version: str
    run_id: str
    feature_service: str
    scorer: Scorer


def load_champion(settings: Settings, name: str, alias: str = CHAMPION) -> Champion:
    """The model an alias points at, unwrapped to its numpy Scorer for the hot path."""
    client = configure(settings)
    mv = client.get_model_version_by_alias(name, alias)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    scorer = model.unwrap_python_model().scorer
    return Champion(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        feature_service=mv.tags.get("feature_service", ""),
        scorer=scorer,
    )


def alias_version(settings: Settings, name: str, alias: str = CHAMPION) -> str | None:
    """The version an alias points at, or None."""
    client = configure(settings)
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def has_champion(settings: Settings, name: str) -> bool:
    return alias_version(settings, name) is not None
