"""The `customer_graph` feature view: social features of every customer at each cut time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from graphs import social
from leadscope.schema import ENTITY, TS

HIGH_INTENT = ("pricing_view", "form_submit", "inbound_call")
# Communities: Leiden from scratch at every WARM_CUTS-th cut (an anchor), and at the cuts between refined from the
# previous cut's labels (social.communities' `start`, about 3× faster). A block of cuts from one anchor to the
# next depends on nothing before it, so blocks can run side by side (features/distributed.py) with the same result.
WARM_CUTS = 4
# what graph_feature_cuts reads of the customers table (the rest of it need not be loaded)
GRAPH_CUSTOMER_COLUMNS = (ENTITY, "created_at", "social_followers", "role")


def cut_blocks(cuts: int) -> list[range]:
    """The cut indices in blocks from one anchor to the next: each can be computed apart, side by side, and gives
    what one loop over every cut gives."""
    return [range(a, min(a + WARM_CUTS, cuts)) for a in range(0, cuts, WARM_CUTS)]


def graph_features(**inputs: object) -> pd.DataFrame:
    """One row per (customer created by t, t) for every cut t: graph_feature_cuts' frames (the same keyword
    arguments) in one frame. Every input is cut at t, so nothing leaks from the future."""
    return pd.concat(list(graph_feature_cuts(**inputs)), ignore_index=True)  # type: ignore[arg-type]


def graph_feature_cuts(
    *,
    edges: pd.DataFrame,
    customers: pd.DataFrame,
    won_at: pd.Series,
    churned_at: pd.Series,
    transactions: pd.DataFrame,
    events: pd.DataFrame,
    cuts: pd.DatetimeIndex,
    seed: int = 0,
) -> Iterator[pd.DataFrame]:
    """graph_features one cut at a time, oldest first: each cut is a computation over the graph as of then, its
    communities refined from the previous cut's unless the cut is an anchor (its index a multiple of WARM_CUTS)."""
    ids = customers[ENTITY].to_numpy()
    index = pd.Index(ids)
    e = edges.assign(ts=_naive(edges["ts"])).sort_values("ts", kind="stable")
    e = e.assign(s=index.get_indexer(e["src_customer_id"]), d=index.get_indexer(e["dst_customer_id"]))
    e = e[(e["s"] >= 0) & (e["d"] >= 0)]
    created = _naive(customers["created_at"]).to_numpy()
    won = _naive(pd.Series(ids).map(won_at)).to_numpy()
    churned = _naive(pd.Series(ids).map(churned_at)).to_numpy()
    tx = transactions.assign(ts=_naive(transactions["ts"]), c=index.get_indexer(transactions[ENTITY]))
    signed = np.where(tx.get("is_refund", False), -tx["amount"], tx["amount"])
    hot = events[events["event_type"].isin(HIGH_INTENT)]
    hot_ts, hot_c = _naive(hot["ts"]).to_numpy(), index.get_indexer(hot[ENTITY])
    followers_attr = (  # an optional attribute: without it, followers are counted from the follow edges alone
        pd.to_numeric(customers["social_followers"], errors="coerce").to_numpy(float)
        if "social_followers" in customers
        else np.full(len(ids), np.nan)
    )
    label = None
    for i, cut in enumerate(cuts):
        t = np.datetime64(pd.Timestamp(cut).tz_convert("UTC").tz_localize(None), "ns")
        now = e[e["ts"].to_numpy() <= t]
        in_year = (tx["ts"].to_numpy() <= t) & (tx["ts"].to_numpy() > t - np.timedelta64(365, "D"))
        spend = np.bincount(tx["c"].to_numpy()[in_year], weights=signed[in_year], minlength=len(ids))
        # optimised at every cut: stale labels would leave newcomers as singletons in some rows and not in
        # others (train/serve skew); Leiden takes ~0.13 s at 20k customers
        start = label if i % WARM_CUTS else None
        label = social.communities(len(ids), now["s"].to_numpy(), now["d"].to_numpy(), seed=seed, start=start)
        keen = np.bincount(hot_c[hot_ts <= t], minlength=len(ids)) > 0
        f = _at_cut(now, len(ids), won <= t, churned <= t, spend, followers_attr, label, keen)
        alive = created <= t
        f["pagerank"] = f["pagerank"] / f["pagerank"][alive].mean()  # 1 = the average customer at t
        out = pd.DataFrame({k: np.asarray(v, dtype=float)[alive] for k, v in f.items()})
        out["community_id"] = pd.Series(label[alive]).map("k{}".format).astype("string").to_numpy()
        role = pd.Series(np.where(out["is_kol"] > 0, "opinion_leader", "consumer"), dtype="string")
        if "role" in customers:  # the CRM's own role (e.g. employee) wins over the derived one
            crm = pd.Series(customers["role"].astype("string").to_numpy()[alive])
            role = crm.where(crm.notna() & (crm != "consumer"), role)
        out["social_role"] = role.to_numpy()
        out.insert(0, TS, cut)
        out.insert(0, ENTITY, ids[alive])
        yield out


def _at_cut(
    e: pd.DataFrame,
    n: int,
    won: np.ndarray,
    churned: np.ndarray,
    spend: np.ndarray,
    followers_attr: np.ndarray,
    label: np.ndarray,
    keen: np.ndarray,
) -> dict[str, np.ndarray]:
    kind = e["kind"].to_numpy()
    s, d = e["s"].to_numpy(), e["d"].to_numpy()
    fol, ref, inter = kind == "follow", kind == "referral", kind == "interaction"
    followers = np.bincount(d[fol], minlength=n).astype(float)
    audience = np.fmax(np.nan_to_num(followers_attr, nan=0.0), followers)  # linked account, else in-graph
    # endorsement graph: a follower endorses whom they follow, a referred person their referrer
    A = social.adjacency(np.concatenate([s[fol | inter], d[ref]]), np.concatenate([d[fol | inter], s[ref]]), n)
    F = social.adjacency(d[fol], s[fol], n)  # row: the followed account, columns: its followers
    size, depth = social.referral_trees(s[ref], d[ref], n)
    referrer = np.full(n, -1)
    referrer[d[ref]] = s[ref]
    U = social.adjacency(np.concatenate([s, d]), np.concatenate([d, s]), n)
    csize = np.bincount(label, minlength=label.max() + 1)[label].astype(float)
    cconv = np.bincount(label, weights=won.astype(float))[label] - won
    conv_rate = won.mean()
    median_order = np.median(spend[spend > 0]) if (spend > 0).any() else 0.0
    referred_spend = np.bincount(s[ref], weights=spend[d[ref]], minlength=n)
    influence = referred_spend + audience * conv_rate * median_order * social.ATTRIBUTION
    kol_graph = followers >= max(20.0, float(np.percentile(followers, 99)))
    revenue = np.maximum(spend, 0.0)
    return {
        "followers_count": followers,
        "following_count": np.bincount(s[fol], minlength=n),
        # whom a person follows, and whether those accounts buy: word of mouth flows along follows
        "following_customer_share": social.neighbour_share(social.adjacency(s[fol], d[fol], n), won),
        "following_customers_reach": np.bincount(
            s[fol], weights=won[d[fol]] * np.log10(1 + audience[d[fol]]), minlength=n
        ),
        "following_engaged_reach": np.bincount(
            s[fol], weights=keen[d[fol]] * np.log10(1 + audience[d[fol]]), minlength=n
        ),
        "pagerank": social.pagerank(A),
        "reach_2hop": followers + F @ followers,
        "referral_count": np.bincount(s[ref], minlength=n),
        "referral_tree_size": size,
        "referral_tree_depth": depth,
        "referred_converted": np.bincount(s[ref], weights=won[d[ref]], minlength=n),
        "referred_spend_365d": referred_spend,
        "referrer_converted": np.where(referrer >= 0, won[np.maximum(referrer, 0)], np.nan),
        "community_size": csize,
        "community_conversion_rate": np.divide(cconv, csize - 1, out=np.full(n, np.nan), where=csize > 1),
        "neighbours": np.asarray((U > 0).sum(axis=1)).ravel(),
        "neighbour_customer_share": social.neighbour_share(U, won),
        "neighbour_churned_share": social.neighbour_share(U, churned),
        "is_kol": (followers_attr >= social.KOL_FOLLOWERS) | kol_graph,
        "revenue_value_365d": revenue,
        "influence_value": influence,
        "social_value": revenue + influence,
    }


def _naive(ts: pd.Series) -> pd.Series:
    """UTC instants as naive datetime64[ns] (NaT kept), for fast numpy comparisons."""
    return pd.to_datetime(ts, utc=True).dt.tz_localize(None).astype("datetime64[ns]")
