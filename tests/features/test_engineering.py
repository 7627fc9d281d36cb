"""Pure feature functions on hand-built tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import engineering as fe

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


@pytest.fixture
def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "created_at": [day(0), day(0), day(50)],
            "email": ["x@y.z", None, None],
            "industry": ["tech", None, "retail"],
            "vip": [True, False, None],
            "seats": [3, 5, None],
        }
    )


@pytest.fixture
def events() -> pd.DataFrame:
    rows = [
        ("a", 1, "web", "pricing_view"),
        ("a", 20, "web", "page_view"),
        ("a", 25, "email", "email_sent"),
        ("a", 26, "email", "email_open"),
        ("b", 5, "form", "form_submit"),
        ("a", 40, "web", "pricing_view"),
    ]
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(rows))],
            "customer_id": [r[0] for r in rows],
            "ts": [day(r[1]) for r in rows],
            "channel": [r[2] for r in rows],
            "event_type": [r[3] for r in rows],
        }
    )


def test_windowed_counts_recency_and_rates(customers, events) -> None:
    out = fe.engagement_features(events, customers, pd.DatetimeIndex([day(30)]))
    a = out.set_index("customer_id").loc["a"]
    assert a["pricing_view_30d"] == 1 and a["pricing_view_7d"] == 0
    assert a["touches_30d"] == 3  # email_sent is not a touch by the customer
    assert a["days_since_last_touch"] == pytest.approx(4.0)
    assert a["days_since_pricing_view"] == pytest.approx(29.0)
    assert a["email_open_rate_90d"] == 1.0
    assert a["tenure_days"] == pytest.approx(30.0)
    b = out.set_index("customer_id").loc["b"]
    assert b["days_since_pricing_view"] == fe.NO_TOUCH and np.isnan(b["email_open_rate_90d"])


def test_customer_absent_before_created(customers, events) -> None:
    out = fe.engagement_features(events, customers, pd.DatetimeIndex([day(30), day(60)]))
    assert set(out[out["event_timestamp"] == day(30)]["customer_id"]) == {"a", "b"}
    assert set(out[out["event_timestamp"] == day(60)]["customer_id"]) == {"a", "b", "c"}


def test_no_value_at_t_depends_on_a_later_event(customers, events) -> None:
    # broken: training rows would see the future (leakage) and offline AUC would lie
    cuts = pd.DatetimeIndex([day(10), day(30)])
    before = fe.engagement_features(events, customers, cuts)
    later = pd.DataFrame(
        {
            "event_id": ["z1", "z2"],
            "customer_id": ["a", "b"],
            "ts": [day(30.5), day(31)],
            "channel": "web",
            "event_type": "pricing_view",
        }
    )
    after = fe.engagement_features(pd.concat([events, later]), customers, cuts)
    pd.testing.assert_frame_equal(before, after)


def test_transactions_rfm_with_refunds(customers) -> None:
    tx = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3"],
            "customer_id": ["a", "a", "b"],
            "ts": [day(5), day(25), day(26)],
            "amount": [100.0, 50.0, 30.0],
            "is_refund": [False, False, True],
        }
    )
    out = fe.transaction_features(tx, customers, pd.DatetimeIndex([day(30)])).set_index("customer_id")
    assert out.loc["a", "tx_count_total"] == 2 and out.loc["a", "tx_amount_total"] == 150.0
    assert out.loc["a", "tx_recency_days"] == pytest.approx(5.0)
    assert out.loc["a", "tx_avg_order_value"] == 75.0
    assert out.loc["b", "tx_amount_total"] == -30.0 and out.loc["b", "tx_count_total"] == 0


def test_spend_trend_stays_finite_and_positive_when_refunds_outweigh_orders(customers) -> None:
    # broken: net spend of -3 in the 30-120-day window divided by zero (an infinite feature), more flipped the sign
    rows = [("t1", "a", 10, 3.0, True), ("t2", "b", 10, 50.0, True), ("t3", "b", 55, 20.0, False)]
    tx = pd.DataFrame(rows, columns=["transaction_id", "customer_id", "day", "amount", "is_refund"])
    tx = tx.assign(ts=tx["day"].map(day), category="core").drop(columns="day")
    with np.errstate(divide="raise", invalid="raise"):
        out = fe.transaction_features(tx, customers, pd.DatetimeIndex([day(60)])).set_index("customer_id")
    assert out.loc["a", "tx_spend_trend"] == 1.0  # nothing bought, nothing before: flat
    assert out.loc["b", "tx_spend_trend"] == 21.0  # 20 bought now against a refunded past: (20 + 1) / (0 + 1)


def test_profile_keeps_custom_attributes_and_drops_pii(customers) -> None:
    out = fe.profile_features(customers)
    assert "email" not in out.columns
    assert {"industry", "vip", "seats"} <= set(out.columns)
    assert out["vip"].tolist()[:2] == [1.0, 0.0] and np.isnan(out["vip"].iloc[2])
    assert pd.api.types.is_string_dtype(out["industry"])


def test_cut_times_lie_on_a_fixed_calendar_and_end_exactly_at_end() -> None:
    """The newest cut is the data's end; the others are Mondays at 00:00 UTC, a week apart, so a later end keeps
    every earlier cut (broken: a rebuild with one more day of data would recompute every graph block)."""
    cuts = fe.cut_times(start=day(0), end=day(30), cadence_days=7)
    assert cuts[-1] == day(30) and cuts[0] >= day(0) and cuts[0] - pd.Timedelta(days=7) < day(0)
    assert (np.diff(cuts[:-1].asi8) == 7 * 86_400 * 10**9).all() and (cuts[:-1].dayofweek == 0).all()
    later = fe.cut_times(start=day(0), end=day(33), cadence_days=7)
    assert later[: len(cuts) - 1].equals(cuts[:-1]) and later[-1] == day(33)
    assert list(fe.cut_times(start=day(0), end=day(0), cadence_days=7)) == [day(0)]


def test_unknown_customer_in_events_is_an_error(customers, events) -> None:
    bad = pd.concat([events, events.head(1).assign(customer_id="ghost")])
    with pytest.raises(ValueError, match="customer_id not in customers"):
        fe.engagement_features(bad, customers, pd.DatetimeIndex([day(30)]))


def test_lifecycle_rfm_diversity_and_tags(customers) -> None:
    rows = [
        ("t1", "a", 1, 10.0, "core"),
        ("t2", "a", 20, 30.0, "promo"),
        ("t3", "a", 28, 20.0, "promo"),
        ("t4", "b", 2, 500.0, "premium"),
    ]
    tx = pd.DataFrame(rows, columns=["transaction_id", "customer_id", "day", "amount", "category"])
    tx = tx.assign(ts=tx["day"].map(day), is_refund=False).drop(columns="day")
    out = fe.transaction_features(tx, customers, pd.DatetimeIndex([day(30), day(60), day(200)]))
    at30 = out[out["event_timestamp"] == day(30)].set_index("customer_id")
    assert at30.loc["a", "tx_category_diversity"] == 2 and at30.loc["a", "tx_promo_share"] == 2 / 3
    assert at30.loc["a", "tx_days_between_orders"] == pytest.approx(13.5)  # (28 - 1) / 2
    assert at30.loc["a", "tag_price_sensitive"] == 1 and at30.loc["b", "tag_price_sensitive"] == 0
    assert at30.loc["a", "tx_rfm_recency_score"] > at30.loc["b", "tx_rfm_recency_score"]
    assert at30.loc["b", "tx_rfm_monetary_score"] > at30.loc["a", "tx_rfm_monetary_score"]
    assert at30.loc["a", "lifecycle_stage"] == "new" and at30.loc["b", "lifecycle_stage"] == "new"
    at60 = out[out["event_timestamp"] == day(60)].set_index("customer_id")
    assert (at60.loc[["a", "b"], "lifecycle_stage"] == "active").all()
    at200 = out[out["event_timestamp"] == day(200)].set_index("customer_id")
    assert at200.loc["a", "lifecycle_stage"] == "at_risk" and at200.loc["b", "lifecycle_stage"] == "lapsed"
    assert at200.loc["c", "lifecycle_stage"] == "prospect"
