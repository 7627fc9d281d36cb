"""Graph features on small hand-built graphs with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphs import social
from graphs.features import graph_features

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def test_referral_tree_size_and_depth() -> None:
    # 0 → 1 → 2 → 3 and 0 → 4: node 0 brought 4 people over 3 generations
    size, depth = social.referral_trees(np.array([0, 1, 2, 0]), np.array([1, 2, 3, 4]), 6)
    assert size.tolist() == [4, 2, 1, 0, 0, 0]
    assert depth.tolist() == [3, 2, 1, 0, 0, 0]


def test_a_clique_is_one_community() -> None:
    clique_a = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    clique_b = [(i, j) for i in range(6, 12) for j in range(i + 1, 12)]
    src, dst = map(np.array, zip(*(clique_a + clique_b + [(0, 6)]), strict=True))
    label = social.communities(12, src, dst, seed=1)
    assert len(set(label[:6])) == 1 and len(set(label[6:])) == 1 and label[0] != label[6]


@pytest.fixture
def tiny():
    customers = pd.DataFrame(
        {"customer_id": list("abcde"), "created_at": [day(0)] * 5, "social_followers": [50_000, 10, None, 5, 1]}
    )
    edges = pd.DataFrame(
        {
            "src_customer_id": ["b", "c", "d", "a", "a"],
            "dst_customer_id": ["a", "a", "a", "e", "b"],
            "ts": [day(1), day(1), day(1), day(2), day(20)],
            "kind": ["follow", "follow", "follow", "referral", "interaction"],
        }
    )
    won = pd.Series({"b": day(5), "c": day(15), "e": day(3)})
    tx = pd.DataFrame(
        {"customer_id": ["e", "e"], "ts": [day(3), day(12)], "amount": [100.0, 50.0], "is_refund": [False, False]}
    )
    ev = pd.DataFrame({"customer_id": ["a"], "ts": [day(1)], "event_type": ["pricing_view"]})
    return dict(
        edges=edges,
        customers=customers,
        won_at=won,
        churned_at=pd.Series(dtype="datetime64[ns, UTC]"),
        transactions=tx,
        events=ev,
    )


def test_homophily_counts_only_conversions_up_to_the_cut(tiny) -> None:
    # broken: neighbour conversion would leak the future into training rows
    out = graph_features(**tiny, cuts=pd.DatetimeIndex([day(10), day(16)]))
    out = out.set_index(["event_timestamp", "customer_id"])
    a10, a16 = out.loc[(day(10), "a")], out.loc[(day(16), "a")]
    # a's neighbours: b, c, d (followers) and e (referred); converted by day 10: b, e; by day 16: b, c, e
    assert a10["neighbour_customer_share"] == pytest.approx(2 / 4)
    assert a16["neighbour_customer_share"] == pytest.approx(3 / 4)
    assert a10["followers_count"] == 3 and a10["referral_count"] == 1 and a10["referred_converted"] == 1
    assert a10["referred_spend_365d"] == 100.0 and a10["is_kol"] == 1  # the day-12 order is after the cut
    assert a16["referred_spend_365d"] == 150.0
    assert out.loc[(day(10), "e"), "referrer_converted"] == 0  # a had not converted
    assert out.loc[(day(10), "b"), "following_engaged_reach"] > 0  # b follows a, who visited pricing


def test_edges_after_the_cut_are_ignored(tiny) -> None:
    out = graph_features(**tiny, cuts=pd.DatetimeIndex([day(10)])).set_index("customer_id")
    assert out.loc["a", "neighbours"] == 4  # the interaction on day 20 is not there yet


def test_social_value_ranks_a_big_audience_above_a_big_spender() -> None:
    # 300k followers spending 1,000 vs a few hundred followers spending 10,000 (the example)
    n = 40
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "created_at": [day(0)] * n,
            "social_followers": [300_000, 300] + [10] * (n - 2),
        }
    )
    spend = [1_000.0, 10_000.0] + [80.0] * (n - 2)
    tx = pd.DataFrame({"customer_id": customers["customer_id"], "ts": day(5), "amount": spend, "is_refund": False})
    won = pd.Series(day(5), index=customers["customer_id"][:20])
    out = graph_features(
        edges=pd.DataFrame(columns=["src_customer_id", "dst_customer_id", "ts", "kind"]),
        customers=customers,
        won_at=won,
        churned_at=pd.Series(dtype="datetime64[ns, UTC]"),
        transactions=tx,
        events=pd.DataFrame(columns=["customer_id", "ts", "event_type"]),
        cuts=pd.DatetimeIndex([day(10)]),
    ).set_index("customer_id")
    assert out.loc["c0", "social_value"] > out.loc["c1", "social_value"]
    assert out.loc["c1", "revenue_value_365d"] > out.loc["c0", "revenue_value_365d"]
