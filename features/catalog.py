"""Human labels and descriptions of features; the API's reasons and the docs read them from here."""

from __future__ import annotations

from dataclasses import dataclass

from features.engineering import EVENT_TYPES, TX_WINDOWS, WINDOWS


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    label: str
    description: str


_EVENT_LABELS = {
    "page_view": "product page views",
    "pricing_view": "pricing page visits",
    "email_sent": "emails sent",
    "email_open": "emails opened",
    "email_click": "email clicks",
    "wechat_message": "WeChat messages",
    "social_engage": "social interactions",
    "ad_click": "ad clicks",
    "form_submit": "form submissions",
    "inbound_call": "inbound calls",
    "store_visit": "store visits",
    "sms_click": "SMS clicks",
    "app_open": "app sessions",
}

_STATIC = {
    "source_channel": ("Source channel", "Channel through which the customer first arrived."),
    "tenure_days": ("Days since sign-up", "Days between the customer's creation and the scoring time."),
    "days_since_last_touch": ("Days since last touch", "Days since the last engagement of any kind."),
    "days_since_pricing_view": ("Days since pricing visit", "Days since the last pricing page visit."),
    "touch_trend": ("Engagement trend", "Touches in the last 30 days vs the monthly rate of the 60 before."),
    "email_open_rate_90d": ("Email open rate (90 d)", "Opened / sent emails over 90 days."),
    "touches_per_week": ("Touches per week", "Engagements per week since sign-up."),
    "pricing_share": ("Pricing interest", "Pricing page visits / all product and pricing page visits."),
    "email_open_rate_total": ("Email open rate", "Opened / sent emails since sign-up."),
    "email_click_rate_90d": ("Email click rate (90 d)", "Clicked / opened emails over 90 days."),
    "tx_recency_days": ("Days since last order", "Days since the last non-refund transaction."),
    "tx_count_total": ("Orders (all time)", "Number of orders before the scoring time."),
    "tx_amount_total": ("Spend (all time)", "Net spend (orders minus refunds) before the scoring time."),
    "tx_avg_order_value": ("Average order value", "Net spend / number of orders."),
    "tx_refund_rate": ("Refund rate", "Refunds / orders."),
    "tx_rfm_recency_score": ("RFM recency score", "1–5 by quintile among buyers (5 = most recent order)."),
    "tx_rfm_frequency_score": ("RFM frequency score", "1–5 by quintile of order count among buyers."),
    "tx_rfm_monetary_score": ("RFM monetary score", "1–5 by quintile of net spend among buyers."),
    "tx_category_diversity": ("Categories bought", "Distinct product categories ordered."),
    "tx_spend_trend": ("Spend trend", "Spend in the last 30 days vs the monthly rate of the 90 before."),
    "tx_days_between_orders": ("Days between orders", "Average gap between repeat orders."),
    "tx_promo_share": ("Promo share", "Share of orders in the promo category."),
    "tag_high_value": ("High value", "Top 10% of buyers by 365-day spend."),
    "tag_price_sensitive": ("Price sensitive", "Two or more orders, at least half of them promo."),
    "lifecycle_stage": (
        "Lifecycle stage",
        "prospect, new (first order ≤ 30 d), active (≤ 90 d), at_risk (≤ 180 d), lapsed.",
    ),
    "consent_email": ("Email consent", "Customer agreed to marketing email."),
    "consent_sms": ("SMS consent", "Customer agreed to marketing SMS."),
    "consent_ads": ("Ads consent", "Customer agreed to ad personalisation."),
    "social_followers": ("Social followers", "Followers on the customer's linked social account."),
    "followers_count": ("Followers (in our base)", "Customers and leads who follow this customer."),
    "following_count": ("Accounts followed", "Customers and leads this customer follows."),
    "following_customer_share": ("Followed accounts who bought", "Share of followed accounts that are customers."),
    "following_customers_reach": ("Reach of followed buyers", "Σ log10(audience) over followed accounts who bought."),
    "following_engaged_reach": (
        "Reach of followed keen accounts",
        "Σ log10(audience) over followed accounts with high-intent engagement.",
    ),
    "pagerank": ("Influence (PageRank)", "PageRank on follows, interactions and referrals; 1 = average."),
    "reach_2hop": ("2-hop reach", "Followers plus followers of followers (paths, an upper bound)."),
    "referral_count": ("Referrals made", "People this customer referred directly."),
    "referral_tree_size": ("Referral tree size", "Everyone brought in through this customer's referrals, any depth."),
    "referral_tree_depth": ("Referral tree depth", "Generations in this customer's referral tree."),
    "referred_converted": ("Referred who bought", "Directly referred people who became customers."),
    "referred_spend_365d": ("Spend of referred (365 d)", "Net spend of directly referred people, last 365 days."),
    "referrer_converted": ("Referrer is a customer", "Whether the person who referred this lead has bought."),
    "community_size": ("Community size", "Members of the customer's (Leiden) community."),
    "community_conversion_rate": ("Community conversion", "Share of the other community members who bought."),
    "neighbours": ("Connections", "Distinct people connected by any edge."),
    "neighbour_customer_share": ("Connections who bought", "Share of connections who are customers."),
    "neighbour_churned_share": ("Connections who churned", "Share of connections who churned."),
    "is_kol": ("Opinion leader", "10k+ followers on a linked account, or top 1% followed in our base."),
    "revenue_value_365d": ("Revenue (365 d)", "Own net spend, last 365 days."),
    "influence_value": ("Influence value", "Spend of referred people plus the credited value of the audience."),
    "social_value": ("Social value", "Revenue value + influence value."),
}


def _build() -> dict[str, FeatureInfo]:
    out = {k: FeatureInfo(k, *v) for k, v in _STATIC.items()}
    for w in WINDOWS:
        for e in EVENT_TYPES:
            name = f"{e}_{w}d"
            out[name] = FeatureInfo(
                name,
                f"{_EVENT_LABELS[e].capitalize()} ({w} d)",
                f"Count of {_EVENT_LABELS[e]} in the {w} days before scoring.",
            )
        out[f"touches_{w}d"] = FeatureInfo(
            f"touches_{w}d", f"Touches ({w} d)", f"Engagements of any kind in the {w} days before scoring."
        )
    for e in EVENT_TYPES:
        out[f"{e}_total"] = FeatureInfo(
            f"{e}_total",
            f"{_EVENT_LABELS[e].capitalize()} (all time)",
            f"Count of {_EVENT_LABELS[e]} since the customer was created.",
        )
    for w in TX_WINDOWS:
        out[f"tx_count_{w}d"] = FeatureInfo(f"tx_count_{w}d", f"Orders ({w} d)", f"Orders in the last {w} days.")
        out[f"tx_amount_{w}d"] = FeatureInfo(f"tx_amount_{w}d", f"Spend ({w} d)", f"Net spend in the last {w} days.")
    return out


CATALOG = _build()


def describe(name: str) -> FeatureInfo:
    """Known features get their curated label; custom customer attributes get a readable default."""
    return CATALOG.get(name) or FeatureInfo(
        name, name.replace("_", " ").capitalize(), f"Custom customer attribute '{name}'."
    )
