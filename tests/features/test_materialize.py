"""Incremental materialisation moves only the new time range, and the online store then has the new values."""

from __future__ import annotations

import pandas as pd
import pytest

from features import store
from features.build import build
from leadscope.tables import read_feature_meta
from tests.conftest import prepare, small_settings

pytestmark = pytest.mark.company  # generates a company in its tests (make test-fast skips it)


def test_incremental_materialisation_moves_only_what_is_new(tmp_path) -> None:
    settings = small_settings(tmp_path, customers=600)
    prepare(settings, train=False)
    fs = store.open_store(settings)
    assert store.materialize_incremental(fs, settings) == {}  # nothing new: nothing moved

    old_end = read_feature_meta(settings.feature_dir).end
    events = pd.read_parquet(settings.raw_dir / "events.parquet")
    who = events["customer_id"].iloc[0]
    late = events.head(5).assign(
        event_id=lambda d: "new-" + d["event_id"],
        customer_id=who,
        event_type="pricing_view",
        ts=old_end + pd.Timedelta(days=3),
    )
    pd.concat([events, late]).to_parquet(settings.raw_dir / "events.parquet", index=False)
    build(settings, online=False)  # new sources and registry; the online store keeps its old rows
    fs = store.open_store(settings)
    moved = store.materialize_incremental(fs, settings)
    assert set(moved) >= {"customer_engagement", "customer_transactions"}
    assert all(pd.Timestamp(start) >= old_end for start, _ in moved.values())  # not the whole history again
    online = fs.get_online_features(
        features=["customer_engagement:pricing_view_total"], entity_rows=[{"customer_id": who}]
    ).to_dict()
    offline = pd.read_parquet(settings.feature_dir / "customer_engagement.parquet")
    newest = offline[offline["customer_id"] == who].sort_values("event_timestamp").iloc[-1]
    assert online["pricing_view_total"][0] == newest["pricing_view_total"]
    assert newest["event_timestamp"] > old_end


def _online(settings, ids: list[str]) -> pd.DataFrame:  # noqa: ANN001
    fs = store.open_store(settings)
    rows = fs.get_online_features(
        features=fs.get_feature_service("customer_360"), entity_rows=[{"customer_id": i} for i in ids]
    ).to_df()
    return rows.sort_values("customer_id").reset_index(drop=True)


def test_a_rebuild_writes_only_the_customers_whose_rows_changed(tmp_path) -> None:
    settings = small_settings(tmp_path, customers=600)
    prepare(settings, train=False)
    ids = pd.read_parquet(settings.raw_dir / "customers.parquet")["customer_id"].astype(str).tolist()

    # nothing changed: nothing written, and the online store still answers for everyone
    report = build(settings)
    assert report.materialised and all(w == store.Written(0, True) for w in report.materialised.values())

    # one customer's attribute and another's old order change; the cut times stay (the data's end is the same)
    cust = pd.read_parquet(settings.raw_dir / "customers.parquet")
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    who = str(tx["customer_id"].iloc[0])
    buyer = tx[tx["customer_id"] == who].iloc[[0]]
    other = str(cust["customer_id"][cust["customer_id"] != who].iloc[0])
    cust.loc[cust["customer_id"] == other, "industry"] = "aerospace"
    cust.to_parquet(settings.raw_dir / "customers.parquet", index=False)
    late = buyer.assign(transaction_id="again-" + buyer["transaction_id"], amount=buyer["amount"] * 3)
    pd.concat([tx, late]).to_parquet(settings.raw_dir / "transactions.parquet", index=False)
    report = build(settings)
    written = {v: w.rows for v, w in report.materialised.items()}
    assert all(w.changed_only for w in report.materialised.values())
    assert written["customer_profile"] == 1  # only `other`
    assert 1 <= written["customer_transactions"] < 10  # `who` (and whoever ranks against them moved a quintile)
    assert written["customer_engagement"] == 0
    changed = _online(settings, ids)
    assert changed.loc[changed["customer_id"] == other, "industry"].item() == "aerospace"

    # the same as writing every row: a full materialisation over it changes nothing
    full = store.materialize(store.open_store(settings), settings)
    assert not any(w.changed_only for w in full.values()) and full["customer_profile"].rows == len(ids)
    pd.testing.assert_frame_equal(_online(settings, ids), changed)


def test_a_rebuild_writes_everything_when_the_online_store_lost_its_rows(tmp_path) -> None:
    settings = small_settings(tmp_path, customers=400)
    prepare(settings, train=False)
    (settings.feature_repo_dir / "online.db").unlink()  # an online store started empty
    report = build(settings)
    assert not any(w.changed_only for w in report.materialised.values()), report.materialised
    ids = pd.read_parquet(settings.raw_dir / "customers.parquet")["customer_id"].astype(str).tolist()
    assert _online(settings, ids)["tenure_days"].notna().all()
