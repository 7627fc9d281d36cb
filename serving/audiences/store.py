"""Stored audiences: the audience record and its ranked members (tables beside the API keys: SQLite embedded,
PostgreSQL in production), and the one lookup from an audience id to population rows."""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, Text, delete, insert, select, update

from leadscope.db import engine_for
from training import lookalike

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


class AudienceUnavailable(LookupError):
    """An audience id that is unknown (status None) or not ready (running, failed)."""

    def __init__(self, audience_id: str, status: str | None) -> None:
        self.audience_id, self.status = audience_id, status
        super().__init__(f"no audience {audience_id}" if status is None else f"audience {audience_id} is {status}")


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

    def recent(self, limit: int = 20) -> list[dict]:
        """The newest audiences (id, name, status, size, created), newest first: the console's list."""
        q = (
            select(audiences.c.audience_id, audiences.c.name, audiences.c.status, audiences.c.size)
            .order_by(audiences.c.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def page(self, audience_id: str, offset: int, limit: int) -> list[dict]:
        q = (
            select(members.c.customer_id, members.c.rank, members.c.similarity)
            .where(members.c.audience_id == audience_id, members.c.rank > offset)
            .order_by(members.c.rank)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def ready(self, audience_id: str) -> dict:
        """The audience record; AudienceUnavailable when it is unknown or not (yet) ready."""
        found = self.get(audience_id)
        if found is None or found["status"] != "ready":
            raise AudienceUnavailable(audience_id, None if found is None else found["status"])
        return found

    def member_rows(self, audience_id: str, index: pd.Index) -> np.ndarray:
        """Row numbers in a population (by its customer index) of a ready audience's members, in rank order;
        members no longer in the population are left out."""
        rows = index.get_indexer(self.member_ids(audience_id)["customer_id"])
        return rows[rows >= 0]

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
