"""MLflow wiring: tracking URI, experiments with artifacts under mlruns/, the pyfunc wrapper, the registry."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Generic, TypeVar

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from leadscope.settings import Settings, quiet_environment
from training.scorer import Scorer

CHAMPION = "champion"
CHALLENGER = "challenger"


_configured: list[str] = []  # the URI this process points MLflow at; set once, not on every registry poll


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store (only when it differs from the current one); nothing is touched
    until this is called."""
    uri = settings.mlflow_uri
    if _configured != [uri] or mlflow.get_tracking_uri() != uri:
        quiet_environment()
        settings.resolve(settings.mlruns_dir).mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        _configured[:] = [uri]
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment(settings: Settings, name: str) -> str:
    client = configure(settings)
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=f"{settings.artifact_root}/{name}")


class ScorerModel(mlflow.pyfunc.PythonModel):
    """pyfunc face of a Scorer: DataFrame of features in, calibrated probability out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = Scorer.load(Path(context.artifacts["scorer"]))

    def predict(self, context: object, model_input: pd.DataFrame, params: dict | None = None) -> pd.Series:
        X = self.model.encoder.transform(model_input)
        return pd.Series(self.model.probability(X), name="probability")


def requirements() -> list[str]:
    """Pinned runtime needs of a logged model (explicit: MLflow's inference would re-load the model)."""
    return [f"{p}=={version(p)}" for p in ("lightgbm", "numpy", "pandas", "scikit-learn", "mlflow")]


M = TypeVar("M")


@dataclass(frozen=True)
class Champion(Generic[M]):
    """A registered model version as served: a Scorer (propensity, churn, custom outcomes), a ValueModel (value)
    or an UpliftBundle (uplift); each pyfunc exposes what it wraps as `model`."""

    name: str
    version: str
    run_id: str
    feature_service: str
    model: M
    limits: str | None = None  # set for a cold-start model: what it was trained on and why not to trust it far


def load_champion(settings: Settings, name: str, alias: str = CHAMPION) -> Champion:
    """The model an alias points at, unwrapped from its pyfunc to the numpy object the hot path uses."""
    client = configure(settings)
    mv = client.get_model_version_by_alias(name, alias)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    return Champion(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        feature_service=mv.tags.get("feature_service", ""),
        model=model.unwrap_python_model().model,
        limits=mv.tags.get(COLD_START_TAG),
    )


COLD_START_TAG = "cold_start_limits"


def register(
    settings: Settings,
    name: str,
    version: str,
    feature_service: str,
    *,
    champion: bool | None = None,
    cold_start_limits: str | None = None,
) -> str:
    """Tag a freshly logged version with its FeatureService and alias it: `champion` for the first model of its
    name (or when `champion` is True), `challenger` otherwise, so that `leadscope promote` decides. A cold-start
    model (trained below the data minimums) is tagged with its limits; it never displaces a regular champion, and
    the first regular model trained after it replaces it at once (a cold-start model has no holdout to promote
    against). Returns the alias."""
    client = configure(settings)
    client.set_model_version_tag(name, version, "feature_service", feature_service)
    if cold_start_limits:
        client.set_model_version_tag(name, version, COLD_START_TAG, cold_start_limits)
    if champion is None:
        current = alias_version(settings, name)
        replaces_cold_start = (
            current is not None
            and not cold_start_limits
            and COLD_START_TAG in client.get_model_version(name, current).tags
        )
        champion = current is None or replaces_cold_start
    alias = CHAMPION if champion else CHALLENGER
    client.set_registered_model_alias(name, alias, version)
    return alias


def alias_version(settings: Settings, name: str, alias: str = CHAMPION) -> str | None:
    """The version an alias points at, or None."""
    client = configure(settings)
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def has_champion(settings: Settings, name: str) -> bool:
    return alias_version(settings, name) is not None
