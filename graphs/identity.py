"""Identity stitching: CRM records → people, linked by shared normalised identifiers.

Connected components of the record–identifier graph (networkx), with a guard: an identifier shared by
more than `max_share` records (a shop's phone typed in for walk-ins, a family tablet) links nobody and is
reported instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import networkx as nx
import pandas as pd
import phonenumbers

IDENTIFIERS = ("email", "phone", "wechat_id", "device_id")
MAX_SHARE = 5
GMAIL = {"gmail.com", "googlemail.com"}


def normalise_email(value: object) -> str | None:
    """Trim, lower-case; for Gmail drop dots in the local part (one mailbox, as Google treats it)."""
    if not isinstance(value, str) or "@" not in value:
        return None
    local, _, domain = value.strip().lower().rpartition("@")
    if domain in GMAIL:
        local, domain = local.split("+", 1)[0].replace(".", ""), "gmail.com"
    return f"{local}@{domain}" if local and domain else None


def normalise_phone(value: object, region: object = None) -> str | None:
    """E.164 via libphonenumber; a number without country code takes the record's country (default US)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        num = phonenumbers.parse(value, region if isinstance(region, str) and len(region) == 2 else "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def identifier_table(customers: pd.DataFrame) -> pd.DataFrame:
    """Long table (customer_id, kind, value) of normalised identifiers."""
    frames = []
    for kind in IDENTIFIERS:
        if kind not in customers:
            continue
        if kind == "email":
            vals = customers[kind].map(normalise_email)
        elif kind == "phone":
            country = customers["country"] if "country" in customers else pd.Series(None, index=customers.index)
            vals = pd.Series(
                [normalise_phone(v, c) for v, c in zip(customers[kind], country, strict=True)], index=customers.index
            )
        else:
            vals = customers[kind].where(customers[kind].astype("string").str.strip() != "")
        frames.append(pd.DataFrame({"customer_id": customers["customer_id"], "kind": kind, "value": vals}))
    out = pd.concat(frames, ignore_index=True)
    return out[out["value"].notna()].reset_index(drop=True)


@dataclass
class Resolution:
    person: pd.Series  # customer_id → person_id
    merges: pd.DataFrame  # person_id, records, customer_ids, linked_by
    guarded: pd.DataFrame  # kind, fingerprint, records: identifiers that were not used


def resolve(customers: pd.DataFrame, *, max_share: int = MAX_SHARE) -> Resolution:
    """Person id per record = the earliest-created record of its component (stable as records arrive)."""
    ids = identifier_table(customers)
    share = ids.groupby(["kind", "value"])["customer_id"].transform("nunique")
    guarded = ids[share > max_share]
    used = ids[share <= max_share]
    g = nx.Graph()
    g.add_nodes_from(("r", c) for c in customers["customer_id"])
    rows = used[["customer_id", "kind", "value"]].itertuples(index=False)
    g.add_edges_from((("r", c), ("i", k, v)) for c, k, v in rows)
    order = customers.assign(_t=pd.to_datetime(customers["created_at"], utc=True)).sort_values(["_t", "customer_id"])
    rank = {c: i for i, c in enumerate(order["customer_id"])}
    person = {}
    for comp in nx.connected_components(g):
        members = sorted((n[1] for n in comp if n[0] == "r"), key=rank.__getitem__)
        for m in members:
            person[m] = f"P-{members[0]}"
    person_s = customers["customer_id"].map(person)
    by = used.assign(person_id=used["customer_id"].map(person))
    sizes = person_s.value_counts()
    multi = sizes[sizes > 1].index
    linked = (
        by[by["person_id"].isin(multi)]
        .groupby(["person_id", "kind"])["customer_id"]
        .nunique()
        .loc[lambda s: s > 1]
        .reset_index()
        .groupby("person_id")["kind"]
        .agg(lambda k: ",".join(sorted(k)))
    )
    merges = pd.DataFrame({"person_id": multi, "records": sizes[multi].to_numpy()})
    merges["customer_ids"] = merges["person_id"].map(
        customers.groupby(person_s)["customer_id"].agg(lambda s: " ".join(sorted(s)))
    )
    merges["linked_by"] = merges["person_id"].map(linked)
    guard = (
        guarded.groupby(["kind", "value"])["customer_id"]
        .nunique()
        .rename("records")
        .reset_index()
        .assign(fingerprint=lambda d: d["value"].map(_fingerprint))
        .drop(columns="value")
    )
    return Resolution(
        person=pd.Series(person_s.to_numpy(), index=customers["customer_id"].to_numpy()),
        merges=merges.sort_values("person_id", ignore_index=True),
        guarded=guard,
    )


def pair_scores(predicted: pd.Series, truth: pd.Series) -> dict[str, float]:
    """Pairwise precision and recall of 'same person' between two labelings of the same records."""
    df = pd.DataFrame({"p": predicted.to_numpy(), "t": truth.reindex(predicted.index).to_numpy()})
    pairs = lambda s: float((s * (s - 1) / 2).sum())  # noqa: E731
    tp = pairs(df.groupby(["p", "t"]).size())
    pred, true = pairs(df.groupby("p").size()), pairs(df.groupby("t").size())
    return {
        "precision": tp / pred if pred else 1.0,
        "recall": tp / true if true else 1.0,
        "predicted_pairs": pred,
        "true_pairs": true,
    }


def _fingerprint(value: str) -> str:
    """A short SHA-256 prefix: lets an operator find the identifier without printing personal data."""
    return hashlib.sha256(value.encode()).hexdigest()[:12]
