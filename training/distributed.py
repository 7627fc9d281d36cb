"""LightGBM on Ray Train (engine=ray): the classifier's boosting step run data-parallel on `ray_workers` workers.

Everything around the boosting stays where it is (training/classifier.py): the encoder, Platt calibration on the
validation frame, the holdout metrics, MLflow. Here only `lgb.train` moves: the training rows are split across
the workers (Ray Data shards), LightGBM's data-parallel tree learner builds each tree from all of them over the
network Ray Train sets up, and every worker evaluates the same whole validation frame, so early stopping stops
every worker at the same round. Rank 0 returns the model, cut at its best round.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from leadscope.engine import ensure_ray
from leadscope.settings import Settings

LABEL, WEIGHT = "__label__", "__weight__"
MODEL_FILE = "model.txt"


def _frame(X: np.ndarray, y: np.ndarray, features: list[str], weight: np.ndarray | None = None) -> pd.DataFrame:
    df = pd.DataFrame(np.asarray(X, dtype=float), columns=features)
    df[LABEL] = np.asarray(y, dtype=float)
    df[WEIGHT] = np.ones(len(df)) if weight is None else np.asarray(weight, dtype=float)
    return df


def _train_worker(config: dict) -> None:
    """One Ray Train worker: its shard of the training rows, the whole validation frame, one lgb.train."""
    import ray.train
    from ray.train.lightgbm import get_network_params

    train = ray.train.get_dataset_shard("train").materialize().to_pandas()
    valid = ray.train.get_dataset_shard("valid").materialize().to_pandas()
    cols, cat = config["columns"], config["categorical"]
    train_set = lgb.Dataset(
        train[cols], label=train[LABEL], weight=train[WEIGHT], feature_name=cols, categorical_feature=cat
    )
    valid_set = lgb.Dataset(valid[cols], label=valid[LABEL], reference=train_set)
    params = {**config["params"], "tree_learner": "data_parallel", "pre_partition": True, **get_network_params()}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config["rounds"],
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(config["early_stopping"], verbose=False)],
    )
    context = ray.train.get_context()
    if context.get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / MODEL_FILE).write_text(booster.model_to_string(num_iteration=booster.best_iteration))
            ray.train.report(
                {"best_iteration": booster.best_iteration}, checkpoint=ray.train.Checkpoint.from_directory(d)
            )
    else:
        ray.train.report({"best_iteration": booster.best_iteration})


class RayBoost:
    """The boosting step of CalibratedLGBMClassifier on Ray Train: called with the encoded matrices, returns the
    booster (cut at its best round) and that round."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(
        self,
        params: dict,
        X: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray | None,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        *,
        features: list[str],
        categorical: list[int],
        rounds: int,
        early_stopping: int,
    ) -> tuple[lgb.Booster, int]:
        ensure_ray(self.settings)
        import ray.data
        import ray.train
        from ray.train.lightgbm import LightGBMTrainer

        workers = self.settings.ray_workers
        config = {
            "params": {**params, "num_threads": 1},
            "columns": features,
            "categorical": categorical,
            "rounds": rounds,
            "early_stopping": early_stopping,
        }
        storage = self.settings.resolve(self.settings.data_dir) / "ray_train"
        trainer = LightGBMTrainer(
            _train_worker,
            train_loop_config=config,
            scaling_config=ray.train.ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
            run_config=ray.train.RunConfig(storage_path=str(storage), name="lightgbm"),
            datasets={
                "train": ray.data.from_pandas(_frame(X, y, features, weight), override_num_blocks=workers),
                "valid": ray.data.from_pandas(_frame(X_valid, y_valid, features)),
            },
            # every worker gets the whole validation frame: the same metric, the same early stopping round
            dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
        )
        result = trainer.fit()
        with result.checkpoint.as_directory() as d:
            booster = lgb.Booster(model_str=(Path(d) / MODEL_FILE).read_text())
        return booster, int(result.metrics["best_iteration"])
