"""Lookalike audiences kept for marketers: the audience record, its ranked members, its build and its export.

Tables live next to the API keys (SQLite embedded, PostgreSQL in production). A build runs once: in the request
for small audiences, on the server's audience worker thread for large ones (status `running` meanwhile).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, Text, delete, insert, select, update

from leadscope.settings import Settings
from serving.keys import engine_for
from serving.signals import hashing
from training import insight as insight_lib
from training import lookalike
from training.lookalike import Population

log = logging.getLogger("leadscope.audiences")
metadata = MetaData()
audiences = Table(
    "audiences",
    metadata,
    Column("audience_id", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("status", String(16), nullable=False),  # running, ready, failed
    Column("size", Integer, nullable=False),
    Column("spec", Text, nullable=False),  # JSON: size rule, exclusions, seed summary (counts, unknown ids)
    Column("metrics", Text),  # JSON: validation metrics, weights, MLflow run id
    Column("error", Text),
    Column("owner", String(200)),  # host:pid building it, so a restart can tell an orphaned build
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)
members = Table(
    "audience_members",
    metadata,
    Column("audience_id", String(40), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("similarity", Float, nullable=False),
)
FORMATS = ("meta", "google")
UNKNOWN_SHOWN = 100  # unknown seed ids echoed back (ids are pseudonymous CRM keys, not personal data)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Request:
    seed_customer_ids: list[str]
    size: int | None
    percent: float | None
    exclude: tuple[str, ...]
    name: str

    def target_size(self, population: int) -> int:
        return self.size if self.size is not None else max(1, int(round(population * (self.percent or 0) / 100)))


class AudienceStore:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)

    def create(self, req: Request, size: int, seed: dict) -> str:
        audience_id = "aud_" + uuid.uuid4().hex[:20]
        spec = {"size": req.size, "percent": req.percent, "exclude": list(req.exclude), "seed": seed}
        with self.engine.begin() as conn:
            conn.execute(
                insert(audiences).values(
                    audience_id=audience_id,
                    name=req.name,
                    status="running",
                    size=size,
                    spec=json.dumps(spec),
                    owner=_owner(),
                    created_at=datetime.now(UTC),
                )
            )
        return audience_id

    def finish(self, audience_id: str, built: lookalike.Built, ids: np.ndarray, metrics: dict) -> None:
        rows = [
            {"audience_id": audience_id, "rank": r + 1, "customer_id": str(c), "similarity": float(s)}
            for r, (c, s) in enumerate(zip(ids[built.members], built.similarity, strict=True))
        ]
        with self.engine.begin() as conn:
            conn.execute(delete(members).where(members.c.audience_id == audience_id))
            for start in range(0, len(rows), 10_000):
                conn.execute(insert(members), rows[start : start + 10_000])
            conn.execute(
                update(audiences)
                .where(audiences.c.audience_id == audience_id)
                .values(status="ready", metrics=json.dumps(metrics), finished_at=datetime.now(UTC), size=len(rows))
            )

    def fail(self, audience_id: str, message: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(audiences)
                .where(audiences.c.audience_id == audience_id)
                .values(status="failed", error=message, finished_at=datetime.now(UTC))
            )

    def orphans_failed(self) -> int:
        """Builds left `running` by a process of this host that no longer exists (a restart) become `failed`."""
        host = socket.gethostname()
        with self.engine.begin() as conn:
            running = conn.execute(
                select(audiences.c.audience_id, audiences.c.owner).where(audiences.c.status == "running")
            ).all()
            gone = [a for a, owner in running if _dead(owner or "", host)]
            if gone:
                conn.execute(
                    update(audiences)
                    .where(audiences.c.audience_id.in_(gone))
                    .values(status="failed", error="interrupted by a restart; create it again")
                )
        return len(gone)

    def get(self, audience_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(audiences).where(audiences.c.audience_id == audience_id)).mappings().first()
        if row is None:
            return None
        spec = json.loads(row["spec"])
        return {
            "audience_id": row["audience_id"],
            "name": row["name"],
            "status": row["status"],
            "size": row["size"],
            "requested": {"size": spec["size"], "percent": spec["percent"]},
            "exclude": spec["exclude"],
            "seed": spec["seed"],
            "metrics": json.loads(row["metrics"]) if row["metrics"] else None,
            "error": row["error"],
            "created_at": _iso(row["created_at"]),
            "finished_at": _iso(row["finished_at"]),
        }

    def page(self, audience_id: str, offset: int, limit: int) -> list[dict]:
        q = (
            select(members.c.customer_id, members.c.rank, members.c.similarity)
            .where(members.c.audience_id == audience_id, members.c.rank > offset)
            .order_by(members.c.rank)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def member_ids(self, audience_id: str) -> pd.DataFrame:
        q = (
            select(members.c.customer_id, members.c.rank, members.c.similarity)
            .where(members.c.audience_id == audience_id)
            .order_by(members.c.rank)
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(q).all(), columns=["customer_id", "rank", "similarity"])


def _iso(at: datetime | None) -> str | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    return None if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def _dead(owner: str, host: str) -> bool:
    name, _, pid = owner.rpartition(":")
    if name != host or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def resolve(pop: Population, req: Request) -> tuple[np.ndarray, dict, int]:
    """(seed rows, seed summary, target size); ValueError naming the field when the request cannot be built."""
    rows, unknown = pop.resolve(req.seed_customer_ids)
    seed = {
        "given": len(req.seed_customer_ids),
        "distinct": len(set(req.seed_customer_ids)),
        "resolved": int(len(rows)),
        "unknown_count": len(unknown),
        "unknown": unknown[:UNKNOWN_SHOWN],
    }
    if len(rows) < lookalike.MIN_SEED:
        raise SeedTooSmall(
            f"seed_customer_ids: {len(rows)} of {seed['distinct']} distinct ids resolved to known customers; "
            f"a lookalike needs at least {lookalike.MIN_SEED}",
            seed,
        )
    size = req.target_size(len(pop))
    limit = int(len(pop) * 0.10)
    if req.size is not None and size > limit:
        raise ValueError(f"size: at most 10% of the population ({limit} of {len(pop)})")
    return rows, seed, size


class SeedTooSmall(ValueError):
    def __init__(self, message: str, seed: dict) -> None:
        super().__init__(message)
        self.seed = seed


def run_build(
    settings: Settings,
    store: AudienceStore,
    pop: Population,
    audience_id: str,
    req: Request,
    seed_rows: np.ndarray,
    size: int,
    track: Callable[[dict], str | None] | None = None,
) -> None:
    """Build and store; any failure marks the audience failed (with a message that names no person)."""
    try:
        state = lookalike.random_state_for(list(pop.ids[seed_rows]), size, req.exclude)
        built = lookalike.build(pop, seed_rows, size, req.exclude, random_state=state, threads=settings.num_threads)
        metrics = {
            **{k: round(v, 6) for k, v in built.metrics.items()},
            "weights": dict(zip(("classifier", "embedding", "graph"), built.weights, strict=True)),
            "candidates": built.candidates,
            "method": lookalike.METHOD,
            "population": len(pop),
            "population_as_of": pop.as_of,
        }
        if track is not None:
            metrics["mlflow_run_id"] = track(
                {"audience_id": audience_id, "seed_resolved": len(seed_rows), "size": size, **metrics}
            )
        store.finish(audience_id, built, pop.ids, metrics)
    except ValueError as exc:
        store.fail(audience_id, str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded on the audience; the server keeps running
        log.exception("audience build failed")
        store.fail(audience_id, f"build failed: {type(exc).__name__}")


def tracker(settings: Settings) -> Callable[[dict], str | None]:
    """One MLflow run per audience build in the 'lookalike' experiment: sizes, method, weights, validation."""

    def track(info: dict) -> str | None:
        from training import tracking

        client = tracking.configure(settings)
        run = client.create_run(tracking.experiment(settings, "lookalike"), run_name=info["audience_id"])
        rid = run.info.run_id
        params = {k: info[k] for k in ("audience_id", "seed_resolved", "size", "method", "candidates", "population")}
        params.update({f"weight_{k}": v for k, v in info["weights"].items()})
        params["population_as_of"] = info["population_as_of"]
        for k, v in params.items():
            client.log_param(rid, k, v)
        for k, v in info.items():
            if k.startswith("val_") or k == "build_seconds":
                client.log_metric(rid, k, float(v))
        client.set_terminated(rid)
        return rid

    return track


# --- insight -----------------------------------------------------------------------------------------------------


def attributes_of(pop: Population) -> pd.DataFrame:
    """Insight attributes of the population, computed once per snapshot."""
    if "attributes" not in pop.derived:
        pop.derived["attributes"] = insight_lib.attributes(pop.frame)
    return pop.derived["attributes"]


def report(
    pop: Population,
    attrs: pd.DataFrame,
    rows: np.ndarray,
    *,
    champion: object | None,
    horizon_days: int,
    pair: list[str] | None = None,
    other: np.ndarray | None = None,
    compare: str | None = None,
    top: int = 10,
    audience_id: str = "",
    size: int = 0,
) -> dict:
    out = {
        "audience_id": audience_id,
        "size": size or len(rows),
        "population": len(pop),
        "distinguishing": [x.as_dict() for x in insight_lib.distinguishing(attrs, rows, top=top)],
        "expected_conversion": expected_conversion(champion, pop, rows, horizon_days),
        "attributes": list(attrs.columns),
    }
    if pair:
        out["cross"] = {"attributes": pair, "cells": insight_lib.cross(attrs, rows, *pair)}
    if other is not None:
        out["overlap"] = {"compare": compare, **insight_lib.overlap(attrs, rows, other, top=top)}
    return out


def expected_conversion(champion: object | None, pop: Population, rows: np.ndarray, horizon_days: int) -> dict | None:
    """Mean calibrated P(convert within the horizon) over the audience's open leads (not yet customers), next to
    the same for every open lead in the population."""
    if champion is None or pop.frame is None:
        return None
    scorer = champion.scorer  # training.tracking.Champion
    leads = rows[~pop.bought[rows]]
    info = {"model": champion.name, "version": champion.version, "horizon_days": horizon_days}
    if not len(leads):
        return {"leads": 0, "rate": None, **info}
    if "lead_probability" not in pop.derived or pop.derived["lead_probability"][0] != champion.version:
        p_all = scorer.probability(scorer.encoder.transform(pop.frame))
        pop.derived["lead_probability"] = (champion.version, p_all)
    p_all = pop.derived["lead_probability"][1]
    return {
        "leads": int(len(leads)),
        "rate": round(float(p_all[leads].mean()), 4),
        "expected_conversions": round(float(p_all[leads].sum()), 1),
        "population_rate": round(float(p_all[~pop.bought].mean()), 4),
        **info,
    }


# --- export ------------------------------------------------------------------------------------------------------

META_COLUMNS = ("email", "phone", "fn", "ln", "ct", "st", "zip", "country", "extern_id", "value")
GOOGLE_COLUMNS = ("Email", "Phone", "First Name", "Last Name", "Country", "Zip")


def _g(row: dict, key: str) -> str | None:
    v = row.get(key)
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def _safe(fn: Callable[..., str | None], *args: str | None) -> str:
    """A value the platform's rules cannot read is left empty for that row (never sent raw)."""
    try:
        return fn(*args) or ""
    except ValueError:
        return ""


def export_rows(fmt: str, people: pd.DataFrame, similarity: pd.Series) -> Iterable[list[str]]:
    """Rows of the platform's customer-list file; every identifier normalised and hashed by its rules.

    Meta (Customer List, value-based): email, phone (E.164 digits, no '+'), fn, ln, ct, st, zip, country,
    extern_id hashed; `value` is the lookalike similarity. Google (Customer Match CSV): Email, Phone (E.164 with
    '+'), First Name, Last Name hashed; Country and Zip in clear, as Google's template wants them."""
    for row, sim in zip(people.to_dict("records"), similarity, strict=True):
        country = _g(row, "country")
        if fmt == "meta":
            yield [
                _safe(hashing.meta_email, _g(row, "email")),
                _safe(hashing.meta_phone, _g(row, "phone"), country),
                _safe(hashing.meta_name, _g(row, "first_name")),
                _safe(hashing.meta_name, _g(row, "last_name")),
                _safe(hashing.meta_location, _g(row, "city")),
                _safe(hashing.meta_location, _g(row, "state")),
                _safe(hashing.meta_zip, _g(row, "zip")),
                _safe(hashing.meta_country, country),
                _safe(hashing.meta_external_id, _g(row, "customer_id")),
                f"{float(sim):.6f}",
            ]
        else:
            yield [
                _safe(hashing.google_email, _g(row, "email")),
                _safe(hashing.google_phone, _g(row, "phone"), country),
                _safe(hashing.google_name, _g(row, "first_name")),
                _safe(hashing.google_name, _g(row, "last_name")),
                (country or "").strip().upper(),
                (_g(row, "zip") or "").strip(),
            ]


def export_csv(fmt: str, customers: pd.DataFrame, audience: pd.DataFrame) -> tuple[str, dict]:
    """(CSV text, counts). Members without ads consent are left out; so are members with no usable identifier."""
    people = audience.merge(customers, on="customer_id", how="left")
    consent = people["consent_ads"] if "consent_ads" in people else pd.Series(True, index=people.index)
    allowed = people[consent.fillna(False).astype(bool).to_numpy()]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(META_COLUMNS if fmt == "meta" else GOOGLE_COLUMNS)
    written = 0
    for r in export_rows(fmt, allowed, allowed["similarity"]):
        if any(r[:4]):  # at least one of email, phone, first/last name
            writer.writerow(r)
            written += 1
    return buf.getvalue(), {
        "members": len(audience),
        "without_ads_consent": len(people) - len(allowed),
        "without_identifier": len(allowed) - written,
        "rows": written,
    }
