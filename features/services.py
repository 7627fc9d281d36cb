"""The feature views and the feature services over them: which features each model version reads, and the
services a company's own views allow (no Feast here: features/store.py turns them into Feast objects)."""

from __future__ import annotations

from dataclasses import dataclass

from leadscope.settings import Settings
from leadscope.tables import read_feature_meta

VIEWS = (
    "customer_profile",
    "customer_engagement",
    "customer_transactions",
    "customer_engagement_detail",
    "customer_transactions_detail",
    "customer_graph",
)
GRAPH_LABELS = (
    "community_id",
    "community_size",
    "community_conversion_rate",
    "social_role",
    "referral_tree_depth",
    "referred_spend_365d",
    "revenue_value_365d",
    "influence_value",
)


@dataclass(frozen=True)
class AllBut:
    """Every feature of a view except these (ids and labels, or parts already inside a composite)."""

    names: tuple[str, ...]


# community_id is an id, not a signal; community size and conversion rate swing as modularity partitions are
# recomputed (a PSI
# gate would read it as drift); the others are parts of features already in (social_value, tree size)
GRAPH_MODEL_FEATURES = AllBut(GRAPH_LABELS)
ALL = None  # every feature of a view, custom customer attributes included
# One FeatureService per model version. The online read's cost grows with the number of features in the
# views a service touches (the sqlite store reads every feature row of a view), so the hot-path views
# hold the compact summaries and the many windowed counts live in their own *_detail views.
SERVICES: dict[str, dict[str, list[str] | AllBut | None]] = {
    "propensity_v1": {"customer_profile": ALL, "customer_engagement": ALL, "customer_transactions": ALL},
    "propensity_v2": {
        "customer_profile": ALL,
        "customer_engagement": ALL,
        "customer_transactions": ALL,
        "customer_graph": GRAPH_MODEL_FEATURES,
    },
    # declared for the models that follow (churn, value, lookalike): same views at training and serving
    "churn_v1": {
        v: ALL
        for v in ("customer_profile", "customer_engagement", "customer_transactions", "customer_transactions_detail")
    }
    | {"customer_graph": GRAPH_MODEL_FEATURES},
    "value_v1": {
        v: ALL
        for v in ("customer_profile", "customer_engagement", "customer_transactions", "customer_transactions_detail")
    }
    | {"customer_graph": GRAPH_MODEL_FEATURES},
    "lookalike_v1": {v: ALL for v in ("customer_profile", "customer_engagement", "customer_transactions")}
    | {"customer_graph": GRAPH_MODEL_FEATURES},
    # next-best-action: uplift per action and the value of a response; churn signals (transactions detail) matter
    "uplift_v1": {
        v: ALL
        for v in ("customer_profile", "customer_engagement", "customer_transactions", "customer_transactions_detail")
    }
    | {"customer_graph": GRAPH_MODEL_FEATURES},
    "customer_360": {v: ALL for v in VIEWS},
}


def _names(columns: dict[str, str], spec: list[str] | AllBut | None) -> list[str]:
    if spec is ALL:
        return list(columns)
    if isinstance(spec, AllBut):
        return [c for c in columns if c not in spec.names]
    return list(spec)


OUTCOME_BASE = "churn_v1"  # a named custom outcome reads the views of the richest service that exist
WHAT_IT_ADDS = {"propensity_v2": "customer_graph"}  # services that only exist with the view they add


def services_of(settings: Settings) -> dict[str, dict[str, list[str] | AllBut | None]]:
    """The services over the views this company has: one whose views all exist as declared; one that lacks some
    (a company with only a customers table) over the views it has, so every model still trains on what there
    is; and one per named custom outcome (leadscope/outcomes.py) over the views of OUTCOME_BASE it has."""
    from leadscope import outcomes

    schema = read_feature_meta(settings.feature_dir).schema
    out = {}
    for name, spec in SERVICES.items():
        have = {v: f for v, f in spec.items() if v in schema}
        if WHAT_IT_ADDS.get(name, "customer_profile") in have:
            out[name] = have
    base = out.get(OUTCOME_BASE)
    return out | ({outcomes.service(n): base for n in outcomes.names(settings)} if base else {})


def has_service(settings: Settings, service: str) -> bool:
    return service in services_of(settings)


def view_features(settings: Settings, service: str) -> dict[str, list[str]]:
    """Feature names of a service per feature view, in feature_names' order."""
    schema = read_feature_meta(settings.feature_dir).schema
    return {v: _names(schema[v], spec) for v, spec in services_of(settings)[service].items()}


def feature_names(settings: Settings, service: str) -> list[str]:
    """Feature names of a service in a fixed order (view order, then schema order)."""
    schema = read_feature_meta(settings.feature_dir).schema
    return [f for v, spec in services_of(settings)[service].items() for f in _names(schema[v], spec)]
