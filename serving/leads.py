"""Scoring a lead that is not stored (POST /v1/leads/score): its attributes and recent events or orders arrive
inline, its features are computed as of the request time with the same feature functions the batch build uses
(features/engineering.py), and the champions score them. Nothing is written.

Attributes are read by the data contract of the company's own profile: a column the feature build typed as a
number must parse as one, a text column stays text, and an attribute the company's customers table does not have
is refused by name (it could never be a feature)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from features import engineering, live
from features.inputs import split_view
from leadscope.schema import CHANNELS, ENTITY, RESERVED_COLUMNS, TS
from leadscope.tables import FeatureMeta
from serving.schemas import IsoTime

MAX_ITEMS = 1_000
INLINE_ID = "__inline_lead__"
Attribute = str | float | bool | None
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def _in_range(t: datetime) -> datetime:
    aware = t if t.tzinfo else t.replace(tzinfo=UTC)
    if not EARLIEST <= aware <= LATEST:
        raise ValueError("must be between 1900 and 2200")
    return t


Moment = Annotated[IsoTime, AfterValidator(_in_range)]


def _cells(v: dict[str, Attribute]) -> dict[str, Attribute]:
    for k, cell in v.items():
        if len(k) > 128:
            raise ValueError("an attribute name is longer than 128 characters")
        if isinstance(cell, str) and len(cell) > 4_096:
            raise ValueError(f"{k}: longer than 4,096 characters")
    return v


# Customer attributes by column name, as in the company's export (an inline lead's, a live customer record's).
Attributes = Annotated[dict[str, Attribute], AfterValidator(_cells)]


class InlineEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ts: Moment = Field(description="When it happened (ISO 8601; naive times are UTC).")
    channel: Literal[CHANNELS]  # type: ignore[valid-type] - the event channels of leadscope/schema.py
    event_type: str = Field(min_length=1, max_length=64, description="e.g. pricing_view, form_submit, page_view.")


class InlineOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ts: Moment
    amount: float = Field(ge=0, le=1e12, allow_inf_nan=False)
    category: str | None = Field(None, max_length=128)
    is_refund: bool = False


class Lead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    created_at: Moment = Field(description="When the lead was created (ISO 8601).")
    attributes: Attributes = Field(
        default_factory=dict, max_length=200, description="Customer attributes by column name, as in your export."
    )


class LeadScoreRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "lead": {"created_at": "2026-06-20T10:00:00Z", "attributes": {"country": "US"}},
                    "events": [{"ts": "2026-06-28T09:00:00Z", "channel": "web", "event_type": "pricing_view"}],
                }
            ]
        },
    )
    lead: Lead
    events: list[InlineEvent] = Field(default_factory=list, max_length=MAX_ITEMS)
    orders: list[InlineOrder] = Field(default_factory=list, max_length=MAX_ITEMS)
    as_of: Moment | None = Field(None, description="Score as of this time (default: now).")
    models: list[str] = Field(default=["propensity"], min_length=1, max_length=3)


class LeadInputError(ValueError):
    """A field of the inline lead that cannot be a feature: `field` names it (a 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _utc(t: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def customer_row(lead: Lead, meta: FeatureMeta) -> pd.DataFrame:
    """The lead as a one-row customers table, each attribute parsed by the kind the company's profile has."""
    try:
        attrs = {k: v for k, v in lead.attributes.items() if k not in (ENTITY, "created_at")}
        parsed = live.parse_attributes(attrs, meta, "lead.attributes")
    except live.RecordError as exc:
        raise LeadInputError(exc.field, str(exc)) from exc
    profile = meta.schema.get("customer_profile", {})
    row = {ENTITY: INLINE_ID, "created_at": _utc(lead.created_at)}
    row |= {k: v for k, v in parsed.items() if k not in RESERVED_COLUMNS}  # contact details are never features
    frame = pd.DataFrame([row])
    for name, kind in profile.items():  # attributes not given are missing, in the profile's own type
        if name not in frame or frame[name].isna().all():
            frame[name] = pd.Series(
                [np.nan if kind == "float" else None], dtype="float64" if kind == "float" else object
            )
        elif kind == "float":
            frame[name] = frame[name].astype("float64")
    return frame


def features(req: LeadScoreRequest, meta: FeatureMeta) -> dict[str, list]:
    """Feature columns (one row) of the inline lead as of `req.as_of` (default now), computed by the batch
    build's own functions; views the lead gives nothing for are missing, as for a stored customer without them."""
    at = _utc(req.as_of) if req.as_of else pd.Timestamp.now(tz="UTC")
    cust = customer_row(req.lead, meta)
    if cust["created_at"].iloc[0] > at + pd.Timedelta(minutes=5):
        raise LeadInputError("lead.created_at", "lead.created_at: after the time it is scored at (as_of)")
    for i, e in enumerate([*req.events, *req.orders]):
        if _utc(e.ts) > at + pd.Timedelta(minutes=5):
            kind, j = ("events", i) if i < len(req.events) else ("orders", i - len(req.events))
            raise LeadInputError(f"{kind}.{j}.ts", f"{kind}.{j}.ts: in the future of the time it is scored at")
    cuts = pd.DatetimeIndex([at])
    views = {"customer_profile": engineering.profile_features(cust)}
    if "customer_engagement" in meta.schema:  # as for a stored lead: no events counts as none, not missing
        ev = pd.DataFrame(
            {
                "event_id": [f"e{i}" for i in range(len(req.events))],
                ENTITY: INLINE_ID,
                "ts": pd.to_datetime([_utc(e.ts) for e in req.events], utc=True),
                "channel": [e.channel for e in req.events],
                "event_type": [e.event_type for e in req.events],
            }
        )
        views.update(split_view("customer_engagement", engineering.engagement_features(ev, cust, cuts)))
    if "customer_transactions" in meta.schema:
        tx = pd.DataFrame(
            {
                "transaction_id": [f"t{i}" for i in range(len(req.orders))],
                ENTITY: INLINE_ID,
                "ts": pd.to_datetime([_utc(o.ts) for o in req.orders], utc=True),
                "amount": pd.Series([o.amount for o in req.orders], dtype=float),
                "category": [o.category or "?" for o in req.orders],
                "is_refund": pd.Series([o.is_refund for o in req.orders], dtype=bool),
            }
        )
        views.update(split_view("customer_transactions", engineering.transaction_features(tx, cust, cuts)))
    out: dict[str, list] = {}
    for frame in views.values():
        for col in frame.columns:
            if col not in (ENTITY, TS):
                v = frame[col].iloc[0] if len(frame) else None
                out[col] = [None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else v]
    return out
