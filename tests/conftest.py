"""Shared fixtures: one small generated company, built and trained once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from leadscope.settings import Settings, quiet_environment

SMALL = 4_000


@dataclass
class Prepared:
    settings: Settings
    metrics: dict


def small_settings(home: Path, **kw: object) -> Settings:
    return Settings(home=home, customers=kw.pop("customers", SMALL), seed=kw.pop("seed", 7), **kw)


def prepare(settings: Settings, *, train: bool = True, generate_data: bool = True) -> dict:
    """generate → build → apply → materialise → (train): the same steps `leadscope run` takes."""
    from features import store
    from features.build import build
    from graphs import build as graph_build
    from leadscope.synth import generate

    if generate_data:
        generate(
            customers=settings.customers, seed=settings.seed, end=settings.world_end, days=settings.world_days
        ).write(settings.raw_dir)
    build(settings)
    graph_build.build(settings)
    store.materialize(store.apply(settings), settings)
    if not train:
        return {}
    from training import churn, propensity, value

    metrics = propensity.train(settings)
    metrics["churn"] = churn.train(settings)
    metrics["value"] = value.train(settings)
    return metrics


@pytest.fixture(scope="session", autouse=True)
def _quiet() -> None:
    quiet_environment()
    os.environ.pop("LEADSCOPE_DATA_DIR", None)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    home = tmp_path_factory.mktemp("company")
    settings = small_settings(home)
    yield Prepared(settings=settings, metrics=prepare(settings))
