"""Production profile: Feast's Redis online store against a real redis-server."""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import time

import pandas as pd
import pytest

from features import store as feature_store
from leadscope.tables import read_feature_meta
from tests.conftest import prepare, small_settings
from training import dataset


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """LEADSCOPE_REDIS_URL when set (CI), else a redis-server of our own on a free port, else skip."""
    import os

    if os.environ.get("LEADSCOPE_REDIS_URL"):
        yield os.environ["LEADSCOPE_REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("no LEADSCOPE_REDIS_URL and no redis-server binary: the Redis online store cannot be tested here")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path_factory.mktemp("redis")),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_redis_round_trip_matches_the_offline_store(tmp_path, redis_url) -> None:
    # broken: production scoring would read different (or no) features than training saw
    settings = small_settings(tmp_path, customers=800, online_store="redis", redis_url=redis_url)
    prepare(settings, train=False)
    assert "type: redis" in (settings.feature_repo_dir / "feature_store.yaml").read_text()
    store = feature_store.open_store(settings)
    meta_end = read_feature_meta(settings.feature_dir).end
    ids = pd.read_parquet(settings.raw_dir / "customers.parquet")["customer_id"].sample(50, random_state=0).tolist()
    online = store.get_online_features(
        features=store.get_feature_service("propensity_v2"), entity_rows=[{"customer_id": i} for i in ids]
    ).to_df()
    offline = dataset.historical_features(
        store, pd.DataFrame({"customer_id": ids, "event_timestamp": meta_end}), service="propensity_v2"
    )
    names = feature_store.feature_names(settings, "propensity_v2")
    assert online[names].notna().to_numpy().mean() > 0.8
    for col in names:
        for a, b in zip(online[col], offline[col], strict=True):
            both_missing = (a is None or (isinstance(a, float) and math.isnan(a))) and pd.isna(b)
            assert both_missing or a == pytest.approx(b), (col, a, b)
