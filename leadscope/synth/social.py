"""Social edges: referrals ("old brings new"), follows (preferential, KOL-heavy) and interactions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscope.synth.world import World


def referrals(rng: np.random.Generator, tr: pd.DataFrame) -> np.ndarray:
    """Referrer index for each referral-channel person (-1 otherwise); referrers are earlier, keen, visible."""
    n = len(tr)
    order = np.argsort(tr["created_day"].to_numpy(), kind="stable")
    w = (np.log1p(tr["followers"].to_numpy()) + 1.0) * np.exp(tr["intent"].to_numpy())
    cw = np.cumsum(w[order])
    pos = np.searchsorted(tr["created_day"].to_numpy()[order], tr["created_day"].to_numpy(), side="left")
    referred = (tr["source_channel"].to_numpy() == "referral") & (pos > 0)
    draw = rng.random(n) * cw[np.maximum(pos - 1, 0)]
    ref = order[np.minimum(np.searchsorted(cw, draw, side="right"), n - 1)]
    return np.where(referred, ref, -1)


def follows(rng: np.random.Generator, tr: pd.DataFrame, mean_out: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) pairs: src follows dst, an account that existed before src, chosen in proportion to the
    square root of its audience (power law). The influence a follow carries starts when the lead arrives."""
    n = len(tr)
    day = tr["created_day"].to_numpy()
    order = np.argsort(day, kind="stable")
    cw = np.cumsum(np.sqrt(tr["followers"].to_numpy().astype(float))[order])
    pos = np.searchsorted(day[order], day, side="left")  # accounts created before each person
    k = np.where(pos > 0, rng.poisson(mean_out, n), 0)
    src = np.repeat(np.arange(n), k)
    draw = rng.random(len(src)) * cw[pos[src] - 1]
    dst = order[np.minimum(np.searchsorted(cw, draw, side="right"), n - 1)]
    keep = src != dst
    return src[keep], dst[keep]


def exposure(tr: pd.DataFrame, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Hidden social pull on each person from the keen, visible accounts they follow (word of mouth)."""
    z, f = tr["intent"].to_numpy(), tr["followers"].to_numpy()
    pull = (z[dst] > 0.5) * np.log10(1.0 + f[dst]) / 2.0
    return np.bincount(src, weights=pull, minlength=len(tr))


def edges_table(
    rng: np.random.Generator,
    world: World,
    ids: np.ndarray,
    tr: pd.DataFrame,
    ref: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
) -> pd.DataFrame:
    """The `edges` table; an edge exists from when both ends exist (plus a lag)."""
    day = tr["created_day"].to_numpy()
    r = np.flatnonzero(ref >= 0)
    f_day = day[src] + rng.exponential(2.0, len(src))  # linked when the lead's social account is known
    inter = rng.random(len(src)) < 0.35
    i_day = f_day[inter] + rng.exponential(45.0, inter.sum())
    parts = [
        (ref[r], r, day[r], "referral"),
        (src, dst, f_day, "follow"),
        (dst[inter], src[inter], i_day, "interaction"),
    ]
    frames = []
    for a, b, d, kind in parts:
        ok = d < world.days
        frames.append(
            pd.DataFrame(
                {
                    "src_customer_id": ids[a[ok]],
                    "dst_customer_id": ids[b[ok]],
                    "ts": world.to_ts(d[ok]),
                    "kind": kind,
                    "weight": 1.0 if kind != "interaction" else rng.integers(1, 6, ok.sum()),
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values("ts", ignore_index=True)
