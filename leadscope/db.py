"""The service database (API keys, audiences, conversion outbox, the live event log, score history, webhooks): one
SQLAlchemy engine per URL per process.

SQLite embedded (WAL, a full fsync per commit, a busy timeout so the CLI and servers share the file), PostgreSQL
in production. Every store asks here, so one process never holds two pools on the same database.
"""

from __future__ import annotations

import functools
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


@functools.cache
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(eng, "connect")
        def _pragmas(conn, _record) -> None:  # noqa: ANN001 - DB-API connection
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return eng
    return create_engine(url, pool_pre_ping=True)


def upsert_insert(engine: Engine):  # noqa: ANN201 - the dialect's insert construct (on_conflict_* differ in type)
    """The dialect's INSERT with ON CONFLICT (PostgreSQL or SQLite): insert-or-ignore and upserts everywhere."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert
