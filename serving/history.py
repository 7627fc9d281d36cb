"""Score history: the last score served per customer and model, and every change worth telling (a grade change, or
a move of at least `score_change_delta` points), each with the reasons that moved most. Written when live records
change a customer's features (serving/live.py), in the same transaction as the webhook messages they trigger."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, Text, and_, select
from sqlalchemy.engine import Connection

from leadscope.db import engine_for, upsert_insert

metadata = MetaData()
state = Table(
    "score_state",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("model", String(64), primary_key=True),
    Column("version", String(16), nullable=False),
    Column("score", Integer),  # null: the customer had no features yet (a new lead)
    Column("grade", String(1)),
    Column("probability", Float),
    Column("at", DateTime(timezone=True), nullable=False),
)
changes = Table(
    "score_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False, index=True),
    Column("model", String(64), nullable=False),
    Column("version", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("old_score", Integer),
    Column("old_grade", String(1)),
    Column("new_score", Integer, nullable=False),
    Column("new_grade", String(1), nullable=False),
    Column("probability", Float, nullable=False),
    Column("moved", Text, nullable=False),  # JSON: the reasons whose impact moved most
    Column("records", Text, nullable=False),  # JSON: the live record ids that caused it
)


@dataclass(frozen=True)
class Point:
    score: int | None
    grade: str | None
    probability: float | None


@dataclass
class Change:
    customer_id: str
    model: str
    version: str
    at: datetime
    old: Point
    new: Point
    moved: list[dict] = field(default_factory=list)
    records: list[str] = field(default_factory=list)

    def payload(self) -> dict:
        return {
            "customer_id": self.customer_id,
            "model": self.model,
            "version": self.version,
            "at": self.at.isoformat(),
            "previous": None if self.old.score is None else vars(self.old),
            "current": vars(self.new),
            "moved": self.moved,
            "records": self.records,
        }


def worth_recording(old: Point, new: Point, delta: int) -> bool:
    if new.score is None:
        return False
    if old.score is None or old.grade != new.grade:
        return True
    return abs(new.score - old.score) >= delta


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _rows(model: str, version: str, points: dict[str, Point], at: datetime) -> list[dict]:
    return [{"customer_id": cid, "model": model, "version": version, "at": at, **vars(p)} for cid, p in points.items()]


class ScoreHistory:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)

    def last(self, model: str, ids: list[str]) -> dict[str, Point]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(state.c.customer_id, state.c.score, state.c.grade, state.c.probability).where(
                    state.c.model == model, state.c.customer_id.in_(ids)
                )
            ).all()
        return {r[0]: Point(r[1], r[2], r[3]) for r in rows}

    def remember(self, c: Connection, model: str, version: str, points: dict[str, Point], at: datetime) -> None:
        """Upsert the last served point of these customers (the baseline the next change is measured from)."""
        if not points:
            return
        stmt = upsert_insert(self.engine)(state)
        stmt = stmt.on_conflict_do_update(
            index_elements=["customer_id", "model"],
            set_={k: stmt.excluded[k] for k in ("version", "score", "grade", "probability", "at")},
        )
        c.execute(stmt, _rows(model, version, points, at))

    def baseline(self, model: str, version: str, points: dict[str, Point], at: datetime) -> None:
        """Store the points of customers without one yet (insert-or-ignore), before their features change: a
        crash after the online write still measures the change from what was served before it."""
        if not points:
            return
        stmt = upsert_insert(self.engine)(state).on_conflict_do_nothing(index_elements=["customer_id", "model"])
        with self.engine.begin() as c:
            c.execute(stmt, _rows(model, version, points, at))

    def record(self, c: Connection, found: list[Change]) -> None:
        if found:
            c.execute(
                changes.insert(),
                [
                    {
                        "customer_id": ch.customer_id,
                        "model": ch.model,
                        "version": ch.version,
                        "at": ch.at,
                        "old_score": ch.old.score,
                        "old_grade": ch.old.grade,
                        "new_score": ch.new.score,
                        "new_grade": ch.new.grade,
                        "probability": ch.new.probability,
                        "moved": json.dumps(ch.moved, separators=(",", ":")),
                        "records": json.dumps(ch.records, separators=(",", ":")),
                    }
                    for ch in found
                ],
            )

    def of(self, customer_id: str, model: str | None = None, limit: int = 100) -> list[dict]:
        """The customer's changes, newest first."""
        where = [changes.c.customer_id == customer_id] + ([changes.c.model == model] if model else [])
        with self.engine.connect() as c:
            rows = (
                c.execute(select(changes).where(and_(*where)).order_by(changes.c.id.desc()).limit(limit))
                .mappings()
                .all()
            )
        return [
            {
                "model": r["model"],
                "version": r["version"],
                "at": _utc(r["at"]),
                "previous": None if r["old_score"] is None else {"score": r["old_score"], "grade": r["old_grade"]},
                "current": {"score": r["new_score"], "grade": r["new_grade"], "probability": r["probability"]},
                "moved": json.loads(r["moved"]),
                "records": json.loads(r["records"]),
            }
            for r in rows
        ]
