"""Console sessions held server-side: the cookie is a random session id (256 bits) and nothing else; the service
database maps its SHA-256 to the key id, the session's CSRF token and its expiry. Without the database the cookie
means nothing, and it is never an API key: a stolen cookie gives the console (the key's scopes, through pages) until
logout, expiry or the key's revocation, never the API.

- **Login** opens a new session (a new id every time: a session id planted before login is never promoted) and
  ends the one the browser held.
- **Logout** ends the session in the database: every copy of the cookie stops working at once.
- **A revoked key** ends its sessions at their next request (the key cache is checked on every request, within
  `LEADSCOPE_KEY_CACHE_SECONDS`).
- **Expiry** after `LEADSCOPE_CONSOLE_SESSION_SECONDS`, enforced by the stored expiry, not by the cookie's age.

Only the id's SHA-256 is stored (as for API keys), so a read of the table does not give usable cookies.
Hand-written: Starlette's SessionMiddleware and itsdangerous keep the data in the cookie (what this replaces);
the server-side session packages for Starlette (starsessions, fastapi-sessions) add a store interface over the
same three statements.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, select

from leadscope.db import engine_for

metadata = MetaData()
table = Table(
    "console_sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("key_id", String(16), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Opened:
    key_id: str
    csrf: str


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t  # SQLite returns naive times


class SessionStore:
    def __init__(self, url: str, max_age: float) -> None:
        self.engine = engine_for(url)
        metadata.create_all(self.engine)
        self.max_age = max_age

    def open(self, key_id: str) -> tuple[str, str]:
        """A new session for this key: (session id for the cookie, CSRF token). Expired sessions are swept."""
        session_id, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), datetime.now(UTC)
        with self.engine.begin() as c:
            c.execute(delete(table).where(table.c.expires_at < now))
            c.execute(
                table.insert().values(
                    id_sha256=_digest(session_id),
                    key_id=key_id,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + timedelta(seconds=self.max_age),
                )
            )
        return session_id, csrf

    def read(self, session_id: str | None) -> Opened | None:
        """The open, unexpired session of this id, else None."""
        if not session_id or len(session_id) > 100:
            return None
        with self.engine.connect() as c:
            row = c.execute(select(table).where(table.c.id_sha256 == _digest(session_id))).mappings().first()
        if row is None or _utc(row["expires_at"]) <= datetime.now(UTC):
            return None
        return Opened(row["key_id"], row["csrf"])

    def end(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 100:
            with self.engine.begin() as c:
                c.execute(delete(table).where(table.c.id_sha256 == _digest(session_id)))

    def end_for_key(self, key_id: str) -> int:
        with self.engine.begin() as c:
            return c.execute(delete(table).where(table.c.key_id == key_id)).rowcount
