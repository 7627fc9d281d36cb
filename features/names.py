"""Names the built-in feature views produce: custom attributes may not take them (kept apart from build.py so an
import does not load Feast).

`builtin_feature_columns()` finds them by running the views' own feature functions on a two-customer company;
`BUILTIN_FEATURE_COLUMNS` is that answer written down, so an import checks a customers file's header without
loading the feature and graph code (1.6 s of a million-row import). tests/features/test_names.py fails, printing
the new set, the day the two differ."""

from __future__ import annotations

import functools
import warnings

import pandas as pd

from leadscope.schema import ENTITY, TS

BUILTIN_FEATURE_COLUMNS = frozenset(
    {
        "ad_click_30d",
        "ad_click_7d",
        "ad_click_90d",
        "ad_click_total",
        "app_open_30d",
        "app_open_7d",
        "app_open_90d",
        "app_open_total",
        "community_conversion_rate",
        "community_id",
        "community_size",
        "days_since_last_touch",
        "days_since_pricing_view",
        "email_click_30d",
        "email_click_7d",
        "email_click_90d",
        "email_click_rate_90d",
        "email_click_total",
        "email_open_30d",
        "email_open_7d",
        "email_open_90d",
        "email_open_rate_90d",
        "email_open_rate_total",
        "email_open_total",
        "email_sent_30d",
        "email_sent_7d",
        "email_sent_90d",
        "email_sent_total",
        "followers_count",
        "following_count",
        "following_customer_share",
        "following_customers_reach",
        "following_engaged_reach",
        "form_submit_30d",
        "form_submit_7d",
        "form_submit_90d",
        "form_submit_total",
        "inbound_call_30d",
        "inbound_call_7d",
        "inbound_call_90d",
        "inbound_call_total",
        "influence_value",
        "is_kol",
        "lifecycle_stage",
        "neighbour_churned_share",
        "neighbour_customer_share",
        "neighbours",
        "page_view_30d",
        "page_view_7d",
        "page_view_90d",
        "page_view_total",
        "pagerank",
        "pricing_share",
        "pricing_view_30d",
        "pricing_view_7d",
        "pricing_view_90d",
        "pricing_view_total",
        "reach_2hop",
        "referral_count",
        "referral_tree_depth",
        "referral_tree_size",
        "referred_converted",
        "referred_spend_365d",
        "referrer_converted",
        "revenue_value_365d",
        "sms_click_30d",
        "sms_click_7d",
        "sms_click_90d",
        "sms_click_total",
        "social_engage_30d",
        "social_engage_7d",
        "social_engage_90d",
        "social_engage_total",
        "social_role",
        "social_value",
        "store_visit_30d",
        "store_visit_7d",
        "store_visit_90d",
        "store_visit_total",
        "tag_high_value",
        "tag_price_sensitive",
        "tenure_days",
        "touch_trend",
        "touches_30d",
        "touches_7d",
        "touches_90d",
        "touches_per_week",
        "tx_amount_30d",
        "tx_amount_365d",
        "tx_amount_90d",
        "tx_amount_total",
        "tx_avg_order_value",
        "tx_category_diversity",
        "tx_count_30d",
        "tx_count_365d",
        "tx_count_90d",
        "tx_count_total",
        "tx_days_between_orders",
        "tx_promo_share",
        "tx_recency_days",
        "tx_refund_rate",
        "tx_rfm_frequency_score",
        "tx_rfm_monetary_score",
        "tx_rfm_recency_score",
        "tx_spend_trend",
        "wechat_message_30d",
        "wechat_message_7d",
        "wechat_message_90d",
        "wechat_message_total",
    }
)


@functools.cache
def builtin_feature_columns() -> frozenset[str]:
    """Every column the built-in views produce (engagement, transactions, graph), found by running the same
    feature functions on a two-customer company: custom attributes may not take these names."""
    from features import engineering
    from graphs.features import graph_features

    at = pd.Timestamp("2026-01-05", tz="UTC")
    cust = pd.DataFrame({ENTITY: ["a", "b"], "created_at": [at - pd.Timedelta(days=4)] * 2})
    tx = pd.DataFrame({"transaction_id": ["t"], ENTITY: ["a"], "ts": [at], "amount": [1.0], "category": ["x"]})
    ev = pd.DataFrame({"event_id": ["e"], ENTITY: ["a"], "ts": [at], "channel": ["web"], "event_type": ["page_view"]})
    edges = pd.DataFrame({"src_customer_id": ["a"], "dst_customer_id": ["b"], "ts": [at], "kind": ["follow"]})
    cuts = engineering.cut_times(start=at - pd.Timedelta(days=7), end=at + pd.Timedelta(days=14), cadence_days=7)
    never = pd.Series(dtype="datetime64[ns, UTC]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # means over empty slices of a two-node graph
        frames = [
            engineering.transaction_features(tx, cust, cuts),
            engineering.engagement_features(ev, cust, cuts),
            graph_features(
                edges=edges, customers=cust, won_at=never, churned_at=never, transactions=tx, events=ev, cuts=cuts
            ),
        ]
    return frozenset(c for f in frames for c in f.columns) - {ENTITY, TS}
