"""Exact path-dependent TreeSHAP for LightGBM boosters from per-leaf tables (the "FastTreeSHAP v2" idea).

LightGBM's own TreeSHAP (`predict(pred_contrib=True)`) walks every tree for every row: about a quarter of a
millisecond per row for the propensity model, the largest part of a cold /v1/scores request and of a batch with
reasons. The same values can be computed from tables built once per model (Yang 2021, "Fast TreeSHAP", algorithm
v2): a leaf's contribution to each feature on its path depends on the row only through which of the path's
features the row "agrees" with (follows the path at every node splitting on that feature), so it is precomputed for
every agreement pattern (at most 2^depth per leaf). Scoring a row then needs the tree decisions (vectorised
comparisons), one table lookup per leaf and a sum per feature: no tree walk.

Why not a library: the `fasttreeshap` package implements this, but as a fork of shap 0.39 (2022, unmaintained,
source only, built against the numpy 1 C API); shap's own TreeExplainer walks trees like LightGBM does. The
decisions here follow LightGBM's (numerical splits with missing types None/Zero/NaN and default_left, categorical
splits as bitsets) and `matches()` checks the result against LightGBM on the model's own thresholds; a model this
module cannot express exactly (linear trees, several classes) is refused by `build`, and callers use LightGBM.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("leadscope.training")

ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float): |x| <= this is read as 0.0
CHUNK_CELLS = 1 << 24  # decisions (or table values) per chunk of rows: 128 MB of float64
MAX_NODES = 10  # a tree's table has 2^splits rows: bigger trees (the value model's 15 leaves) keep LightGBM's walk


class Unsupported(Exception):
    """The booster has a structure the tables do not express; use LightGBM's pred_contrib."""


@dataclass
class Tables:
    n_features: int
    nodes: int  # internal nodes per tree, padded (a padding node always goes left and weighs nothing)
    # internal nodes of all trees, tree by tree: feature, threshold, where a missing value goes
    node_feature: np.ndarray  # (T * K,)
    node_threshold: np.ndarray  # (T * K,) numerical threshold (+inf for padding and categorical nodes)
    nan_left: np.ndarray  # (T * K,) bool: where NaN goes (missing type None: as 0.0; NaN: default_left)
    zero_nodes: np.ndarray  # nodes of missing type Zero: |x| <= 1e-35 (and NaN) go to default_left
    zero_left: np.ndarray
    cat_nodes: np.ndarray  # categorical nodes
    cat_left: np.ndarray  # (C, K) bool: category k goes left at categorical node c
    weights: np.ndarray  # (K,) 2^local node
    table: np.ndarray  # (T * 2^K, S): each tree's contribution per decision pattern and feature slot
    slot_feature: np.ndarray  # (T, S) feature of each slot (n_features where unused: the bias column)
    bias: float

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features + 1): per-feature contributions and the bias last, as LightGBM's pred_contrib. Rows go
        through in chunks of about CHUNK_CELLS decisions and table values: a whole holdout at once held rows ×
        trees × slots floats (14.9 GiB for the 200,000-customer company's propensity plots)."""
        X = np.asarray(X, dtype=np.float64)
        trees, slots = self.slot_feature.shape
        rows = max(1, CHUNK_CELLS // (trees * max(self.nodes, slots, 1)))
        if len(X) <= rows:
            return self._contributions(X)
        return np.concatenate([self._contributions(X[i : i + rows]) for i in range(0, len(X), rows)])

    def _contributions(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        trees = self.slot_feature.shape[0]
        left = self._decisions(X).reshape(n, trees, self.nodes)
        pattern = left @ self.weights + np.arange(trees) * (1 << self.nodes)  # (n, T) row of each tree's table
        vals = self.table[pattern]  # (n, T, S)
        width = self.n_features + 1
        index = (np.arange(n)[:, None, None] * width + self.slot_feature).ravel()
        out = np.bincount(index, weights=vals.ravel(), minlength=n * width).reshape(n, width)
        out[:, -1] = self.bias
        return out

    def _decisions(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            tiny = np.abs(X) <= ZERO
        if tiny.any():  # LightGBM drops |x| <= kZeroThreshold from a dense row: it is read as 0.0
            X = np.where(tiny, 0.0, X)
        v = X[:, self.node_feature]  # (n, T * K)
        nan = np.isnan(v)
        with np.errstate(invalid="ignore"):
            left = v <= self.node_threshold
        if nan.any():
            left = np.where(nan, self.nan_left, left)
        if len(self.zero_nodes):
            z = v[:, self.zero_nodes]
            left[:, self.zero_nodes] = np.where(np.isnan(z) | (z == 0.0), self.zero_left, left[:, self.zero_nodes])
        if len(self.cat_nodes):
            c = v[:, self.cat_nodes]
            k = self.cat_left.shape[1]
            with np.errstate(invalid="ignore"):
                c = np.trunc(c)  # LightGBM casts to int: -0.5 is category 0, 1.7 is 1; NaN and negatives go right
                ok = ~np.isnan(c) & (c >= 0) & (c < k)
            idx = np.where(ok, c, 0).astype(np.int64)
            left[:, self.cat_nodes] = ok & self.cat_left[np.arange(len(self.cat_nodes)), idx]
        return left


def build(booster: object) -> Tables:
    """The tables of a LightGBM booster (binary or regression, one tree per iteration, small trees)."""
    model = booster.dump_model()
    if model.get("num_tree_per_iteration", 1) != 1:
        raise Unsupported("several trees per iteration")
    n_features = model["max_feature_idx"] + 1
    trees = []  # per tree: (nodes [(feature, threshold, nan_left, missing, default_left, categories)], leaves)
    bias = 0.0
    for info in model["tree_info"]:
        root = info["tree_structure"]
        if "leaf_value" in root:  # a single-leaf tree: a constant
            bias += root["leaf_value"]
            continue
        nodes: list[tuple] = []
        leaves: list[tuple] = []  # (value, [(local node, went_left, feature, cover fraction)])
        stack = [(root, [])]
        while stack:
            node, path = stack.pop()
            if "leaf_value" in node:
                leaves.append((node["leaf_value"], path))
                continue
            if "leaf_coeff" in node:
                raise Unsupported("linear trees")
            k = len(nodes)
            missing = node["missing_type"]
            if node["decision_type"] == "==":
                cats = [int(c) for c in str(node["threshold"]).split("||")]
                nodes.append((node["split_feature"], np.inf, False, missing, False, cats))
            elif node["decision_type"] == "<=":
                thr, dl = float(node["threshold"]), bool(node["default_left"])
                nan_left = (0.0 <= thr) if missing == "None" else dl
                nodes.append((node["split_feature"], thr, nan_left, missing, dl, None))
            else:
                raise Unsupported(f"decision type {node['decision_type']}")
            count = node["internal_count"]
            for child, went_left in ((node["left_child"], True), (node["right_child"], False)):
                c = child.get("internal_count", child.get("leaf_count", 0))
                stack.append((child, [*path, (k, went_left, node["split_feature"], c / count if count else 0.0)]))
        trees.append((nodes, leaves))
    if not trees:
        raise Unsupported("no splits")
    K = max(len(nodes) for nodes, _ in trees)
    if K > MAX_NODES:
        raise Unsupported(f"trees with {K} splits (at most {MAX_NODES})")
    S = max(len({n[0] for n in nodes}) for nodes, _ in trees)
    T, P = len(trees), 1 << K
    feature = np.zeros(T * K, dtype=np.int64)
    threshold = np.full(T * K, np.inf)
    nan_left = np.ones(T * K, dtype=bool)
    zero, zero_left, cats = [], [], []
    table = np.zeros((T, P, S))
    slot_feature = np.full((T, S), n_features, dtype=np.int64)
    bits = (np.arange(P)[:, None] >> np.arange(K)) & 1  # (P, K): 1 where the pattern goes left at local node k
    for t, (nodes, leaves) in enumerate(trees):
        order = list(dict.fromkeys(n[0] for n in nodes))
        slot_feature[t, : len(order)] = order
        for k, (f, thr, nl, missing, dl, cat) in enumerate(nodes):
            g = t * K + k
            feature[g], threshold[g], nan_left[g] = f, thr, nl
            if missing == "Zero" and cat is None:
                zero.append(g)
                zero_left.append(dl)
            if cat is not None:
                cats.append((g, cat))
        for value, path in leaves:
            feats = list(dict.fromkeys(f for _, _, f, _ in path))
            z = np.array([math.prod(fr for _, _, f2, fr in path if f2 == f) for f in feats])
            agree = np.ones((P, len(feats)), dtype=bool)
            for k, went_left, f, _ in path:
                agree[:, feats.index(f)] &= bits[:, k] == int(went_left)
            leaf_pattern = agree @ (1 << np.arange(len(feats)))
            contrib = _leaf_table(value, z)[leaf_pattern]  # (P, m)
            for j, f in enumerate(feats):
                table[t, :, order.index(f)] += contrib[:, j]
            bias += value * float(np.prod(z))
    k = max((max(c) + 1 for _, c in cats), default=0)
    cat_left = np.zeros((len(cats), k), dtype=bool)
    for row, (_, c) in enumerate(cats):
        cat_left[row, c] = True
    return Tables(
        n_features=n_features,
        nodes=K,
        node_feature=feature,
        node_threshold=threshold,
        nan_left=nan_left,
        zero_nodes=np.array(zero, dtype=np.int64),
        zero_left=np.array(zero_left, dtype=bool),
        cat_nodes=np.array([g for g, _ in cats], dtype=np.int64),
        cat_left=cat_left,
        weights=(1 << np.arange(K)).astype(np.int64),
        table=table.reshape(T * P, S),
        slot_feature=slot_feature,
        bias=bias,
    )


def _leaf_table(value: float, z: np.ndarray) -> np.ndarray:
    """(2^m, m): a leaf's Shapley contribution to each of its m path features, for every agreement pattern.

    With o_j = 1 where the row agrees with the path on feature j and z_j the path's cover fraction of j,
    phi_i = value * (o_i - z_i) * sum_k w_k * e_k, where e_k sums prod(o_S) * prod(z_rest) over the k-subsets S of
    the other features and w_k = k! (m - k - 1)! / m!: the generating polynomial prod_{j != i} (z_j + o_j y)."""
    m = len(z)
    patterns = np.arange(1 << m)
    o = ((patterns[:, None] >> np.arange(m)) & 1).astype(float)  # (P, m)
    w = np.array([math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m) for k in range(m)])
    out = np.zeros((1 << m, m))
    for i in range(m):
        poly = np.zeros((1 << m, m))  # coefficients of y^0..y^(m-1), one polynomial per pattern
        poly[:, 0] = 1.0
        for j in range(m):
            if j == i:
                continue
            shifted = np.zeros_like(poly)
            shifted[:, 1:] = poly[:, :-1] * o[:, j : j + 1]
            poly = poly * z[j] + shifted
        out[:, i] = value * (o[:, i] - z[i]) * (poly @ w)
    return out


def probe(booster: object, n: int = 512, seed: int = 0) -> np.ndarray:
    """Rows that take every branch of the model: each feature at (and just around) its split thresholds and
    categories, with zeros, tiny values, negatives and NaN mixed in."""
    model = booster.dump_model()
    points: dict[int, list[float]] = {f: [0.0, 1.0] for f in range(model["max_feature_idx"] + 1)}
    stack = [t["tree_structure"] for t in model["tree_info"]]
    while stack:
        node = stack.pop()
        if "leaf_value" in node:
            continue
        if node["decision_type"] == "==":
            points[node["split_feature"]] += [float(c) for c in str(node["threshold"]).split("||")] + [-1.0]
        else:
            points[node["split_feature"]].append(float(node["threshold"]))
        stack += [node["left_child"], node["right_child"]]
    rng = np.random.default_rng(seed)
    X = np.empty((n, len(points)))
    for f, cand in points.items():
        v = rng.choice(np.array(cand), n) + rng.choice([-1e-9, 0.0, 0.0, 1e-9, 0.5, -0.5, 1e-40], n)
        v[rng.random(n) < 0.1] = np.nan
        v[rng.random(n) < 0.05] = 0.0
        X[:, f] = v
    return X


def matches(tables: Tables, booster: object, X: np.ndarray, atol: float = 1e-9) -> bool:
    """Whether the tables give LightGBM's own contributions on X."""
    want = booster.predict(X, pred_contrib=True, num_threads=1)
    return bool(np.allclose(tables.contributions(X), want, atol=atol, rtol=1e-9))


def tables_for(booster: object) -> Tables | None:
    """The booster's tables if they express it and give LightGBM's values on probe rows, else None (the caller
    keeps LightGBM's walk: slower, never different)."""
    try:
        tables = build(booster)
    except Unsupported as exc:
        log.info("TreeSHAP tables not used: %s", exc)
        return None
    if not matches(tables, booster, probe(booster)):
        log.warning("TreeSHAP tables disagree with LightGBM on probe rows; using LightGBM's own")
        return None
    return tables
