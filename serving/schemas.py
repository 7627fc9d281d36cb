"""Request and response models of the public HTTP contract."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_IDS = 10_000
CustomerId = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"customer_ids": ["C0000001"]}]})
    customer_ids: list[CustomerId] = Field(
        min_length=1, max_length=MAX_IDS, description=f"1 to {MAX_IDS:,} customer ids."
    )


class Reason(BaseModel):
    feature: str
    label: str
    value: float | str | None
    impact: float = Field(description="Signed contribution to the log-odds (TreeSHAP); > 0 raises the score.")


class Propensity(BaseModel):
    probability: float = Field(ge=0, le=1, description="Calibrated P(won within the horizon).")
    score: int = Field(ge=0, le=100, description="Percentile of the probability among holdout leads.")
    grade: str = Field(pattern="^[ABCD]$", description="A: top 10%, B: next 20%, C: next 30%, D: the rest.")
    reasons: list[Reason]


class ItemError(BaseModel):
    code: str
    message: str


class ScoreItem(BaseModel):
    customer_id: str
    propensity: Propensity | None = None
    error: ItemError | None = None


class ModelInfo(BaseModel):
    name: str
    version: str
    feature_service: str


class ScoreResponse(BaseModel):
    model: ModelInfo
    results: list[ScoreItem]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    models: list[ModelInfo]
    feature_store: str
