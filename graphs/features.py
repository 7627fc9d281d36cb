"""The `customer_graph` feature view: social features of every customer at each cut time."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pandas as pd

from graphs import social
from leadscope.schema import ENTITY, TS

HIGH_INTENT = ("pricing_view", "form_submit", "inbound_call")
# Communities: Leiden from scratch at the first cut of each BLOCK_DAYS period of the calendar (an anchor), and at
# the cuts after it in the same period refined from the previous cut's labels (social.communities' `start`, about
# 3× faster). A block of cuts depends on nothing before it, so blocks run side by side (features/graph_pool.py,
# features/distributed.py) with the same result, and a rebuild keeps a block whose inputs did not change
# (block_fingerprints). With weekly cuts a block is 4 cuts, plus the newest cut in the newest block.
BLOCK_DAYS = 28
BLOCK_EPOCH = pd.Timestamp("1970-01-05", tz="UTC")  # the cut calendar's (features/engineering.py CUT_EPOCH)
# Bumped whenever graph_feature_cuts computes differently: a build then recomputes every stored block
GRAPH_VERSION = 3
# what graph_feature_cuts reads of the customers table (the rest of it need not be loaded)
GRAPH_CUSTOMER_COLUMNS = (ENTITY, "created_at", "social_followers", "role")


def cut_blocks(cuts: pd.DatetimeIndex) -> list[range]:
    """The cut indices in blocks, one per BLOCK_DAYS period of the calendar: each block is computed apart (side
    by side, or kept from the previous build) and gives what one loop over every cut gives."""
    key = _block_keys(cuts)
    starts = [i for i in range(len(cuts)) if i == 0 or key[i] != key[i - 1]]
    return [range(a, b) for a, b in zip(starts, [*starts[1:], len(cuts)], strict=True)]


def _block_keys(cuts: pd.DatetimeIndex) -> np.ndarray:
    days = (pd.DatetimeIndex(cuts).tz_convert("UTC") - BLOCK_EPOCH) / pd.Timedelta(days=1)
    return np.floor(np.asarray(days, dtype=float) / BLOCK_DAYS).astype(np.int64)


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
    """graph_features one cut at a time, oldest first, in this process: the whole graph as one shard (the Ray
    build splits it into many, features/distributed.py graph_view, with the same result). Customers are numbered
    by (created_at, customer_id), so the graph at a cut is the same whoever joins later: the rows of a cut depend
    on nothing after it, whatever the table's order."""
    g = GraphInputs(edges, customers, won_at, churned_at, transactions, events)
    totals = cut_totals(g, cuts)
    for frame in shard_cuts(g, totals, cuts, seed=seed):
        yield assemble([frame])


# A graph feature is a sum over its customer's connected component, with five exceptions that span the whole
# graph at the cut; `cut_totals` computes them once, so each component is computed apart (a shard: components
# packed together, graph_shards) and the shards' rows equal the whole graph's. PageRank's normalisation by the
# mean is the fifth: shards give the unnormalised weights, `assemble` divides them by the mean over all shards.
TOTALS = ("customers", "conversion_rate", "median_order", "kol_followers", "pairs")
KINDS = {"follow": 0, "referral": 1, "interaction": 2}  # an edge's kind as a number; any other kind is 3


def cut_totals(g: GraphInputs, cuts: pd.DatetimeIndex) -> list[dict[str, float]]:
    """The whole graph's numbers each cut's features use: customers created by then, their conversion rate, the
    median of their positive 365-day spend, the followers count that makes an opinion leader (the 99th
    percentile, at least 20), and the links (distinct pairs of linked customers: the modularity's edge total)."""
    s, d, kind = g.e_s, g.e_d, g.e_kind
    # a pair of customers is linked from its first edge's time, or when its younger end joins if later
    active = np.maximum(g.e_ts, np.maximum(g.created[s], g.created[d])) if len(s) else g.e_ts
    ok = s != d
    key = np.minimum(s, d)[ok].astype(np.int64) * max(len(g.created), 1) + np.maximum(s, d)[ok]
    if len(key):
        order = np.lexsort((active[ok], key))
        first = np.r_[True, key[order][1:] != key[order][:-1]]
        linked = np.sort(active[ok][order][first])
    else:
        linked = np.zeros(0, dtype=g.e_ts.dtype)
    fol = kind == KINDS["follow"]
    out = []
    for cut in cuts:
        t = _instant(cut)
        m = int(np.searchsorted(g.created, t, side="right"))
        on = fol & (g.e_ts <= t) & (s < m) & (d < m)
        followers = np.bincount(d[on], minlength=m)
        spend = g.spend(t, m)
        out.append(
            {
                "customers": m,
                "conversion_rate": float((g.won[:m] <= t).mean()) if m else 0.0,
                "median_order": float(np.median(spend[spend > 0])) if (spend > 0).any() else 0.0,
                "kol_followers": max(20.0, float(np.percentile(followers, 99)) if m else 0.0),
                "pairs": int(np.searchsorted(linked, t, side="right")),
            }
        )
    return out


def graph_shards(g: GraphInputs, shards: int) -> list[np.ndarray]:
    """The customers (their numbers, ascending) in about `shards` groups of whole connected components of the
    graph at its newest edge (a component at any earlier cut lies inside one of them), packed in order of their
    first customer; a component bigger than a shard's share is a shard of its own."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = len(g.created)
    if n == 0:
        return []
    adj = sp.csr_matrix((np.ones(len(g.e_s), np.int8), (g.e_s, g.e_d)), shape=(n, n))
    _, comp = connected_components(adj, directed=False)
    # components renumbered by their first customer: comp_first[c] is the smallest customer number in c
    comp_first = np.full(comp.max() + 1, n)
    np.minimum.at(comp_first, comp, np.arange(n))
    rank = np.empty_like(comp_first)
    rank[np.argsort(comp_first, kind="stable")] = np.arange(len(comp_first))
    size = np.bincount(rank[comp], minlength=len(comp_first))
    share = -(-n // max(1, shards))
    shard_of_comp = np.zeros(len(size), np.int64)
    k, filled = 0, 0
    for c, z in enumerate(size):  # components in order of their first customer
        if filled and filled + z > share:
            k, filled = k + 1, 0
        shard_of_comp[c] = k
        filled += z
    owner = shard_of_comp[rank[comp]]
    order = np.argsort(owner, kind="stable")
    return np.split(order, np.cumsum(np.bincount(owner))[:-1])


def shard_cuts(
    g: GraphInputs, totals: list[dict[str, float]], cuts: pd.DatetimeIndex, *, seed: int = 0
) -> Iterator[pd.DataFrame]:
    """The rows of one shard's customers (`g`, a GraphInputs.take) at each cut, unassembled (see assemble): each
    cut's graph holds the shard's customers created by then, its communities refined from the previous cut's
    unless the cut starts a block (cut_blocks)."""
    starts = {b.start for b in cut_blocks(cuts)}
    label = None
    for i, (cut, total) in enumerate(zip(cuts, totals, strict=True)):
        t = _instant(cut)
        m = int(np.searchsorted(g.created, t, side="right"))  # created by t: the first m customers
        now = (g.e_ts <= t) & (g.e_s < m) & (g.e_d < m)
        s, d, kind = g.e_s[now], g.e_d[now], g.e_kind[now]
        spend = g.spend(t, m)
        # optimised at every cut: stale labels would leave newcomers as singletons in some rows and not in
        # others (train/serve skew)
        start = None
        if i not in starts and label is not None:  # the newcomers since the previous cut start alone
            start = np.concatenate([label, np.arange(len(label), m)])
        label = social.communities(m, s, d, seed=seed, start=start, pairs=int(total["pairs"]), names=g.number[:m])
        hot = (g.hot_ts <= t) & (g.hot_c < m)
        keen = np.bincount(g.hot_c[hot], minlength=m) > 0
        f = _at_cut(s, d, kind, m, g.won[:m] <= t, g.churned[:m] <= t, spend, g.followers[:m], label, keen, total)
        out = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in f.items()})
        out["community"] = g.number[label]  # its first customer's number: the same whichever shard holds it
        role = pd.Series(np.where(out["is_kol"] > 0, "opinion_leader", "consumer"), dtype="string")
        if g.role is not None:  # the CRM's own role (e.g. employee) wins over the derived one
            crm = pd.Series(g.role[:m])
            role = crm.where(crm.notna() & (crm != "consumer"), role)
        out["social_role"] = role.to_numpy()
        out.insert(0, NUMBER, g.number[:m])
        out.insert(0, TS, cut)
        out.insert(0, ENTITY, g.ids[:m])
        yield out


NUMBER = "_number"  # a shard row's customer number in the whole graph (assemble orders by it, then drops it)


def assemble(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One cut's rows from its shards' (shard_cuts): in customer number order, PageRank divided by its mean over
    everyone (1 = the average customer at the cut), communities named k0, k1, … in order of their first
    customer. The same frame whichever way the customers were sharded."""
    import math

    df = pd.concat(frames, ignore_index=True) if len(frames) != 1 else frames[0]
    df = df.sort_values(NUMBER, kind="stable").reset_index(drop=True)
    if len(df):
        # math.fsum: exactly rounded, so the mean does not depend on the shards' order
        df["pagerank"] = df["pagerank"] / (math.fsum(df["pagerank"].to_numpy()) / len(df))
    codes = pd.factorize(df.pop("community"))[0]
    community = pd.Series(codes).map("k{}".format).astype("string").to_numpy()
    df.insert(df.columns.get_loc("social_role"), "community_id", community)
    return df.drop(columns=[NUMBER])


class GraphInputs:
    """graph_feature_cuts' inputs as arrays, customers in (created_at, customer_id) order, every other table's
    rows pointing to them by number; `take` gives a shard's (its customers renumbered in the same order)."""

    def __init__(
        self,
        edges: pd.DataFrame,
        customers: pd.DataFrame,
        won_at: pd.Series,
        churned_at: pd.Series,
        transactions: pd.DataFrame,
        events: pd.DataFrame,
    ) -> None:
        cust = _in_order(customers)
        self.ids = cust[ENTITY].astype(object).to_numpy()
        self.created = _naive(cust["created_at"]).to_numpy()
        self.number = np.arange(len(self.ids))  # in the whole graph
        index = pd.Index(self.ids)
        # numbers, not the ids' strings: every cut copies the edges up to it; in time order (a customer referred
        # twice has the later referrer)
        ts = _naive(edges["ts"]).to_numpy()
        order = np.argsort(ts, kind="stable")
        s = _numbers(index, edges["src_customer_id"])[order]
        d = _numbers(index, edges["dst_customer_id"])[order]
        kind = pd.Series(edges["kind"]).astype(object).map(KINDS).fillna(3).to_numpy(np.int8)[order]
        ok = (s >= 0) & (d >= 0)
        self.e_ts, self.e_s, self.e_d, self.e_kind = ts[order][ok], s[ok], d[ok], kind[ok]
        self.won = _naive(pd.Series(self.ids).map(won_at)).to_numpy()
        self.churned = _naive(pd.Series(self.ids).map(churned_at)).to_numpy()
        c = _numbers(index, transactions[ENTITY])
        tx = transactions[c >= 0]
        self.tx_c, self.tx_ts = c[c >= 0], _naive(tx["ts"]).to_numpy()
        self.signed = np.where(tx.get("is_refund", False), -tx["amount"], tx["amount"]).astype(float)
        hot = events[events["event_type"].isin(HIGH_INTENT)]
        self.hot_ts, self.hot_c = _naive(hot["ts"]).to_numpy(), _numbers(index, hot[ENTITY])
        self.hot_ts, self.hot_c = self.hot_ts[self.hot_c >= 0], self.hot_c[self.hot_c >= 0]
        self.followers = (  # an optional attribute: without it, followers are counted from the follow edges alone
            pd.to_numeric(cust["social_followers"], errors="coerce").to_numpy(float)
            if "social_followers" in cust
            else np.full(len(self.ids), np.nan)
        )
        self.role = cust["role"].astype("string").to_numpy() if "role" in cust else None

    def spend(self, t: np.datetime64, m: int) -> np.ndarray:
        """Each of the first m customers' orders less refunds in the 365 days up to t."""
        in_year = (self.tx_ts <= t) & (self.tx_ts > t - np.timedelta64(365, "D")) & (self.tx_c < m)
        return np.bincount(self.tx_c[in_year], weights=self.signed[in_year], minlength=m)

    def take(self, nodes: np.ndarray) -> GraphInputs:
        """The inputs of these customers (numbers, ascending; whole components: no edge leaves them)."""
        local = np.full(len(self.created), -1)
        local[nodes] = np.arange(len(nodes))
        part = object.__new__(GraphInputs)
        for name in ("ids", "created", "number", "won", "churned", "followers"):
            setattr(part, name, getattr(self, name)[nodes])
        part.role = None if self.role is None else self.role[nodes]
        keep = local[self.e_s] >= 0
        part.e_ts, part.e_kind = self.e_ts[keep], self.e_kind[keep]
        part.e_s, part.e_d = local[self.e_s[keep]], local[self.e_d[keep]]
        mine = local[self.tx_c] >= 0
        part.tx_c, part.tx_ts, part.signed = local[self.tx_c[mine]], self.tx_ts[mine], self.signed[mine]
        mine = local[self.hot_c] >= 0
        part.hot_c, part.hot_ts = local[self.hot_c[mine]], self.hot_ts[mine]
        return part


def _numbers(index: pd.Index, ids: pd.Series) -> np.ndarray:
    """Each id's position in `index` (-1: none); ids given as categories are looked up once per category."""
    ids = pd.Series(ids)
    if isinstance(ids.dtype, pd.CategoricalDtype):
        codes = ids.cat.codes.to_numpy()
        found = np.append(index.get_indexer(ids.cat.categories.astype(str)), -1)
        return found[codes]  # code -1 (a missing id) takes the appended -1
    return index.get_indexer(ids)


def _instant(cut: pd.Timestamp) -> np.datetime64:
    return np.datetime64(pd.Timestamp(cut).tz_convert("UTC").tz_localize(None), "ns")


def _in_order(customers: pd.DataFrame) -> pd.DataFrame:
    """Customers by (created_at, customer_id): the graph's node numbers, the same in every build and process."""
    created = _naive(customers["created_at"])
    order = pd.DataFrame({"t": created.to_numpy(), "id": customers[ENTITY].astype(str).to_numpy()})
    return customers.iloc[order.sort_values(["t", "id"], kind="stable").index.to_numpy()]


def block_fingerprints(
    *,
    edges: pd.DataFrame,
    customers: pd.DataFrame,
    won_at: pd.Series,
    churned_at: pd.Series,
    transactions: pd.DataFrame,
    events: pd.DataFrame,
    cuts: pd.DatetimeIndex,
    seed: int = 0,
) -> list[str]:
    """One digest per block of cuts (cut_blocks) of every input row its computation reads: the customers created
    by its last cut, the edges, conversions, churns and high-intent events up to it, the orders from a year before
    its first cut. Equal digests, equal rows: a rebuild keeps the blocks whose digest it already has. Each table's
    rows are hashed once (pandas' stable row hash) and summed in time order, so a block's digest costs two lookups
    per table."""
    hot = events[events["event_type"].isin(HIGH_INTENT)]
    cols = [c for c in GRAPH_CUSTOMER_COLUMNS if c in customers]
    tx_cols = [c for c in (ENTITY, "ts", "amount", "is_refund") if c in transactions]
    sums = {
        "customers": _Sums(customers["created_at"], customers[cols]),
        "edges": _Sums(edges["ts"], edges[["src_customer_id", "dst_customer_id", "ts", "kind"]]),
        "won": _Sums(won_at, won_at.rename_axis(ENTITY).reset_index()),
        "churned": _Sums(churned_at, churned_at.rename_axis(ENTITY).reset_index()),
        "orders": _Sums(transactions["ts"], transactions[tx_cols]),
        "events": _Sums(hot["ts"], hot[[ENTITY, "ts", "event_type"]]),
    }
    out = []
    for block in cut_blocks(cuts):
        first, last = pd.Timestamp(cuts[block.start]), pd.Timestamp(cuts[block.stop - 1])
        parts = [GRAPH_VERSION, seed, BLOCK_DAYS, [pd.Timestamp(c).isoformat() for c in cuts[block.start : block.stop]]]
        for name, s in sums.items():
            parts.append(s.between(first - pd.Timedelta(days=365), last) if name == "orders" else s.upto(last))
        out.append(hashlib.sha256(repr(parts).encode()).hexdigest())
    return out


class _Sums:
    """A table's row hashes summed in time order (mod 2**64): the multiset of rows up to any time in two lookups."""

    def __init__(self, times: pd.Series, rows: pd.DataFrame) -> None:
        t = _naive(times.reset_index(drop=True)).to_numpy().view(np.int64)
        keep = t != np.iinfo(np.int64).min  # NaT: never happened
        h = pd.util.hash_pandas_object(rows.reset_index(drop=True), index=False).to_numpy()[keep]
        order = np.argsort(t[keep], kind="stable")
        self.t = t[keep][order]
        self.cum = np.concatenate([np.zeros(1, np.uint64), np.cumsum(h[order], dtype=np.uint64)])

    def _at(self, when: pd.Timestamp) -> int:
        return int(np.searchsorted(self.t, pd.Timestamp(when).value, side="right"))

    def upto(self, when: pd.Timestamp) -> tuple[int, int]:
        i = self._at(when)
        return i, int(self.cum[i])

    def between(self, after: pd.Timestamp, upto: pd.Timestamp) -> tuple[int, int]:
        lo, hi = self._at(after), self._at(upto)
        return hi - lo, (int(self.cum[hi]) - int(self.cum[lo])) % 2**64


def _at_cut(
    s: np.ndarray,
    d: np.ndarray,
    kind: np.ndarray,
    n: int,
    won: np.ndarray,
    churned: np.ndarray,
    spend: np.ndarray,
    followers_attr: np.ndarray,
    label: np.ndarray,
    keen: np.ndarray,
    total: dict[str, float],
) -> dict[str, np.ndarray]:
    """A shard's features at a cut; `total`: the whole graph's numbers (cut_totals)."""
    fol, ref, inter = kind == KINDS["follow"], kind == KINDS["referral"], kind == KINDS["interaction"]
    followers = np.bincount(d[fol], minlength=n).astype(float)
    audience = np.fmax(np.nan_to_num(followers_attr, nan=0.0), followers)  # linked account, else in-graph
    # endorsement graph: a follower endorses whom they follow, a referred person their referrer
    A = social.adjacency(np.concatenate([s[fol | inter], d[ref]]), np.concatenate([d[fol | inter], s[ref]]), n)
    F = social.adjacency(d[fol], s[fol], n)  # row: the followed account, columns: its followers
    size, depth = social.referral_trees(s[ref], d[ref], n)
    referrer = np.full(n, -1)
    referrer[d[ref]] = s[ref]
    U = social.adjacency(np.concatenate([s, d]), np.concatenate([d, s]), n)
    linked = (U > 0).astype(float)
    csize = np.bincount(label, minlength=n)[label].astype(float)
    cconv = np.bincount(label, weights=won.astype(float), minlength=n)[label] - won
    referred_spend = np.bincount(s[ref], weights=spend[d[ref]], minlength=n)
    reach = total["conversion_rate"] * total["median_order"] * social.ATTRIBUTION
    influence = referred_spend + audience * reach
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
        "pagerank": social.pagerank_weights(A),  # divided by the mean over every shard in assemble
        "reach_2hop": followers + F @ followers,
        "referral_count": np.bincount(s[ref], minlength=n),
        "referral_tree_size": size,
        "referral_tree_depth": depth,
        "referred_converted": np.bincount(s[ref], weights=won[d[ref]], minlength=n),
        "referred_spend_365d": referred_spend,
        "referrer_converted": np.where(referrer >= 0, won[np.maximum(referrer, 0)], np.nan),
        "community_size": csize,
        "community_conversion_rate": np.divide(cconv, csize - 1, out=np.full(n, np.nan), where=csize > 1),
        "neighbours": np.asarray(linked.sum(axis=1)).ravel(),
        "neighbour_customer_share": social.neighbour_share(linked, won),
        "neighbour_churned_share": social.neighbour_share(linked, churned),
        "is_kol": (followers_attr >= social.KOL_FOLLOWERS) | (followers >= total["kol_followers"]),
        "revenue_value_365d": revenue,
        "influence_value": influence,
        "social_value": revenue + influence,
    }


def _naive(ts: pd.Series) -> pd.Series:
    """UTC instants as naive datetime64[ns] (NaT kept), for fast numpy comparisons."""
    return pd.to_datetime(ts, utc=True).dt.tz_localize(None).astype("datetime64[ns]")
