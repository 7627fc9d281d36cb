"""The one outbox mechanism of leadscope: rows stored in the same transaction as what they report (conversion
signals: serving/signals/outbox.py; score-change webhooks: serving/webhooks.py), then claimed with a lease, sent,
and settled by the lease holder only: sent, failed, or retried after a backoff with jitter, until a most number of
attempts. Several workers share the work (a row is claimed by one of them at a time); a worker that dies holding a
lease lets its rows be claimed again when the lease ends. At least once: receivers deduplicate by their key.

Hand-written: the schedule is persisted in the service database (SQLite or PostgreSQL) across processes and
restarts, which in-process retry libraries (tenacity, backoff) do not do; it is three statements over SQLAlchemy.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Table, and_, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement


@dataclass
class Policy:
    max_attempts: int = 12
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    lease_seconds: float = 120.0
    timeout: float = 10.0
    max_batch: int | None = None  # below the platform's own limit, e.g. to keep one failure small

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with "equal jitter" (half fixed, half random): a failing receiver is not hammered
        and retries of many rows spread out."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** max(attempts - 1, 0))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def settled(self, outcome: str, attempts: int, now: datetime) -> tuple[str, dict]:
        """A row's outcome after its `attempts`-th attempt and the values that record it: a retry past the most
        attempts is a failure; a retry waits its backoff."""
        if outcome == "retry" and attempts >= self.max_attempts:
            outcome = "failed"
        if outcome == "sent":
            return outcome, {"status": "sent", "sent_at": now, "reason": None}
        if outcome == "failed":
            return outcome, {"status": "failed"}
        return outcome, {"next_attempt_at": now + timedelta(seconds=self.backoff(attempts))}


class Leases:
    """Claims of due rows of one outbox table (columns status, next_attempt_at, lease_token, lease_until)."""

    def __init__(self, engine: Engine, table: Table, key: Column, policy: Policy) -> None:
        self.engine, self.table, self.key, self.policy = engine, table, key, policy

    def claim(self, now: datetime, limit: int, *where: ColumnElement, columns: list[Column]) -> tuple[str, list]:
        """Lease up to `limit` due rows (oldest due first) matching `where`: (the lease token, their `columns`)."""
        t, token = self.table, str(uuid.uuid4())
        due = and_(
            t.c.status == "pending",
            t.c.next_attempt_at <= now,
            or_(t.c.lease_until.is_(None), t.c.lease_until < now),
            *where,
        )
        with self.engine.begin() as c:
            ids = [r[0] for r in c.execute(select(self.key).where(due).order_by(t.c.next_attempt_at).limit(limit))]
            if not ids:
                return token, []
            c.execute(
                update(t)
                .where(due, self.key.in_(ids))
                .values(lease_token=token, lease_until=now + timedelta(seconds=self.policy.lease_seconds))
            )
            rows = c.execute(select(*columns).where(t.c.lease_token == token, *where)).all()
        return token, rows

    def mine(self, token: str) -> ColumnElement:
        """The rows this lease holds: only its holder settles them."""
        return self.table.c.lease_token == token

    @staticmethod
    def released() -> dict:
        return {"lease_token": None, "lease_until": None}
