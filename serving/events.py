"""POST /v1/events: the request body and its checks, turned into live records (features/live.py).

Every record has the client's own id (idempotency: a repeated id is a duplicate, nothing changes), the customer it
is about and when it happened. Four types: an engagement `event`, an `order` (or refund), a CRM `stage` change and
a `customer` record (a new lead, or attributes that changed).

A record about a customer leadscope does not know is refused: a new lead needs its `customer` record first, in
an earlier request or earlier in the same one. That keeps a typo in an id from creating a phantom lead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from features import engineering, live
from features.live import Record, RecordError
from leadscope.schema import CHANNELS, STAGES
from leadscope.tables import FeatureMeta
from serving.leads import Attributes, Moment

MAX_RECORDS = 1_000
RecordId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
CustomerId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: RecordId = Field(description="Your id of this record: a repeated id is a duplicate and changes nothing.")
    customer_id: CustomerId
    ts: Moment = Field(description="When it happened (ISO 8601; naive times are UTC).")


class EngagementEvent(_Record):
    type: Literal["event"]
    channel: Literal[CHANNELS]  # type: ignore[valid-type]
    event_type: str = Field(min_length=1, max_length=64, description="e.g. pricing_view, form_submit, page_view.")


class Order(_Record):
    type: Literal["order"]
    amount: float = Field(ge=0, le=1e12, allow_inf_nan=False)
    category: str | None = Field(None, max_length=128)
    is_refund: bool = False


class StageChange(_Record):
    type: Literal["stage"]
    stage: Literal[STAGES]  # type: ignore[valid-type]


class CustomerRecord(_Record):
    type: Literal["customer"]
    created_at: Moment | None = Field(None, description="When the lead was created (default: ts, for a new one).")
    attributes: Attributes = Field(default_factory=dict, max_length=200)


LiveRecord = Annotated[EngagementEvent | Order | StageChange | CustomerRecord, Field(discriminator="type")]


class EventsRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "id": "crm-81",
                            "type": "customer",
                            "customer_id": "L-9",
                            "ts": "2026-12-01T10:00:00Z",
                            "attributes": {"country": "US"},
                        },
                        {
                            "id": "crm-82",
                            "type": "event",
                            "customer_id": "L-9",
                            "ts": "2026-12-01T10:02:00Z",
                            "channel": "web",
                            "event_type": "pricing_view",
                        },
                    ]
                }
            ]
        },
    )
    events: list[LiveRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Records stored by this request.")
    duplicates: list[str] = Field(description="Ids already stored (by an earlier request or earlier in this one).")
    customers: int = Field(description="Customers whose features were recomputed.")
    applied: bool = Field(
        description="True when the new features are in the online store (the next /v1/scores shows them); false "
        "when that is still under way: the records are stored and their features follow."
    )


def _row(r: EngagementEvent | Order | StageChange | CustomerRecord) -> dict:
    if isinstance(r, EngagementEvent):
        return {"event_id": r.id, "ts": r.ts, "channel": r.channel, "event_type": r.event_type}
    if isinstance(r, Order):
        return {
            "transaction_id": r.id,
            "ts": r.ts,
            "amount": r.amount,
            "category": r.category or "?",
            "is_refund": r.is_refund,
        }
    if isinstance(r, StageChange):
        return {"event_id": r.id, "ts": r.ts, "stage": r.stage}
    raise AssertionError(type(r))


def records(
    req: EventsRequest,
    *,
    meta: FeatureMeta,
    known: set[str],
    event_types: frozenset[str],
    future_seconds: float,
    now: datetime | None = None,
) -> list[Record]:
    """The request as live records, or RecordError naming the first field that is wrong (nothing is stored then).
    `known`: the customers leadscope already has; records of others need a customer record first."""
    now = now or datetime.now(UTC)
    latest = now + timedelta(seconds=future_seconds)
    types = frozenset(engineering.EVENT_TYPES) | event_types
    seen = set(known)
    out = []
    for i, r in enumerate(req.events):
        at = r.ts if r.ts.tzinfo else r.ts.replace(tzinfo=UTC)
        if at > latest:
            raise RecordError(f"events.{i}.ts", f"events.{i}.ts: more than {future_seconds:g} s in the future")
        if isinstance(r, CustomerRecord):
            attrs = live.parse_attributes(r.attributes, meta, f"events.{i}.attributes")
            row = attrs | ({"created_at": r.created_at or r.ts} if r.created_at or r.customer_id not in seen else {})
            seen.add(r.customer_id)
            out.append(Record(r.id, r.type, r.customer_id, r.ts, row))
            continue
        if r.customer_id not in seen:
            raise RecordError(
                f"events.{i}.customer_id",
                f"events.{i}.customer_id: unknown customer; post a record of type customer for a new lead first",
            )
        if isinstance(r, EngagementEvent) and r.event_type not in types:
            raise RecordError(
                f"events.{i}.event_type",
                f"events.{i}.event_type: unknown event type (known: {', '.join(sorted(types)[:20])})",
            )
        out.append(Record(r.id, r.type, r.customer_id, r.ts, _row(r)))
    return out
