"""Request and response models of the public HTTP contract."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from leadscope.schema import FALSE, SCORED_MODELS, TRUE

MAX_IDS = 10_000
MAX_BATCH_IDS = 1_000_000
CustomerId = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]
_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")
YES_NO = "true/false, yes/no, y/n, t/f, on/off, 1/0"


def _iso_only(v: object) -> object:
    """pydantic reads a number as Unix seconds (or milliseconds, by its size): a client sending the wrong unit
    would silently write times decades away. Timestamps are ISO 8601 text only."""
    if isinstance(v, bool | int | float) or (isinstance(v, str) and _NUMERIC_TEXT.fullmatch(v)):
        raise ValueError("a number is not a timestamp: send ISO 8601 text, e.g. 2026-12-01T10:00:00Z")
    return v


def _yes_no(v: object) -> object:
    """The yes/no vocabulary of the import (leadscope/schema.py TRUE, FALSE), any case: one set of spellings for
    every boolean leadscope reads."""
    if isinstance(v, bool):
        return v
    word = v.strip().lower() if isinstance(v, str) else str(v) if isinstance(v, int | float) else None
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise ValueError(f"not a yes/no value ({YES_NO})")


# a time in a request body: ISO 8601 text (an offset or Z, or naive = UTC); a number is refused naming the field
IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]
YesNo = Annotated[bool, BeforeValidator(_yes_no)]


# the scored models of leadscope/schema.py, or a named custom outcome (`leadscope train outcome --name …`): a name
# that is neither is a 422 naming it (serving/routers/scores.py), so the set may grow without a new contract
ModelName = Annotated[
    str,
    StringConstraints(strict=True, pattern=r"^[a-z][a-z0-9_]{1,39}$"),
    Field(description=f"{', '.join(SCORED_MODELS)}, or a trained custom outcome's name."),
]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"customer_ids": ["C0000001"]}]})
    customer_ids: list[CustomerId] = Field(
        min_length=1, max_length=MAX_IDS, description=f"1 to {MAX_IDS:,} customer ids."
    )
    models: list[ModelName] = Field(
        default=["propensity"], min_length=1, max_length=3, description="Which scores to return per customer."
    )


class BatchScoreRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"customer_ids": ["C0000001", "C0000002"]}]}
    )
    customer_ids: list[CustomerId] = Field(
        min_length=1, max_length=MAX_BATCH_IDS, description=f"1 to {MAX_BATCH_IDS:,} customer ids."
    )
    models: list[ModelName] = Field(default=["propensity"], min_length=1, max_length=3)


class Reason(BaseModel):
    feature: str
    label: str
    value: float | str | None
    impact: float = Field(description="Signed contribution to the log-odds (TreeSHAP); > 0 raises the score.")


class Score(BaseModel):
    probability: float = Field(ge=0, le=1, description="Calibrated P(outcome within the model's horizon).")
    score: int = Field(ge=0, le=100, description="Percentile of the probability among the model's holdout rows.")
    grade: str = Field(pattern="^[ABCD]$", description="A: top 10%, B: next 20%, C: next 30%, D: the rest.")
    reasons: list[Reason]


class ValueEstimate(BaseModel):
    expected_spend_90d: float | None = Field(
        ge=0, description="Expected net spend over the next 90 days; null when the model has no 90-day horizon."
    )
    expected_spend_365d: float | None = Field(
        ge=0, description="Expected net spend over the next 365 days; null when the history was too short for it."
    )
    expected_spend: dict[str, float] = Field(
        description='Expected net spend per horizon the model serves, e.g. {"90d": 120.5, "365d": 410.0}.'
    )
    expected_orders: dict[str, float] = Field(
        description="Expected repeat orders per horizon (BG/NBD); empty when the model has none."
    )
    methods: dict[str, str] = Field(
        description="Per horizon, the method that serves it (lightgbm or bgnbd_gamma_gamma)."
    )
    reasons: list[Reason]


class ItemError(BaseModel):
    code: str
    message: str


class ScoreItem(BaseModel):
    customer_id: str
    propensity: Score | None = Field(None, description="P(deal won within the horizon), when asked for.")
    churn: Score | None = Field(None, description="P(churn within the horizon), when asked for.")
    value: ValueEstimate | None = Field(None, description="Expected spend of a customer, when asked for.")
    outcomes: dict[str, Score] | None = Field(
        None, description="Scores of the custom outcomes asked for (`leadscope train outcome`), by name."
    )
    error: ItemError | None = None


class ModelInfo(BaseModel):
    name: str
    version: str
    feature_service: str
    limits: str | None = Field(
        None, description="Set for a cold-start model (trained below the data minimums): what it rests on."
    )


class ScoreResponse(BaseModel):
    models: list[ModelInfo]
    results: list[ScoreItem]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    loading: bool = Field(False, description="True while models and features are still loading after start-up.")
    warming: bool = Field(False, description="True while every customer's score is being cached (serving meanwhile).")
    models: list[ModelInfo]
    feature_store: str
    live_applier: str = Field(
        "thread",
        description="Where live records are applied: process (a child process), starting (the child is loading; "
        "the server applies meanwhile) or thread (in the server).",
    )
    live_applier_restarts: int = Field(
        0, description="Times the applier loop failed and was started again since the server started."
    )
    live_applier_error: str | None = Field(
        None, description="The applier loop's last failure (exception type and time), if it ever failed."
    )
    live_intake: str = Field(
        "thread",
        description="Where POST /v1/events stores records: process (the intake process), starting (a thread of "
        "the server meanwhile) or thread.",
    )
