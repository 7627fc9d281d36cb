"""Accepted conversion events and their deliveries (a transactional outbox, serving/outbox.py): SQLite with WAL and
a full fsync per commit embedded, PostgreSQL in production. An event is stored with its per-platform delivery rows in
one transaction before the API answers 202; delivery claims rows with a lease, sends one batch per platform and
records each row's outcome, so one event reaches one platform once (the platforms' own dedup keys, event_id /
orderId, cover a crash between their answer and our commit)."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from leadscope.db import engine_for, upsert_insert
from serving.outbox import Leases, Policy
from serving.signals.mapping import Mapping
from serving.signals.platforms import EXPORTERS, Event, Exporter

NO_CONSENT = "no ads consent: consent_ads is not true for this customer (missing counts as no)"
metadata = MetaData()
events = Table(
    "conversion_events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("customer_id", String(128), nullable=False, index=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("value", Float),
    Column("value_kind", String(16), nullable=False),
    Column("currency", String(3)),
    Column("identifiers", Text, nullable=False),  # JSON: platform-hashed identifiers and click ids, no raw PII
    Column("received_at", DateTime(timezone=True), nullable=False),
)
deliveries = Table(
    "conversion_deliveries",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("status", String(16), nullable=False, index=True),  # pending, sent, failed, skipped
    Column("reason", Text),
    Column("row", Text),  # the platform's payload row (JSON)
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_token", String(36)),
    Column("lease_until", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
)


def _event_row(e: Event, kind: str, now: datetime) -> dict:
    return {
        "event_id": e.event_id,
        "customer_id": e.customer_id,
        "ts": e.ts,
        "stage": e.stage,
        "value": e.value,
        "value_kind": kind,
        "currency": e.currency,
        "identifiers": json.dumps(e.ids, separators=(",", ":")),
        "received_at": now,
    }


def _delivery_row(
    platform: str, event_id: str, state: str, reason: str | None, row: dict | None, now: datetime
) -> dict:
    return {
        "platform": platform,
        "event_id": event_id,
        "status": state,
        "reason": reason,
        "row": json.dumps(row, separators=(",", ":")) if row is not None else None,
        "attempts": 0,
        "next_attempt_at": now,
    }


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class Outbox:
    def __init__(self, url: str, mapping: Mapping, policy: Policy | None = None) -> None:
        self.engine: Engine = engine_for(url)
        metadata.create_all(self.engine)
        self.mapping = mapping
        self.policy = policy or Policy()
        self.leases = Leases(self.engine, deliveries, deliveries.c.event_id, self.policy)
        self.exporters: dict[str, Exporter] = {
            name: EXPORTERS[name](cfg) for name, cfg in mapping.platforms.items() if cfg.enabled
        }

    # --- ingest -------------------------------------------------------------------------------------------------

    def _insert_new(self, c: Connection, rows: list[dict]) -> set[str]:
        """Insert the events whose id is not stored yet (ON CONFLICT DO NOTHING); returns the ids it inserted.
        Starting the transaction with the write also keeps SQLite from failing a read lock's upgrade."""
        if not rows:
            return set()
        stmt = (
            upsert_insert(self.engine)(events)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(events.c.event_id)
        )
        return {r[0] for r in c.execute(stmt, rows)}

    def add(self, items: list[Event], value_kinds: list[str], now: datetime | None = None) -> dict:
        """Store new events and their delivery rows in one transaction (idempotent by event_id: a repeated id
        is reported as a duplicate and changes nothing). Insert-or-ignore, so clients racing with the same ids
        (a CRM retrying) each get an answer: whichever commits first stores the event, the others see it as a
        duplicate. Returns counts for the 202 answer."""
        now = now or datetime.now(UTC)
        ids = [e.event_id for e in items]
        first: dict[str, tuple[Event, str]] = {}
        for e, kind in zip(items, value_kinds, strict=True):
            first.setdefault(e.event_id, (e, kind))
        status: Counter = Counter()
        with self.engine.begin() as c:
            stored = self._insert_new(c, [_event_row(e, kind, now) for e, kind in first.values()])
            rows = []
            for event_id in (i for i in first if i in stored):
                e = first[event_id][0]
                for name, exp in self.exporters.items():
                    row, reason = exp.row(e, now) if e.ads_consent else (None, NO_CONSENT)
                    state = "pending" if row is not None else "skipped"
                    status[(name, state)] += 1
                    rows.append(_delivery_row(name, e.event_id, state, reason, row, now))
            if rows:
                c.execute(deliveries.insert(), rows)
        fresh = [i for i in first if i in stored]
        seen = set(ids) - set(fresh)
        per_platform: dict[str, dict[str, int]] = {}
        for (name, state), n in status.items():
            per_platform.setdefault(name, {})[state] = n
        dups, counted = [], set()
        for i in ids:
            if i in seen or i in counted:
                dups.append(i)
            counted.add(i)
        return {"accepted": len(fresh), "duplicates": dups, "deliveries": per_platform}

    # --- delivery -----------------------------------------------------------------------------------------------

    def _claim(self, platform: str, limit: int, now: datetime) -> tuple[str, list[tuple[str, dict]]]:
        cols = [deliveries.c.event_id, deliveries.c.row]
        token, rows = self.leases.claim(now, limit, deliveries.c.platform == platform, columns=cols)
        return token, [(r[0], json.loads(r[1])) for r in rows]

    def batches(self, platform: str, limit: int = 10_000) -> list[dict]:
        """Pending payloads as the platform's requests, for a manual upload (nothing is marked)."""
        exp = self.exporters[platform]
        with self.engine.connect() as c:
            rows = c.execute(
                select(deliveries.c.row)
                .where(deliveries.c.platform == platform, deliveries.c.status == "pending")
                .order_by(deliveries.c.event_id)
                .limit(limit)
            ).all()
        payload = [json.loads(r[0]) for r in rows]
        out = []
        for i in range(0, len(payload), exp.max_batch):
            req = exp.request(payload[i : i + exp.max_batch])
            out.append({"url": req.url.split("?")[0], "rows": len(payload[i : i + exp.max_batch]), "body": req.body})
        return out

    def deliver_once(self, platform: str, client: httpx.Client, now: datetime | None = None) -> Counter:
        """One batch to one platform: claim, send, record each row's outcome. Returns outcome counts."""
        now = now or datetime.now(UTC)
        exp = self.exporters[platform]
        token, claimed = self._claim(platform, min(exp.max_batch, self.policy.max_batch or exp.max_batch), now)
        counts: Counter = Counter()
        if not claimed:
            return counts
        live, results = [], {}
        for event_id, row in claimed:
            stale = exp.still_valid(row, now)
            if stale:
                results[event_id] = ("skipped", stale)
            else:
                live.append((event_id, row))
        if live:
            req = exp.request([r for _, r in live])
            try:
                resp = client.post(req.url, json=req.body, headers=req.headers, timeout=self.policy.timeout)
                try:
                    body = resp.json()
                except ValueError:
                    body = resp.text[:200]
                outcomes = exp.outcomes(resp.status_code, body, len(live))
            except httpx.HTTPError as exc:
                outcomes = [("retry", f"{type(exc).__name__}")] * len(live)
            for (event_id, _), outcome in zip(live, outcomes, strict=True):
                results[event_id] = outcome
        sent = [event_id for event_id, (kind, _) in results.items() if kind == "sent"]
        with self.engine.begin() as c:
            mine = and_(deliveries.c.platform == platform, self.leases.mine(token))
            if sent:  # the common case, one statement for the whole batch
                c.execute(
                    update(deliveries)
                    .where(mine, deliveries.c.event_id.in_(sent))
                    .values(**self.policy.settled("sent", 0, now)[1], **Leases.released())
                )
                counts["sent"] += len(sent)
            for event_id, (kind, reason) in results.items():
                if kind == "sent":
                    continue
                key = and_(mine, deliveries.c.event_id == event_id)
                if kind == "skipped":
                    values = {"status": "skipped"}
                else:
                    attempts = c.execute(select(deliveries.c.attempts).where(key)).scalar_one() + 1
                    kind, values = self.policy.settled(kind, attempts, now)
                    values["attempts"] = attempts
                c.execute(update(deliveries).where(key).values(reason=reason, **values, **Leases.released()))
                counts[kind] += 1
        return counts

    def deliver(self, client: httpx.Client, *, until_empty: bool = True, max_seconds: float = 600) -> Counter:
        """Send every due row to every platform; with until_empty, wait out backoffs until nothing is pending."""
        total: Counter = Counter()
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            moved = False
            for platform in self.exporters:
                got = self.deliver_once(platform, client)
                total.update(got)
                moved = moved or bool(got)
            if moved:
                continue
            nxt = self.next_due()
            if not until_empty or nxt is None:
                break
            time.sleep(min(max((nxt - datetime.now(UTC)).total_seconds(), 0.01), 1.0))
        return total

    def next_due(self) -> datetime | None:
        with self.engine.connect() as c:
            at = c.execute(
                select(func.min(deliveries.c.next_attempt_at)).where(deliveries.c.status == "pending")
            ).scalar()
        return _utc(at) if at is not None else None

    def status(self) -> dict[str, dict[str, int]]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(deliveries.c.platform, deliveries.c.status, func.count()).group_by(
                    deliveries.c.platform, deliveries.c.status
                )
            ).all()
        out: dict[str, dict[str, int]] = {}
        for platform, state, n in rows:
            out.setdefault(platform, {})[state] = n
        return out

    def failures(self, limit: int = 20) -> list[dict]:
        """The newest failed deliveries: platform, event id, attempts and the reason (what the console lists)."""
        q = (
            select(deliveries.c.platform, deliveries.c.event_id, deliveries.c.attempts, deliveries.c.reason)
            .where(deliveries.c.status == "failed")
            .order_by(deliveries.c.next_attempt_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def event_status(self, event_id: str) -> dict | None:
        with self.engine.connect() as c:
            ev = c.execute(
                select(events.c.stage, events.c.value, events.c.value_kind).where(events.c.event_id == event_id)
            ).first()
            if ev is None:
                return None
            rows = c.execute(
                select(deliveries.c.platform, deliveries.c.status, deliveries.c.reason, deliveries.c.attempts).where(
                    deliveries.c.event_id == event_id
                )
            ).all()
        return {
            "event_id": event_id,
            "stage": ev[0],
            "value": ev[1],
            "value_kind": ev[2],
            "deliveries": {p: {"status": s, "reason": r, "attempts": a} for p, s, r, a in rows},
        }
