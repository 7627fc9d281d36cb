"""Canonical table and column names (../shared/docs/DATA.md); other modules import them from here."""

from __future__ import annotations

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

CHANNELS = ("web", "email", "sms", "wechat", "social", "ads", "form", "call", "app", "store")
EDGE_KINDS = ("follow", "referral", "interaction")
STAGES = ("lead_created", "mql", "sql", "opportunity", "won", "lost", "churned")

# Columns of `customers` that are personal data or identifiers: never features, never logged.
PII_COLUMNS = frozenset({"email", "phone", "first_name", "last_name", "wechat_id", "device_id", "zip", "city", "state"})
CLICK_ID_COLUMNS = frozenset({"gclid", "gbraid", "wbraid", "fbc", "fbp", "meta_lead_id", "bd_vid", "ttclid"})
# Columns of `customers` with a fixed meaning that are not custom attributes.
RESERVED_COLUMNS = frozenset({"customer_id", "created_at"}) | PII_COLUMNS | CLICK_ID_COLUMNS
