"""Lookalike audiences: who in the population resembles a seed of customers.

Two-stage, as Pinterest and Tencent describe theirs, with three signals blended by weights learned per seed:
1. a positive-unlabelled (PU) classifier: LightGBM on the seed (1) against a sample of everyone else (0). Under
   "seed members are picked at random from the segment" its score ranks people like P(in the segment);
2. similarity in a customer embedding (PCA of the whole population's features, learned once per snapshot) to
   the nearest of a few seed centroids, which keeps distinct kinds of seed members apart;
3. graph proximity: seed members among a person's connections (one and two hops), normalised by degree.
Part of the seed is held out to pick the blend: the weights that put most held-out seed members inside an
audience of the requested size, measured against a held-out sample of everyone else.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from training.scorer import Encoder

EXCLUSIONS = ("seed", "customers", "opted_out")
MIN_SEED = 100
METHOD = "pu_lightgbm+embedding+graph"
UNLABELLED_PER_SEED = 10  # unlabelled rows sampled per seed member for the classifier (at most MAX_UNLABELLED)
MAX_UNLABELLED = 60_000
VALIDATION_UNLABELLED = 20_000
EMBEDDING_DIMS = 16
PU_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 7,  # small trees, strong L2: seeds of 100-500 people overfit bigger ones (measured)
    "min_child_samples": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
ROUNDS = 150
# blend weights tried on the held-out seed: (classifier, embedding, graph)
GRID = tuple(
    (round(1 - e - g, 2), e, g) for e in (0.0, 0.1, 0.2, 0.3) for g in (0.0, 0.1, 0.2, 0.3, 0.4) if e + g <= 0.6
)


@dataclass
class Population:
    """Everyone an audience can be drawn from, as one feature matrix (a snapshot of the feature store)."""

    ids: np.ndarray
    X: np.ndarray  # float32, encoder order, NaN = missing
    encoder: Encoder
    graph: sp.csr_matrix | None  # undirected 0/1 adjacency over rows
    bought: np.ndarray  # has ordered (a customer, not a lead)
    opted_out: np.ndarray  # no consent to ad personalisation
    as_of: str
    frame: pd.DataFrame | None = None  # the feature frame behind X (insight, propensity)
    derived: dict = field(default_factory=dict)  # things computed once per snapshot (insight attributes)
    _embedding: np.ndarray | None = field(default=None, repr=False)
    _index: pd.Index | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> pd.Index:
        if self._index is None:
            self._index = pd.Index(self.ids)
        return self._index

    def resolve(self, customer_ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """(row numbers of the distinct known ids, the unknown ids in the order given)."""
        distinct = list(dict.fromkeys(customer_ids))
        rows = self.index.get_indexer(distinct)
        return np.sort(rows[rows >= 0]), [c for c, r in zip(distinct, rows, strict=True) if r < 0]

    @property
    def embedding(self) -> np.ndarray:
        if self._embedding is None:
            self._embedding = embed(self.X, self.encoder.categorical_indices)
        return self._embedding


def embed(X: np.ndarray, categorical: list[int], dims: int = EMBEDDING_DIMS, seed: int = 0) -> np.ndarray:
    """Unit-length rows of a PCA embedding: numeric features log-scaled and standardised (missing = mean),
    categoricals one-hot (their 12 most common values). Fitted on at most 50k rows, applied to all."""
    num = [j for j in range(X.shape[1]) if j not in set(categorical)]
    Z = np.sign(X[:, num]) * np.log1p(np.abs(X[:, num]))
    mu, sd = np.nanmean(Z, axis=0), np.nanstd(Z, axis=0)
    Z = np.nan_to_num((Z - mu) / np.where(sd > 0, sd, 1.0), nan=0.0)
    parts = [Z.astype(np.float32)]
    for j in categorical:
        codes = X[:, j]
        values, counts = np.unique(codes[~np.isnan(codes)], return_counts=True)
        for v in values[np.argsort(-counts)][:12]:
            parts.append((codes == v).astype(np.float32)[:, None])
    M = np.hstack(parts)
    rng = np.random.default_rng(seed)
    fit_rows = rng.choice(len(M), min(len(M), 50_000), replace=False)
    pca = PCA(n_components=min(dims, M.shape[1]), svd_solver="randomized", random_state=seed).fit(M[fit_rows])
    E = pca.transform(M).astype(np.float32)
    return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-6)


@dataclass
class Built:
    members: np.ndarray  # row numbers, best first
    similarity: np.ndarray  # blended percentile score in [0, 1] of each member, non-increasing
    seed_rows: np.ndarray
    weights: tuple[float, float, float]
    metrics: dict[str, float]
    candidates: int
    random_state: int


def random_state_for(seed_ids: list[str], size: int, exclude: tuple[str, ...]) -> int:
    """Same seed list, size and exclusions → same random draws → the same audience (for the same snapshot)."""
    key = json.dumps([sorted(set(seed_ids)), size, sorted(exclude)])
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")


def candidate_mask(pop: Population, seed_rows: np.ndarray, exclude: tuple[str, ...]) -> np.ndarray:
    ok = np.ones(len(pop), bool)
    if "seed" in exclude:
        ok[seed_rows] = False
    if "customers" in exclude:
        ok &= ~pop.bought
    if "opted_out" in exclude:
        ok &= ~pop.opted_out
    return ok


def build(
    pop: Population,
    seed_rows: np.ndarray,
    size: int,
    exclude: tuple[str, ...] = ("seed",),
    *,
    random_state: int = 0,
    threads: int = 1,
) -> Built:
    """The `size` candidates most like the seed, ranked. Raises ValueError naming the field on bad input."""
    t0 = time.perf_counter()
    if len(seed_rows) < MIN_SEED:
        raise ValueError(f"seed_customer_ids: {len(seed_rows)} resolved, at least {MIN_SEED} needed")
    cand = candidate_mask(pop, seed_rows, exclude)
    n_cand = int(cand.sum())
    if size > n_cand:
        raise ValueError(f"size: {size} asked, only {n_cand} candidates remain after the exclusions")
    rng = np.random.default_rng(random_state)
    is_seed = np.zeros(len(pop), bool)
    is_seed[seed_rows] = True
    others = np.flatnonzero(~is_seed)
    n_unl = min(len(others), MAX_UNLABELLED, max(UNLABELLED_PER_SEED * len(seed_rows), 5_000))
    pick = rng.permutation(len(others))
    unlabelled = np.sort(others[pick[:n_unl]])
    validation = np.sort(others[pick[n_unl : n_unl + VALIDATION_UNLABELLED]])
    if len(validation) < 100:  # a small population: validate against the classifier's own sample
        validation = unlabelled
    shuffled = rng.permutation(seed_rows)
    held, kept = np.sort(shuffled[: max(len(seed_rows) // 5, 20)]), np.sort(shuffled[max(len(seed_rows) // 5, 20) :])
    params = {**PU_PARAMS, "num_threads": threads, "seed": random_state % 2**31}
    # 1. pick the blend on held-out seed members
    clf = _fit(pop, kept, unlabelled, params)
    parts = _signals(pop, clf, kept, np.concatenate([held, validation]), random_state, threads)
    best, metrics = _choose_blend(parts, len(held), len(validation), size / n_cand)

    # 2. the audience: the classifier refitted on the whole seed, every candidate scored
    clf = _fit(pop, seed_rows, unlabelled, params)
    cand_rows = np.flatnonzero(cand)
    parts = _signals(pop, clf, seed_rows, cand_rows, random_state, threads, need=best)
    score = sum(wi * _pct(v) for wi, v in zip(best, parts, strict=True) if wi)
    order = np.lexsort((cand_rows, -score))[:size]  # ties broken by row: deterministic
    metrics["build_seconds"] = time.perf_counter() - t0
    return Built(
        members=cand_rows[order],
        similarity=np.round(score[order], 6),
        seed_rows=np.asarray(seed_rows),
        weights=best,
        metrics=metrics,
        candidates=n_cand,
        random_state=random_state,
    )


def _choose_blend(
    parts: list[np.ndarray], n_held: int, n_validation: int, share: float
) -> tuple[tuple[float, ...], dict[str, float]]:
    """The grid weights whose blend recalls the most held-out seed members (the first `n_held` rows of each
    signal) around the requested audience share; with each signal's AUC and the recalls as metrics."""
    label = np.r_[np.ones(n_held), np.zeros(n_validation)]
    metrics = {
        f"val_auc_{k}": float(roc_auc_score(label, v)) for k, v in zip(("pu", "emb", "graph"), parts, strict=True)
    }
    ranks = [_pct(v) for v in parts]
    # recall around the requested size (half, same, double): one size alone is too few held-out members to choose by
    shares = [min(f * share, 0.5) for f in (0.5, 1.0, 2.0)]
    best, best_recall, at_size = GRID[0], -1.0, 0.0
    for w in GRID:
        s = sum(wi * r for wi, r in zip(w, ranks, strict=True))
        cuts = np.quantile(s[n_held:], [1.0 - q for q in shares])
        recalls = [float((s[:n_held] > c).mean()) for c in cuts]
        if np.mean(recalls) > best_recall + 1e-9:
            best, best_recall, at_size = w, float(np.mean(recalls)), recalls[1]
        if w == GRID[0]:
            metrics["val_recall_pu_only"] = recalls[1]
    metrics["val_recall_at_size"] = at_size
    return best, metrics


def _fit(pop: Population, positive: np.ndarray, unlabelled: np.ndarray, params: dict) -> lgb.Booster:
    X = np.vstack([pop.X[positive], pop.X[unlabelled]])
    y = np.r_[np.ones(len(positive)), np.zeros(len(unlabelled))]
    p = {**params, "scale_pos_weight": len(unlabelled) / len(positive)}
    data = lgb.Dataset(X, y, categorical_feature=pop.encoder.categorical_indices, free_raw_data=True)
    return lgb.train(p, data, ROUNDS)


def _signals(
    pop: Population,
    clf: lgb.Booster,
    seed_rows: np.ndarray,
    rows: np.ndarray,
    random_state: int,
    threads: int,
    need: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> list[np.ndarray]:
    """(classifier margin, embedding similarity, graph proximity) of `rows`; a signal with weight 0 is zeros."""
    zeros = np.zeros(len(rows), np.float32)
    pu = clf.predict(pop.X[rows], raw_score=True, num_threads=threads) if need[0] else zeros
    emb = zeros
    if need[1]:
        E = pop.embedding
        k = int(np.clip(len(seed_rows) // 50, 1, 8))
        km = KMeans(n_clusters=k, n_init=3, random_state=random_state % 2**31).fit(E[seed_rows])
        C = km.cluster_centers_ / np.maximum(np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True), 1e-6)
        emb = (E[rows] @ C.T.astype(np.float32)).max(axis=1)
    graph = zeros
    if need[2] and pop.graph is not None:
        graph = proximity(pop.graph, seed_rows)[rows]
    return [np.asarray(pu), emb, graph]


def proximity(A: sp.csr_matrix, seed_rows: np.ndarray) -> np.ndarray:
    """Seed members among one's connections over √degree, plus a third of the two-hop share. Two sparse
    products do what networkx's personalised PageRank would in pure Python, in milliseconds on 1M nodes."""
    s = np.zeros(A.shape[0], np.float32)
    s[seed_rows] = 1.0
    deg = np.maximum(np.asarray(A.sum(axis=1)).ravel(), 1.0)
    hop1 = A @ s
    return hop1 / np.sqrt(deg) + (A @ (hop1 / deg)) / 3.0


def _pct(v: np.ndarray) -> np.ndarray:
    """Percentile ranks in (0, 1]: puts signals on different scales on one footing."""
    return rankdata(v, method="average") / len(v)


def centroid_baseline(X: np.ndarray, seed_rows: np.ndarray, candidates: np.ndarray, size: int) -> np.ndarray:
    """Brute-force cosine to the seed's centroid on standardised features (the benchmark's baseline)."""
    mu, sd = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    Z = np.nan_to_num((X - mu) / np.where(sd > 0, sd, 1.0), nan=0.0).astype(np.float32)
    c = Z[seed_rows].mean(axis=0)
    Zc = Z[candidates]
    cos = Zc @ c / (np.linalg.norm(Zc, axis=1) * np.linalg.norm(c) + 1e-9)
    return candidates[np.lexsort((candidates, -cos))[:size]]
