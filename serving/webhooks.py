"""Score-change webhooks: subscriptions (URL, models, trigger), messages signed per the Standard Webhooks spec
(the `standardwebhooks` package: HMAC-SHA256 over id, timestamp and body, `whsec_` secrets shown once) and an
outbox of deliveries in the service database: a message is stored in the transaction that records the change,
then sent with a lease, retried with backoff and jitter (serving/outbox.py, as conversion signals are), at least
once; the receiver deduplicates by the `webhook-id` header. A failed delivery can be replayed; each endpoint keeps its
failure state (consecutive failures, last error)."""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import httpx
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from standardwebhooks.webhooks import Webhook

from leadscope.db import engine_for
from serving.addresses import refusal
from serving.history import Change
from serving.outbox import Leases, Policy

Trigger = Literal["grade_change", "threshold", "delta"]
metadata = MetaData()
endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", Text, nullable=False),
    Column("models", Text, nullable=False),  # JSON list
    Column("trigger", String(16), nullable=False),
    Column("threshold", Float),
    Column("delta", Float),
    Column("secret", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("failures", Integer, nullable=False, default=0),  # consecutive failed attempts
    Column("last_error", Text),
    Column("last_success_at", DateTime(timezone=True)),
)
messages = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  # the webhook-id header: the receiver's idempotency key
    Column("endpoint_id", String(40), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False, index=True),  # pending, sent, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_token", String(36)),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_status", Integer),
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
)


class WebhookInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_url(url: str, *, production: bool) -> str:
    """An endpoint URL: http(s) with a host; in production https only and never a private, loopback, link-local
    or reserved address, by literal or by every address the name resolves to, in any form (IPv6 forms of IPv4
    addresses included: serving/addresses.py), so a subscriber cannot point leadscope at its own network."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookInputError("url", "url: must be an http(s) URL with a host")
    if not production:
        return url
    if parts.scheme != "https":
        raise WebhookInputError("url", "url: must be https in production")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise WebhookInputError("url", "url: the host name does not resolve") from exc
    for info in infos:
        why = refusal(ipaddress.ip_address(info[4][0].split("%")[0]))
        if why is not None:
            raise WebhookInputError("url", f"url: {why}")
    return url


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    models: list[str]
    trigger: str
    threshold: float | None
    delta: float | None
    active: bool
    failures: int
    last_error: str | None

    def wants(self, ch: Change) -> bool:
        if not self.active or ch.model not in self.models:
            return False
        old, new = ch.old.score, ch.new.score
        if self.trigger == "grade_change":
            return ch.old.grade != ch.new.grade
        if self.trigger == "threshold":
            assert self.threshold is not None
            was = old is not None and old >= self.threshold
            return was != (new is not None and new >= self.threshold)
        assert self.delta is not None
        return old is None or abs(new - old) >= self.delta

    def public(self) -> dict:
        return {k: v for k, v in vars(self).items()}


def _endpoint(r: object) -> Endpoint:
    return Endpoint(
        r.id, r.url, json.loads(r.models), r.trigger, r.threshold, r.delta, r.active, r.failures, r.last_error
    )


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class Webhooks:
    def __init__(self, url: str, policy: Policy | None = None, *, production: bool = False) -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)
        self.policy = policy or Policy(max_attempts=15, backoff_cap=3600.0)
        self.production = production
        self.leases = Leases(self.engine, messages, messages.c.id, self.policy)
        self._cache: tuple[float, list[Endpoint]] = (0.0, [])

    # --- subscriptions --------------------------------------------------------------------------------------------

    def create(
        self,
        url: str,
        models: list[str],
        trigger: Trigger,
        threshold: float | None = None,
        delta: float | None = None,
    ) -> tuple[Endpoint, str]:
        """A new subscription and its signing secret (returned here only)."""
        check_url(url, production=self.production)
        if trigger == "threshold" and threshold is None:
            raise WebhookInputError("threshold", "threshold: needed with trigger threshold (a score, 0-100)")
        if trigger == "delta" and delta is None:
            raise WebhookInputError("delta", "delta: needed with trigger delta (score points)")
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        row = {
            "id": "ep_" + uuid.uuid4().hex,
            "url": url,
            "models": json.dumps(models),
            "trigger": trigger,
            "threshold": threshold,
            "delta": delta,
            "secret": secret,
            "created_at": datetime.now(UTC),
            "active": True,
            "failures": 0,
        }
        with self.engine.begin() as c:
            c.execute(endpoints.insert(), [row])
        self._cache = (0.0, [])
        return self.get(row["id"]), secret

    def get(self, endpoint_id: str) -> Endpoint | None:
        with self.engine.connect() as c:
            r = c.execute(select(endpoints).where(endpoints.c.id == endpoint_id)).first()
        return _endpoint(r) if r is not None else None

    def list(self) -> list[Endpoint]:
        with self.engine.connect() as c:
            return [_endpoint(r) for r in c.execute(select(endpoints).order_by(endpoints.c.created_at))]

    def delete(self, endpoint_id: str) -> bool:
        with self.engine.begin() as c:
            n = c.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(active=False)).rowcount
        self._cache = (0.0, [])
        return bool(n)

    def active(self, max_age: float = 2.0) -> list[Endpoint]:
        at, cached = self._cache
        if time.monotonic() - at > max_age:
            cached = [e for e in self.list() if e.active]
            self._cache = (time.monotonic(), cached)
        return cached

    # --- messages -------------------------------------------------------------------------------------------------

    def enqueue(self, c: Connection, found: list[Change], now: datetime) -> int:
        """Messages for every active subscription a change matches, in the caller's transaction."""
        rows = []
        for ep in self.active():
            for ch in found:
                if ep.wants(ch):
                    rows.append(self._message(ep.id, "score.changed", ch.payload(), now))
        if rows:
            c.execute(messages.insert(), rows)
        return len(rows)

    def _message(self, endpoint_id: str, kind: str, data: dict, now: datetime) -> dict:
        msg_id = "msg_" + uuid.uuid4().hex
        body = json.dumps({"type": kind, "timestamp": now.isoformat(), "data": data}, separators=(",", ":"))
        return {
            "id": msg_id,
            "endpoint_id": endpoint_id,
            "body": body,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }

    def test(self, endpoint_id: str, client: httpx.Client) -> dict:
        """Store a `webhook.test` message for the endpoint and send it now; returns its delivery state."""
        now = datetime.now(UTC)
        row = self._message(endpoint_id, "webhook.test", {"endpoint_id": endpoint_id}, now)
        with self.engine.begin() as c:
            c.execute(messages.insert(), [row])
        self.deliver_once(client, only=[row["id"]])
        return self.message(row["id"]) or {}

    def replay(self, message_id: str) -> bool:
        """Send a message again (a failed one, or a sent one the receiver lost): back to pending, due now."""
        with self.engine.begin() as c:
            n = c.execute(
                update(messages)
                .where(messages.c.id == message_id)
                .values(status="pending", attempts=0, next_attempt_at=datetime.now(UTC), lease_until=None)
            ).rowcount
        return bool(n)

    def message(self, message_id: str) -> dict | None:
        with self.engine.connect() as c:
            r = c.execute(select(messages).where(messages.c.id == message_id)).mappings().first()
        return None if r is None else self._public(r)

    def deliveries(self, endpoint_id: str, limit: int = 100) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(messages)
                .where(messages.c.endpoint_id == endpoint_id)
                .order_by(messages.c.created_at.desc())
                .limit(limit)
            ).mappings()
            return [self._public(r) for r in rows]

    @staticmethod
    def _public(r: object) -> dict:
        return {
            "id": r["id"],
            "endpoint_id": r["endpoint_id"],
            "type": json.loads(r["body"])["type"],
            "status": r["status"],
            "attempts": r["attempts"],
            "last_status": r["last_status"],
            "reason": r["reason"],
            "created_at": _utc(r["created_at"]),
            "sent_at": _utc(r["sent_at"]) if r["sent_at"] else None,
        }

    # --- delivery -------------------------------------------------------------------------------------------------

    def _claim(self, now: datetime, limit: int, only: list[str] | None) -> tuple[str, list]:
        m = messages.c
        where = [m.id.in_(only)] if only else []
        return self.leases.claim(now, limit, *where, columns=[m.id, m.endpoint_id, m.body, m.attempts])

    def deliver_once(self, client: httpx.Client, limit: int = 200, only: list[str] | None = None) -> dict[str, int]:
        """Send the due messages (claimed with a lease, so several workers share the work); record each outcome
        and the endpoint's failure state. Returns counts by outcome."""
        now = datetime.now(UTC)
        token, claimed = self._claim(now, limit, only)
        counts: dict[str, int] = {}
        if not claimed:
            return counts
        eps = {e.id: e for e in self.list()}
        with self.engine.connect() as c:
            keys = dict(c.execute(select(endpoints.c.id, endpoints.c.secret)).all())
        for msg_id, endpoint_id, body, attempts in claimed:
            ep = eps.get(endpoint_id)
            if ep is None or not ep.active:
                outcome, status, reason = "failed", None, "subscription deleted"
            else:
                outcome, status, reason = self._send(client, ep, keys[endpoint_id], msg_id, body)
            self._settle(token, msg_id, endpoint_id, attempts + 1, outcome, status, reason, now)
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def _send(self, client: httpx.Client, ep: Endpoint, secret: str, msg_id: str, body: str) -> tuple:
        sent_at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, sent_at, body),
            "user-agent": "leadscope-webhooks",
        }
        try:
            if self.production:
                check_url(ep.url, production=True)  # again at send time: a name may resolve elsewhere now
            resp = client.post(ep.url, content=body.encode(), headers=headers, timeout=self.policy.timeout)
        except WebhookInputError as exc:
            return "failed", None, str(exc)
        except httpx.HTTPError as exc:
            return "retry", None, type(exc).__name__
        if 200 <= resp.status_code < 300:
            return "sent", resp.status_code, None
        if resp.status_code in (408, 409, 425, 429) or resp.status_code >= 500:
            return "retry", resp.status_code, f"HTTP {resp.status_code}"
        return "failed", resp.status_code, f"HTTP {resp.status_code}"

    def _settle(self, token, msg_id, endpoint_id, attempts, outcome, status, reason, now) -> None:  # noqa: ANN001
        mine = and_(messages.c.id == msg_id, self.leases.mine(token))
        outcome, values = self.policy.settled(outcome, attempts, datetime.now(UTC))  # sent_at: when it was sent
        values["reason"] = reason if outcome != "sent" else None
        with self.engine.begin() as c:
            c.execute(
                update(messages)
                .where(mine)
                .values(attempts=attempts, last_status=status, **Leases.released(), **values)
            )
            ep = update(endpoints).where(endpoints.c.id == endpoint_id)
            if outcome == "sent":
                c.execute(ep.values(failures=0, last_error=None, last_success_at=datetime.now(UTC)))
            else:
                c.execute(ep.values(failures=endpoints.c.failures + 1, last_error=reason))

    def deliver(self, client: httpx.Client, *, max_seconds: float = 60.0) -> dict[str, int]:
        """Send until nothing is due (backoffs are left for later rounds)."""
        total: dict[str, int] = {}
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            got = self.deliver_once(client)
            if not got:
                break
            for k, v in got.items():
                total[k] = total.get(k, 0) + v
        return total

    def pending(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as c:
            return c.execute(select(func.count()).where(messages.c.status == "pending")).scalar() or 0
