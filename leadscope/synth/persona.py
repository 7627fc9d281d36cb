"""The hidden lookalike segment's footprint: custom attributes and a community of its own.

The segment (8 % of people, drawn in `people.traits`) already leans to tech, bigger companies, more intent and
budget. Here it also shows in three custom CRM attributes and in follows among its members, each only a tilt:
no single column gives a member away, together they do. A separate random stream draws all of it, so the
rest of the company (and every model trained on it) stays as it was before the footprint existed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INTERESTS = np.array(["analytics", "automation", "crm", "ecommerce", "marketing", "security", "design", "finance"])
_INTEREST_P = {
    False: [0.08, 0.10, 0.16, 0.16, 0.18, 0.10, 0.12, 0.10],
    True: [0.42, 0.22, 0.06, 0.06, 0.08, 0.08, 0.04, 0.04],
}
JOB_LEVELS = np.array(["staff", "manager", "director", "vp", "c_level"])
_JOB_P = {False: [0.52, 0.30, 0.11, 0.05, 0.02], True: [0.18, 0.27, 0.30, 0.17, 0.08]}
COMPETITOR_P = {False: 0.12, True: 0.58}
MISSING = 0.12  # share of each attribute the CRM does not know


def attributes(rng: np.random.Generator, segment: np.ndarray) -> pd.DataFrame:
    """interest, job_level, competitor_purchase (True/False/None): custom attributes of `customers`."""
    n = len(segment)
    interest = np.empty(n, dtype=object)
    job = np.empty(n, dtype=object)
    for s in (False, True):
        m = segment == s
        interest[m] = INTERESTS[rng.choice(len(INTERESTS), m.sum(), p=_INTEREST_P[s])]
        job[m] = JOB_LEVELS[rng.choice(len(JOB_LEVELS), m.sum(), p=_JOB_P[s])]
    competitor = rng.random(n) < np.where(segment, COMPETITOR_P[True], COMPETITOR_P[False])
    out = pd.DataFrame(
        {"interest": interest, "job_level": job, "competitor_purchase": pd.Series(competitor, dtype=object)}
    )
    for c in out.columns:
        out.loc[rng.random(n) < MISSING, c] = None
    return out


def community_follows(
    rng: np.random.Generator, segment: np.ndarray, created_day: np.ndarray, mean_out: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst): segment members also follow earlier members (peers at events, in the same user groups)."""
    members = np.flatnonzero(segment)
    members = members[np.argsort(created_day[members], kind="stable")]
    k = rng.poisson(mean_out, len(members))
    k[0] = 0
    src_pos = np.repeat(np.arange(len(members)), k)
    dst_pos = np.floor(rng.random(len(src_pos)) * src_pos).astype(int)  # an earlier member, uniformly
    return members[src_pos], members[dst_pos]
