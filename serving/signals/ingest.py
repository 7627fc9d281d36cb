"""From a CRM's conversion events (the API body) to stored events: validation, hashing per platform, value."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from leadscope.schema import CLICK_IDS, STAGES
from leadscope.settings import Settings
from serving.outbox import Policy
from serving.schemas import IsoTime, YesNo
from serving.signals import hashing
from serving.signals.mapping import load as load_mapping
from serving.signals.outbox import Outbox

Text = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]
Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]
ClickId = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=1024)]
MAX_EVENTS = 1_000


def _aware(ts: datetime) -> datetime:
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if ts > datetime.now(UTC) + timedelta(days=1):
        raise ValueError("more than a day in the future")
    return ts


class ConversionEvent(BaseModel):
    """One CRM lifecycle event: the `stages` columns of DATA.md plus any PII / click-id column of `customers`."""

    model_config = ConfigDict(extra="forbid")
    event_id: Id
    customer_id: Id
    ts: Annotated[IsoTime, AfterValidator(_aware)] = Field(description="ISO 8601; naive times are UTC.")
    stage: Literal[STAGES]  # type: ignore[valid-type]
    value: float | None = Field(None, ge=0, le=1e12, description="Deal value; required for won.")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    crm_name: Text | None = None
    email: Text | None = None
    phone: Text | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    city: Text | None = None
    state: Text | None = None
    zip: Text | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] | None = None
    gclid: ClickId | None = None
    gbraid: ClickId | None = None
    wbraid: ClickId | None = None
    fbc: ClickId | None = None
    fbp: ClickId | None = None
    meta_lead_id: Annotated[str, StringConstraints(pattern=r"^\d{1,32}$")] | None = None
    consent_ads: YesNo | None = Field(
        None,
        description="Ads consent as the CRM knows it now (true/false, yes/no, y/n, t/f, on/off, 1/0); default: the "
        "customers table's (missing: no).",
    )
    bd_vid: ClickId | None = None
    ttclid: ClickId | None = None

    @model_validator(mode="after")
    def _won_has_value(self) -> ConversionEvent:
        if self.stage == "won" and (self.value is None or not math.isfinite(self.value)):
            raise ValueError("value: required for stage won (the deal's value)")
        if self.value is not None and self.currency is None:
            raise ValueError("currency: required with a value (ISO 4217, e.g. USD)")
        return self


class ConversionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[ConversionEvent] = Field(min_length=1, max_length=MAX_EVENTS)


class Accepted(BaseModel):
    accepted: int = Field(description="New events stored durably.")
    duplicates: list[str] = Field(description="event_ids already stored (or repeated in this body): unchanged.")
    deliveries: dict[str, dict[str, int]] = Field(description="Per platform: pending / skipped rows created.")


def identifiers(ev: ConversionEvent) -> dict:
    """Hashed per platform rule (raises ValueError naming the field for an unreadable e-mail or phone)."""
    row = ev.model_dump()
    meta, google = hashing.meta_user(row), hashing.google_user(row)
    click = {k: row[k] for k in CLICK_IDS}
    return {
        "meta": {k: v for k, v in meta.items() if v},
        "google": {k: v for k, v in google.items() if v},
        "click": {k: v for k, v in click.items() if v},
    }


def ads_consent(events: list[ConversionEvent], consenting: frozenset[str]) -> list[bool]:
    """Per event: its own consent_ads when the CRM sent one, else whether the customers table says yes; default-deny
    (a customer unknown to the table, or without a consent that parses as true, is not sent to any ad platform)."""
    return [ev.consent_ads if ev.consent_ads is not None else ev.customer_id in consenting for ev in events]


def outbox_for(settings: Settings) -> Outbox:
    policy = Policy(
        max_attempts=settings.signals_max_attempts,
        backoff_base=settings.signals_backoff_seconds,
        backoff_cap=settings.signals_backoff_cap_seconds,
        timeout=settings.signals_timeout_seconds,
        max_batch=settings.signals_batch_size,
    )
    return Outbox(settings.database_url, load_mapping(settings.signals_mapping), policy)
