"""Shared fixtures: one small generated company, built and trained once per test session."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    kw.setdefault("live_apply_process", False)  # in-process tests: the applier thread (served apps test the child)
    return Settings(home=home, customers=kw.pop("customers", SMALL), seed=kw.pop("seed", 7), **kw)


def prepare(settings: Settings, *, train: bool = True, generate_data: bool = True) -> dict:
    """generate → build → apply → materialise → (train): the same steps `leadscope run` takes."""
    from features.build import build
    from leadscope.synth import generate

    if generate_data:
        generate(
            customers=settings.customers, seed=settings.seed, end=settings.world_end, days=settings.world_days
        ).write(settings.raw_dir)
    build(settings)
    if not train:
        return {}
    from training import churn, nba, oracle, propensity, value

    metrics = propensity.train(settings, oracle=oracle.for_propensity(settings))
    metrics["churn"] = churn.train(settings, oracle=oracle.for_churn(settings))
    metrics["value"] = value.train(settings, oracle=oracle.for_value(settings))
    metrics["nba"] = nba.train(settings)
    return metrics


@contextmanager
def api_client(settings: Settings, scopes: tuple[str, ...] = ("admin",), *, wait: bool = True) -> Iterator:
    """TestClient on the real app with a fresh API key, once the background load has finished."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.keys import KeyStore

    token = KeyStore(settings.database_url).create("tests", list(scopes), "1000000/minute")[0]
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {token}"}) as client:
        deadline = time.monotonic() + 120
        while wait and not client.app.state.serving.loaded and time.monotonic() < deadline:
            time.sleep(0.02)
        yield client


# Fixtures that generate a company (and build, train or serve it): a test using one, directly or through another
# fixture, is marked `company`. Tests that generate one in their own body carry the mark themselves (pytestmark).
COMPANY_FIXTURES = frozenset(
    {"prepared", "live_company", "company", "companies", "built", "base", "regional", "inputs", "servers", "redis_url"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test-fast` (-m "not company"): unit tests of pure functions, the contract, schemas, security and
    templates, no generated company."""
    for item in items:
        if COMPANY_FIXTURES & set(getattr(item, "fixturenames", ())) or "notebooks" in item.path.parts:
            item.add_marker(pytest.mark.company)


@pytest.fixture(scope="session", autouse=True)
def _quiet() -> None:
    quiet_environment()
    os.environ.pop("LEADSCOPE_DATA_DIR", None)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    home = tmp_path_factory.mktemp("company")
    settings = small_settings(home)
    yield Prepared(settings=settings, metrics=prepare(settings))


@pytest.fixture(scope="session")
def live_company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    """A company whose history ends today (live records arrive now): 3,000 customers, propensity trained."""
    from datetime import UTC, datetime

    from training import oracle, propensity

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    settings = small_settings(tmp_path_factory.mktemp("live"), customers=3_000, world_end=today, prewarm=False)
    prepare(settings, train=False)
    yield Prepared(settings=settings, metrics=propensity.train(settings, oracle=oracle.for_propensity(settings)))
