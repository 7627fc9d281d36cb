"""A company generated in regions (leadscope/synth/regions.py): one file per table, ids and identifiers that never
collide across regions, duplicates still linked within one, the same company for the same seed."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from leadscope.schema import TABLES
from leadscope.synth import generate
from leadscope.synth.regions import region_seed, region_sizes, write_company

END = datetime(2026, 6, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def regional(tmp_path_factory):
    out = tmp_path_factory.mktemp("regional")
    rows = write_company(out, customers=1_500, seed=3, end=END, days=200, region=600, workers=2)
    return out, rows


def test_sizes_are_balanced_and_add_up() -> None:
    assert region_sizes(1_000_000) == [200_000] * 5
    assert region_sizes(1_000_001) == [166_667] * 5 + [166_666]  # six regions, sizes one apart at most
    assert sum(region_sizes(10_000_000)) == 10_000_000 and len(region_sizes(10_000_000)) == 50
    assert region_sizes(150) == [150]
    assert len({region_seed(7, k) for k in range(50)}) == 50 and region_seed(7, 0) != region_seed(8, 0)


def test_one_region_is_the_company_generate_makes(tmp_path) -> None:
    # broken: every figure measured on the one-piece generator would change for small companies
    write_company(tmp_path, customers=400, seed=5, end=END, days=200)
    want = generate(customers=400, seed=5, end=END, days=200)
    for name in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"{name}.parquet"), want.tables[name], obj=name)


def test_regions_are_one_file_per_table_and_every_reference_resolves(regional) -> None:
    out, rows = regional
    cust = pd.read_parquet(out / "customers.parquet")
    assert rows["customers"] == len(cust) > 1_500 and cust["customer_id"].is_unique
    assert cust["customer_id"].str[1:4].nunique() == 3  # three regions, each tagged
    known = set(cust["customer_id"])
    for name in ("transactions", "events", "stages", "campaigns"):
        df = pd.read_parquet(out / f"{name}.parquet")
        assert len(df) == rows[name] and set(df["customer_id"]) <= known, name
    edges = pd.read_parquet(out / "edges.parquet")
    assert set(edges["src_customer_id"]) | set(edges["dst_customer_id"]) <= known
    for name, id_col in (("transactions", "transaction_id"), ("events", "event_id"), ("stages", "event_id")):
        assert pd.read_parquet(out / f"{name}.parquet")[id_col].is_unique, name
    truth = pd.read_parquet(out / "truth" / "customers.parquet")
    assert truth["customer_id"].tolist() == cust["customer_id"].tolist()
    assert set(pd.read_parquet(out / "truth" / "uplift.parquet")["customer_id"]) == known
    assert not (out / ".regions").exists()


def test_identifiers_link_only_within_a_region(regional) -> None:
    """Each region draws its emails, phones and WeChat ids from the same space; the tags keep two regions' people
    apart, and the planted duplicates (written differently) still share a normalised identifier."""
    from graphs.identity import identifier_table

    out, _ = regional
    cust = pd.read_parquet(out / "customers.parquet")
    truth = pd.read_parquet(out / "truth" / "customers.parquet")[["customer_id", "person_id"]]
    ids = identifier_table(cust).dropna(subset=["value"]).merge(truth)
    shop = cust["source_channel"].eq("store")  # the shops' own phone, typed in for walk-ins, is shared on purpose
    ids = ids[~ids["customer_id"].isin(cust.loc[shop, "customer_id"]) | ids["kind"].ne("phone")]
    regions = ids.groupby(["kind", "value"])["customer_id"].agg(lambda s: s.str[1:4].nunique())
    assert regions.max() == 1
    people = ids.groupby(["kind", "value"])["person_id"].nunique()
    assert people.max() == 1  # nobody is linked to a stranger
    dup = truth["person_id"].value_counts()
    linked = ids.groupby(["person_id", "kind", "value"])["customer_id"].nunique()
    linked = set(linked[linked > 1].index.get_level_values("person_id"))
    assert len(linked & set(dup[dup > 1].index)) >= 0.95 * (dup > 1).sum()


def test_same_seed_same_regional_company(regional, tmp_path) -> None:
    out, _ = regional
    write_company(tmp_path, customers=1_500, seed=3, end=END, days=200, region=600, workers=1)
    for name in TABLES:
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / f"{name}.parquet"), pd.read_parquet(out / f"{name}.parquet"), obj=name
        )
