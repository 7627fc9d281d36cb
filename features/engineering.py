"""Pure feature functions: canonical tables in, one row per (customer, cut time) out.

Every value at cut time t is computed from rows with ts <= t only; that is what makes the Feast
point-in-time join leakage-free.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from features import lifecycle
from leadscope.schema import ENTITY, RESERVED_COLUMNS, TS

DAY = 86_400.0
WINDOWS = (7, 30, 90)
TX_WINDOWS = (30, 90, 365)
EVENT_TYPES = (
    "page_view",
    "pricing_view",
    "email_sent",
    "email_open",
    "email_click",
    "wechat_message",
    "social_engage",
    "ad_click",
    "form_submit",
    "inbound_call",
    "store_visit",
    "sms_click",
    "app_open",
)
NO_TOUCH = 9_999.0
# Summary features read on every online score; the other windowed counts are for analysis and insight.
CORE = {
    "customer_engagement": [
        "tenure_days",
        "touches_per_week",
        "touches_7d",
        "touches_30d",
        "touches_90d",
        "touch_trend",
        "days_since_last_touch",
        "days_since_pricing_view",
        "pricing_share",
        "pricing_view_30d",
        "pricing_view_90d",
        "pricing_view_total",
        "page_view_90d",
        "email_sent_total",
        "email_open_rate_total",
        "email_click_rate_90d",
        "ad_click_total",
        "social_engage_total",
        "form_submit_total",
        "inbound_call_total",
        "wechat_message_total",
    ],
    "customer_transactions": [
        "tx_recency_days",
        "tx_count_total",
        "tx_amount_total",
        "tx_amount_30d",
        "tx_avg_order_value",
        "tx_refund_rate",
    ],
}  # recency when a customer never did the thing: far away, but finite for trees


# Cut times lie on a fixed calendar, every cadence from this Monday at 00:00 UTC (weekly cuts fall on Mondays):
# a rebuild with later data keeps the earlier cut times, so the graph view can keep their rows (features/build.py)
CUT_EPOCH = pd.Timestamp("1970-01-05", tz="UTC")


def cut_times(*, start: pd.Timestamp, end: pd.Timestamp, cadence_days: int) -> pd.DatetimeIndex:
    """Feature snapshot times: the calendar's (CUT_EPOCH, every `cadence_days`) from `start` up to `end`, and
    `end` itself, the newest."""
    step = pd.Timedelta(days=cadence_days)
    first = CUT_EPOCH + step * math.ceil((pd.Timestamp(start) - CUT_EPOCH) / step)
    grid = pd.date_range(first, end, freq=step, inclusive="left") if first < end else pd.DatetimeIndex([], tz="UTC")
    return grid.append(pd.DatetimeIndex([end]))


def profile_features(customers: pd.DataFrame, kinds: dict[str, str] | None = None) -> pd.DataFrame:
    """Customer attributes valid from created_at: every non-PII column, custom ones included. A column is a
    number (float64) when it holds numbers or flags, text otherwise; `kinds` ("number" or "text" per column, from
    the file's schema) decides instead for a chunk of the table (features/build.py profile_chunks)."""
    cols = [c for c in customers.columns if c not in RESERVED_COLUMNS]
    out = customers[[ENTITY, *cols]].copy()
    for c in cols:
        s = out[c]
        if kinds is not None:
            number = kinds.get(c) == "number"
        else:
            is_flag = s.dtype == object and s.dropna().map(type).eq(bool).all() and s.notna().any()
            number = pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s) or is_flag
        out[c] = s.astype("float64") if number else s.astype("string")
    out.insert(1, TS, pd.to_datetime(customers["created_at"], utc=True))
    return out


def transaction_features(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    cuts: pd.DatetimeIndex,
    reference: dict | None = None,
    *,
    relative: bool = True,
) -> pd.DataFrame:
    """RFM and windowed order counts/sums, average order value and refund rate at each cut. The population
    statistics of the relative features (lifecycle.reference) are computed per cut over these customers, or taken
    from `reference` (a live recompute of a few); those of the last cut are left in the result's attrs.
    `relative=False` leaves the relative features NaN (lifecycle.RELATIVE): a pass over a slice of the customers,
    completed by `with_relative` over all of them (features/distributed.py)."""
    frames = list(transaction_cuts(transactions, customers, cuts, reference, relative=relative))
    out = pd.concat(frames, ignore_index=True)
    if relative:
        out.attrs["reference"] = frames[-1].attrs.get("reference", reference)
    return out


def transaction_cuts(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    cuts: pd.DatetimeIndex,
    reference: dict | None = None,
    *,
    relative: bool = True,
) -> Iterator[pd.DataFrame]:
    """transaction_features one cut at a time, oldest first (the build writes each as it comes, so memory holds
    one cut, not the whole view). The relative features rank within a cut, so a cut's frame is complete on its
    own; its population statistics are in its attrs["reference"]."""
    tx = transactions
    t, codes, idx = _by_time(tx, customers)
    refund = (tx["is_refund"].fillna(False).to_numpy(bool) if "is_refund" in tx else np.zeros(len(tx), bool))[idx]
    amount = tx["amount"].to_numpy(float)[idx]
    order, signed = (~refund).astype(float), np.where(refund, -amount, amount)
    cat = pd.Categorical(tx["category"] if "category" in tx else np.full(len(tx), "?"))
    cat_codes, n_cat = np.asarray(cat.codes)[idx], max(len(cat.categories), 1)
    promo_code = list(cat.categories).index("promo") if "promo" in cat.categories else -2
    promo = (cat_codes == promo_code) & ~refund
    n = len(customers)
    first = np.full(n, np.inf)
    seen = np.zeros(n * n_cat, dtype=bool)
    prev = 0
    for cut, alive, last, _ in _cuts(t, codes, customers, cuts, mask=~refund):
        hi = np.searchsorted(t, _seconds_one(cut), side="right")
        new = np.arange(prev, hi)[~refund[prev:hi]]
        np.minimum.at(first, codes[new], t[new])
        seen[codes[new] * n_cat + np.maximum(cat_codes[new], 0)] = True
        prev = hi
        cnt = np.bincount(codes[:hi], weights=order[:hi], minlength=n)
        amt = np.bincount(codes[:hi], weights=signed[:hi], minlength=n)
        refunds = np.bincount(codes[:hi], weights=refund[:hi].astype(float), minlength=n)
        f = {
            "tx_recency_days": _recency(cut, last),
            "tx_count_total": cnt,
            "tx_amount_total": amt,
            "tx_avg_order_value": np.divide(amt, cnt, out=np.zeros(n), where=cnt > 0),
            "tx_refund_rate": np.divide(refunds, cnt, out=np.zeros(n), where=cnt > 0),
        }
        for w in TX_WINDOWS:
            a = np.searchsorted(t, _seconds_one(cut) - w * DAY, side="right")
            f[f"tx_count_{w}d"] = np.bincount(codes[a:hi], weights=order[a:hi], minlength=n)
            f[f"tx_amount_{w}d"] = np.bincount(codes[a:hi], weights=signed[a:hi], minlength=n)
        a120, a30 = (np.searchsorted(t, _seconds_one(cut) - w * DAY, side="right") for w in (120, 30))
        c = _seconds_one(cut)
        f |= lifecycle.derive(
            count=cnt,
            amount_365=f["tx_amount_365d"],
            amount_30=f["tx_amount_30d"],
            amount_30_120=np.bincount(codes[a120:a30], weights=signed[a120:a30], minlength=n),
            recency=f["tx_recency_days"],
            first_days_ago=np.where(np.isfinite(first), (c - first) / DAY, np.inf),
            span_days=np.where(np.isfinite(first), (last - first) / DAY, 0.0),
            categories=seen.reshape(n, n_cat).sum(axis=1).astype(float),
            promo=np.bincount(codes[:hi], weights=promo[:hi].astype(float), minlength=n),
        )
        out = _frame(customers, cut, alive, f)
        yield with_relative(out, reference) if relative else out


def cut_references(frame: pd.DataFrame) -> dict[pd.Timestamp, dict]:
    """The population statistics of the relative features at each cut, over the customers alive at it (the rows
    of `frame` with that cut time)."""
    inputs = [TS, *lifecycle.REFERENCE_INPUTS.values()]
    return {
        pd.Timestamp(cut): lifecycle.reference(
            **{k: g[c].to_numpy(float) for k, c in lifecycle.REFERENCE_INPUTS.items()}
        )
        for cut, g in frame[inputs].groupby(TS, sort=True)
    }


def add_relative(frame: pd.DataFrame, refs: dict[pd.Timestamp, dict]) -> pd.DataFrame:
    """Fill the relative features of any rows (a chunk, a partition) from the statistics of their cut."""
    inputs = {k: frame[c].to_numpy(float) for k, c in lifecycle.REFERENCE_INPUTS.items()}
    filled = {name: np.full(len(frame), np.nan) for name in lifecycle.RELATIVE}
    for cut, rows in frame.groupby(TS, sort=False).indices.items():
        part = lifecycle.relative(**{k: v[rows] for k, v in inputs.items()}, ref=refs[pd.Timestamp(cut)])
        for name, values in part.items():
            filled[name][rows] = values
    return frame.assign(**filled)


def with_relative(frame: pd.DataFrame, reference: dict | None = None) -> pd.DataFrame:
    """`frame` with its relative features, against `reference` at every cut or else each cut's own statistics;
    the newest cut's are left in attrs["reference"] (live recomputes rank against them until the next build)."""
    if reference is not None:
        refs = {pd.Timestamp(c): reference for c in frame[TS].unique()}
    else:
        refs = cut_references(frame)
    out = add_relative(frame, refs)
    out.attrs["reference"] = refs[max(refs)] if refs else reference
    return out


def engagement_features(events: pd.DataFrame, customers: pd.DataFrame, cuts: pd.DatetimeIndex) -> pd.DataFrame:
    """Windowed counts per event type, recency, email rates, trend and tenure at each cut."""
    return pd.concat(list(engagement_cuts(events, customers, cuts)), ignore_index=True)


def engagement_cuts(events: pd.DataFrame, customers: pd.DataFrame, cuts: pd.DatetimeIndex) -> Iterator[pd.DataFrame]:
    """engagement_features one cut at a time, oldest first."""
    ev = events
    t, codes, order = _by_time(ev, customers)
    n, k = len(customers), len(EVENT_TYPES)
    etype = pd.Categorical(ev["event_type"], categories=EVENT_TYPES).codes.astype(np.int64)[order]
    known = etype >= 0  # other event types still count as touches
    # one bincount over (customer, type) pairs counts every type at once
    pair = np.where(known, codes * k + etype, -1)
    touch = etype != EVENT_TYPES.index("email_sent")
    is_pricing = etype == EVENT_TYPES.index("pricing_view")
    pricing_last = np.full(n, -np.inf)
    created = _seconds(customers["created_at"])

    def by_type(lo: int, hi: int) -> np.ndarray:
        p = pair[lo:hi]
        return np.bincount(p[p >= 0], minlength=n * k).reshape(n, k).astype(float)

    prev = 0
    for cut, alive, last, _ in _cuts(t, codes, customers, cuts, mask=touch):
        c = _seconds_one(cut)
        hi = np.searchsorted(t, c, side="right")
        pm = np.arange(prev, hi)[is_pricing[prev:hi]]
        np.maximum.at(pricing_last, codes[pm], t[pm])
        prev = hi
        f: dict[str, np.ndarray] = {
            "tenure_days": (c - created) / DAY,
            "days_since_last_touch": _recency(cut, last),
            "days_since_pricing_view": _recency(cut, pricing_last),
        }
        for w in WINDOWS:
            a = np.searchsorted(t, c - w * DAY, side="right")
            counts = by_type(a, hi)
            f |= {f"{e}_{w}d": counts[:, j] for j, e in enumerate(EVENT_TYPES)}
            f[f"touches_{w}d"] = np.bincount(codes[a:hi][touch[a:hi]], minlength=n).astype(float)
        total = by_type(0, hi)
        f |= {f"{e}_total": total[:, j] for j, e in enumerate(EVENT_TYPES)}
        life = np.maximum(f["tenure_days"], 1.0)
        f["touches_per_week"] = np.bincount(codes[:hi][touch[:hi]], minlength=n) * 7.0 / life
        f["pricing_share"] = _rate(f["pricing_view_total"], f["pricing_view_total"] + f["page_view_total"])
        f["email_open_rate_total"] = _rate(f["email_open_total"], f["email_sent_total"])
        a90 = np.searchsorted(t, c - 90 * DAY, side="right")
        prior = np.bincount(codes[a90:hi][touch[a90:hi]], minlength=n) - f["touches_30d"]
        f["touch_trend"] = (f["touches_30d"] + 1.0) / (prior / 2.0 + 1.0)
        f["email_open_rate_90d"] = _rate(f["email_open_90d"], f["email_sent_90d"])
        f["email_click_rate_90d"] = _rate(f["email_click_90d"], f["email_open_90d"])
        yield _frame(customers, cut, alive, f)


def _cuts(
    t: np.ndarray, codes: np.ndarray, customers: pd.DataFrame, cuts: pd.DatetimeIndex, mask: np.ndarray
) -> Iterator[tuple[pd.Timestamp, np.ndarray, np.ndarray, int]]:
    """Walk cut times in order, keeping each customer's last (masked) event time up to the cut."""
    created = _seconds(customers["created_at"])
    last = np.full(len(customers), -np.inf)
    prev = 0
    for cut in cuts:
        hi = np.searchsorted(t, _seconds_one(cut), side="right")
        m = mask[prev:hi]
        np.maximum.at(last, codes[prev:hi][m], t[prev:hi][m])
        yield cut, created <= _seconds_one(cut), last, prev
        prev = hi


def _frame(customers: pd.DataFrame, cut: pd.Timestamp, alive: np.ndarray, f: dict[str, np.ndarray]) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            k: pd.array(v[alive], dtype="string") if v.dtype.kind in "OU" else np.asarray(v, dtype=float)[alive]
            for k, v in f.items()
        }
    )
    out.insert(0, TS, cut)
    out.insert(0, ENTITY, customers[ENTITY].to_numpy()[alive])
    return out


def _recency(cut: pd.Timestamp, last: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(last), (_seconds_one(cut) - last) / DAY, NO_TOUCH)


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(len(num), np.nan), where=den > 0)


def _by_time(table: pd.DataFrame, customers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds, customer row index, permutation) of a table's rows in time order."""
    t = _seconds(table["ts"])
    order = np.argsort(t, kind="stable")
    return t[order], _codes(table[ENTITY], customers[ENTITY])[order], order


def _codes(ids: pd.Series, universe: pd.Series) -> np.ndarray:
    """Row index of each id in `universe`; unknown ids would be a data error, caught at import.
    A categorical column is mapped through its categories only (millions of rows, thousands of hashes)."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        lookup = pd.Index(universe).get_indexer(ids.cat.categories.astype(str))
        codes = np.where(ids.cat.codes.to_numpy() >= 0, lookup[ids.cat.codes.to_numpy()], -1)
    else:
        codes = pd.Index(universe).get_indexer(ids)
    if (codes < 0).any():
        raise ValueError(f"{int((codes < 0).sum())} rows reference a customer_id not in customers")
    return codes


def _seconds(ts: pd.Series) -> np.ndarray:
    ns = pd.to_datetime(ts, utc=True).dt.tz_localize(None).to_numpy("datetime64[ns]").astype(np.int64)
    return ns / 1e9


def _seconds_one(ts: pd.Timestamp) -> float:
    return pd.Timestamp(ts).timestamp()
