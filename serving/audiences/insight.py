"""What sets an audience apart from the population: attribute lift, a cross of two attributes, overlap with another
audience, expected conversion of its open leads."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training import insight as insight_lib
from training.lookalike import Population
from training.tracking import Champion


def attributes_of(pop: Population) -> pd.DataFrame:
    """Insight attributes of the population, computed once per snapshot."""
    if "attributes" not in pop.derived:
        pop.derived["attributes"] = insight_lib.attributes(pop.frame)
    return pop.derived["attributes"]


def cross_pair(spec: str | None, attrs: pd.DataFrame) -> list[str] | None:
    """The two attributes of a cross-analysis from "a,b"; ValueError (field `cross`) unless two different known
    attributes are named. The API and the CLI both parse it here."""
    if spec is None:
        return None
    pair = [a.strip() for a in spec.split(",")]
    if len(pair) != 2 or any(a not in attrs for a in pair) or pair[0] == pair[1]:
        raise ValueError(f"cross: give two different attributes of {', '.join(attrs.columns)}")
    return pair


def report(
    pop: Population,
    attrs: pd.DataFrame,
    rows: np.ndarray,
    *,
    champion: Champion | None,
    horizon_days: int,
    pair: list[str] | None = None,
    other: np.ndarray | None = None,
    compare: str | None = None,
    top: int = 10,
    audience_id: str = "",
    size: int = 0,
) -> dict:
    out = {
        "audience_id": audience_id,
        "size": size or len(rows),
        "population": len(pop),
        "distinguishing": [x.as_dict() for x in insight_lib.distinguishing(attrs, rows, top=top)],
        "expected_conversion": expected_conversion(champion, pop, rows, horizon_days),
        "attributes": list(attrs.columns),
    }
    if pair:
        out["cross"] = {"attributes": pair, "cells": insight_lib.cross(attrs, rows, *pair)}
    if other is not None:
        out["overlap"] = {"compare": compare, **insight_lib.overlap(attrs, rows, other, top=top)}
    return out


def expected_conversion(champion: Champion | None, pop: Population, rows: np.ndarray, horizon_days: int) -> dict | None:
    """Mean calibrated P(convert within the horizon) over the audience's open leads (not yet customers), next to
    the same for every open lead in the population."""
    if champion is None or pop.frame is None:
        return None
    scorer = champion.model
    leads = rows[~pop.bought[rows]]
    info = {"model": champion.name, "version": champion.version, "horizon_days": horizon_days}
    if not len(leads):
        return {"leads": 0, "rate": None, **info}
    if "lead_probability" not in pop.derived or pop.derived["lead_probability"][0] != champion.version:
        p_all = scorer.probability(scorer.encoder.transform(pop.frame))
        pop.derived["lead_probability"] = (champion.version, p_all)
    p_all = pop.derived["lead_probability"][1]
    return {
        "leads": int(len(leads)),
        "rate": round(float(p_all[leads].mean()), 4),
        "expected_conversions": round(float(p_all[leads].sum()), 1),
        "population_rate": round(float(p_all[~pop.bought].mean()), 4),
        **info,
    }
