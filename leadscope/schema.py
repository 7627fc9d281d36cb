"""Canonical table and column names (docs/DATA.md); other modules import them from here."""

from __future__ import annotations

from dataclasses import dataclass

ENTITY = "customer_id"
TS = "event_timestamp"  # timestamp column of every offline feature source

REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "created_at"),
    "transactions": ("transaction_id", "customer_id", "ts", "amount"),
    "events": ("event_id", "customer_id", "ts", "channel", "event_type"),
    "edges": ("src_customer_id", "dst_customer_id", "ts", "kind"),
    "stages": ("event_id", "customer_id", "ts", "stage"),
    "campaigns": ("customer_id", "ts", "action_id", "treated", "outcome"),
    "labels": ("customer_id", "as_of", "label"),
}
TABLES = tuple(t for t in REQUIRED if t != "labels")

# The one yes/no vocabulary (any case, stripped) of every boolean leadscope reads: imported columns (consent_*,
# is_refund, flags), the API's consent fields and docs/DATA.md. Anything else is refused by name, never guessed.
TRUE = frozenset({"true", "t", "yes", "y", "on", "1", "1.0"})
FALSE = frozenset({"false", "f", "no", "n", "off", "0", "0.0"})
CHANNELS = ("web", "email", "sms", "wechat", "social", "ads", "form", "call", "app", "store")
EDGE_KINDS = ("follow", "referral", "interaction")
STAGES = ("lead_created", "mql", "sql", "opportunity", "won", "lost", "churned")

# Columns of `customers` that are personal data or identifiers: never features, never logged.
PII_COLUMNS = frozenset({"email", "phone", "first_name", "last_name", "wechat_id", "device_id", "zip", "city", "state"})
CLICK_IDS = ("gclid", "gbraid", "wbraid", "fbc", "fbp", "meta_lead_id", "bd_vid", "ttclid")
CLICK_ID_COLUMNS = frozenset(CLICK_IDS)
# Columns of `customers` with a fixed meaning that are not custom attributes.
RESERVED_COLUMNS = frozenset({"customer_id", "created_at"}) | PII_COLUMNS | CLICK_ID_COLUMNS
# Identifier columns the audience exports and conversion payloads hash (country is needed to read phone numbers).
CONTACT_COLUMNS = ("customer_id", "email", "phone", "first_name", "last_name", "city", "state", "zip", "wechat_id")


@dataclass(frozen=True)
class ModelSpec:
    """A model family the product trains and serves: its registry name, what it predicts, where it is served."""

    name: str
    kind: str  # classifier (calibrated probability), value (expected spend), uplift (per-action effects)
    scored: bool  # answered by POST /v1/scores
    summary: str


# The one table of models: the CLI's choices, the API's `models` values and the registry names come from it.
MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec("propensity", "classifier", True, "P(deal won within the horizon) for open leads"),
        ModelSpec("churn", "classifier", True, "P(a paying customer churns within the horizon)"),
        ModelSpec("value", "value", True, "expected net spend over the next 90 and 365 days"),
        ModelSpec("uplift", "uplift", False, "next-best-action: each action's effect on P(respond)"),
    )
}
SCORED_MODELS = tuple(n for n, m in MODELS.items() if m.scored)
CLASSIFIERS = tuple(n for n, m in MODELS.items() if m.kind == "classifier")
