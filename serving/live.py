"""The real-time loop inside the server: live records → features as of now → online store → every worker's cache
→ score history and webhooks.

- **Apply.** Requests hand their customers to one applier thread per process and wait for it (up to
  events_apply_wait_seconds). The applier takes everything handed over so far in one pass (coalescing: under load
  one pass serves many requests). Records are stored before they are handed over, so a pass that fails or a
  process that dies loses nothing: `replay` applies every record not marked applied (at start-up, and after a
  failed pass).
- **Order.** Passes are serialised across processes (a file lock embedded, where the SQLite online store lives on
  one machine; a Redis lock in production) and the cut time is taken inside the lock, after the records were
  committed: a later pass always holds every record an earlier one did, and it writes last. Out-of-order records
  need no special case: each pass recomputes the customer's features from the whole history.
- **Caches.** A pass drops its customers from its own cache and appends them to the change feed (live_pushes);
  every other worker drops them before its next score (serving/online.py `follow`). A change hint (a file
  embedded, a Redis key in production) makes the check one read when nothing changed.
- **History and webhooks.** Before the write, each scored model's current point of these customers is kept as a
  baseline; after it, changes worth telling are recorded with the reasons that moved most, and webhook messages
  are stored in the same transaction that marks the records applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import numpy as np
import pandas as pd
from cachetools import LRUCache

from features import live
from features.build import read_reference
from leadscope.schema import ENTITY
from leadscope.settings import Settings
from leadscope.tables import FeatureMeta, read_feature_meta
from serving.applier import Applier
from serving.history import Change, Point, ScoreHistory, worth_recording
from serving.intake import IntakeProcess
from serving.live_write import protos, sqlite_upsert
from serving.records import Hint, Intake
from serving.webhooks import Webhooks

log = logging.getLogger("leadscope.live")
MOVED = 3  # reasons per change: the features whose impact moved most


class Live:
    def __init__(
        self,
        settings: Settings,
        state: object,
        hooks: Webhooks,
        *,
        process: bool = False,
        spawn: Callable[[Settings, str], object] | None = None,
        origin: str | None = None,
    ) -> None:
        self.settings, self.state, self.hooks = settings, state, hooks
        # pushes under this origin are this process's own (it keeps its cache up to date); a child applier
        # shares its server's origin and hands the rows it wrote back
        self.origin = origin or uuid.uuid4().hex
        self.puts: list[tuple] | None = None  # a child applier collects the cache rows it wrote here
        self.child = None  # serving/applier_process.py Child: passes in a child process when `spawn` makes one
        if process and spawn is not None:
            try:
                self.child = spawn(settings, self.origin)
            except Exception as exc:  # noqa: BLE001 - e.g. a script without a __main__ guard: the thread applies
                log.warning("live applier process not started (%s); passes run in the server", type(exc).__name__)
        self.log = live.LiveLog(settings.database_url)
        intake = None
        if process and settings.live_intake_process:
            try:
                intake = IntakeProcess(settings.database_url)
            except OSError as exc:
                log.warning("live intake process not started (%s); records are stored by a thread", type(exc).__name__)
        self.intake = Intake(self.log, intake)
        self.history = ScoreHistory(settings.database_url)
        self.base = live.Base(settings.raw_dir)
        self.hint = Hint(settings)
        self.seen_hint = self.hint.read()
        self.seen_seq = self.log.feed_position()
        self.kept: LRUCache = LRUCache(maxsize=100_000)  # customer → (its record ids, its live records)
        self.margin = 1_000 if self.log.engine.dialect.name == "postgresql" else 0
        self.kept_seq = self.log.newest()  # every record up to here is in `kept` for the customers it holds
        self.follow_lock = threading.Lock()
        self.passes = Applier(self._pass, self._pace)
        self.sent = threading.Event()  # set after a pass that stored webhook messages
        self._meta: tuple[int, FeatureMeta] | None = None
        self.schema_path = settings.feature_dir / "schema.json"  # resolved once: each request stats it
        self._reference: dict | None = None
        self._views: tuple[object, dict] = (None, {})
        self._wal = False
        self._redis_lock = None
        if settings.profile == "production" and settings.redis_url:
            import redis

            self._redis_lock = redis.Redis.from_url(settings.redis_url).lock(
                "leadscope:live:apply", timeout=60, blocking_timeout=60
            )

    # --- what requests call ---------------------------------------------------------------------------------------

    def meta(self) -> FeatureMeta:
        """The last build's metadata, and with it its population statistics: read again when a build wrote them."""
        path = self.schema_path
        stamp = path.stat().st_mtime_ns
        if self._meta is None or self._meta[0] != stamp:
            self._meta = (stamp, read_feature_meta(self.settings.feature_dir))
            self._reference = read_reference(self.settings.feature_dir)
        return self._meta[1]

    def reference(self) -> dict | None:
        self.meta()
        return self._reference

    def known(self, ids: list[str]) -> set[str]:
        base = self.base.fresh()
        have = base.known(ids)
        rest = [i for i in dict.fromkeys(ids) if i not in have]
        return have | (self.log.created(rest) if rest else set())

    def submit(self, ids: list[str]) -> Future:
        """Apply these customers' stored records soon; the future resolves when their features are online."""
        return self.passes.submit(ids)

    def replay(self) -> int:
        """Apply every stored record whose features never reached the online store; returns how many customers."""
        ids = list(dict.fromkeys(cid for _, cid in self.log.unapplied()))
        for start in range(0, len(ids), 1_000):
            self.apply(ids[start : start + 1_000])
        return len(ids)

    def applier(self) -> str:
        if self.child is None:
            return "thread"
        return "process" if self.child.ready.is_set() else "starting"

    def reapply_unfolded(self) -> None:
        """After a materialisation (batch rows written over live ones): apply again the customers whose records the
        build did not fold. The applier process does it itself when there is one."""
        if self.child is not None:
            return
        ids = self.log.unfolded_customers()
        for start in range(0, len(ids), 1_000):
            self.apply(ids[start : start + 1_000])

    async def aclose(self) -> None:
        """The server's stop: the child and the intake process end side by side, off the event loop."""
        tasks = [asyncio.to_thread(self.child.close)] if self.child is not None else []
        if self.intake.process is not None:
            tasks.append(self.intake.process.aclose())
        await asyncio.gather(*tasks)

    def follow(self) -> None:
        """Drop the customers other workers pushed since the last look (one hint read when nothing changed)."""
        hint = self.hint.read()
        if hint == self.seen_hint:
            return
        with self.follow_lock:
            self.seen_hint = hint
            seq, ids = self.log.pushed_since(self.seen_seq, self.origin)
            self.seen_seq = seq
        if ids and self.state.online is not None:
            self.state.online.forget(ids)

    # --- the applier's pass (serving/applier.py runs them) ----------------------------------------------------

    def _pace(self, took: float, backlog: bool) -> float:
        """Seconds from one pass's start to the next's. Under load, passes start at most every
        live_apply_interval_seconds; and while records keep arriving during passes (a stream, not one CRM call
        after another), the applier keeps to its share of the time (a pass of 30 ms waits 70 ms after it at 0.3, at
        most 0.5 s): what arrives meanwhile joins the next pass, so the stream costs a few passes a second and
        leaves the scoring its core."""
        share = self.settings.live_apply_share
        return max(self.settings.live_apply_interval_seconds, min(took / share, took + 0.5) if backlog else 0)

    def _pass(self, ids: list[str]) -> None:
        try:
            child = self.child if self.child is not None and self.child.ready.is_set() else None
            for start in range(0, len(ids), 2_000):
                if child is not None:
                    sent, puts = child.apply(ids[start : start + 2_000])
                    if sent:
                        self.sent.set()
                    for put in puts:  # the child's pass, in this process's cache (its pushes are ours)
                        if self.state.online is not None and put[0] in self.state.online.services:
                            self.state.online.put(*put)
                else:
                    self.apply(ids[start : start + 2_000])
        except Exception:
            if self.state.online is not None:
                self.state.online.forget(ids)  # whatever the pass wrote before it failed is read afresh
            raise

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._redis_lock is not None:
            if not self._redis_lock.acquire():
                raise TimeoutError("live apply lock")
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    self._redis_lock.release()
            return
        path = self.settings.feature_repo_dir / "live.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def apply(self, ids: list[str]) -> pd.Timestamp:
        """One pass: these customers' features as of now, written online, caches told, changes recorded.
        Returns the cut time the pass used."""
        state = self.state
        online = state.online
        if online is None:
            raise RuntimeError("feature store unavailable")
        meta = self.meta()
        with self._exclusive():
            at = pd.Timestamp.now(tz="UTC")
            pending = self.log.pending_of(ids)
            seqs = [p[0] for p in pending]
            base = self.base.fresh()
            history = self._history(ids)
            kinds = {r.record_id: r.kind for r in history}
            tables = live.merge(base.frames(ids), history)
            if "customers" not in tables or not len(tables["customers"]):
                return at
            changed = {cid for _, cid, rid in pending if kinds.get(rid) == "customer"}
            reference = self.reference()
            frames = live.features_at(_with_empty(tables), at, meta, reference, profile_of=changed)
            models = [m for m, c in state.models.items() if m != "value" and hasattr(c.model, "grade")]
            self.follow()  # the cache must hold what is online now: another worker may have pushed these
            served = {m: online.rows(m, ids) for m in models}
            # the points before: the score history's last ones, and a plain predict for customers it has none of
            # (their baseline); whole explanations only for the few changes that get recorded (below)
            before: dict[str, dict[str, Point]] = {}
            for m in models:
                known = self.history.last(m, ids)
                rest = [j for j, cid in enumerate(ids) if cid not in known]
                missing = _plain_points(state.models[m].model, [ids[j] for j in rest], _rows(served[m], rest))
                self.history.baseline(m, state.models[m].version, missing, at.to_pydatetime())
                before[m] = {**missing, **known}
            self.write(frames, at)
            online.forget(ids)
            now_served = {m: _overlay(served[m], frames, ids) for m in models}
            after = {m: _points(state.models[m].model, ids, now_served[m]) for m in models}
            for m in models:  # this worker's next score of them is a cache hit (other workers drop them)
                champ = state.models[m]
                online.put(m, ids, now_served[m], ("result", m, champ.version), after[m][2])
                if self.puts is not None:
                    self.puts.append((m, ids, now_served[m], ("result", m, champ.version), after[m][2]))
            found = []
            by_customer: dict[str, list[str]] = {}
            for _, cid, rid in pending:
                by_customer.setdefault(cid, []).append(rid)
            pos = {cid: j for j, cid in enumerate(ids)}
            for m in models:
                changes = [
                    (cid, before[m].get(cid, Point(None, None, None)), new)
                    for cid, new in after[m][0].items()
                    if worth_recording(
                        before[m].get(cid, Point(None, None, None)), new, self.settings.score_change_delta
                    )
                ]
                was = _points(state.models[m].model, [c for c, _, _ in changes],
                              _rows(served[m], [pos[c] for c, _, _ in changes]))[1] if changes else {}  # fmt: skip
                for cid, old, new in changes:
                    moved = _moved(was.get(cid), after[m][1].get(cid))
                    found.append(
                        Change(cid, m, state.models[m].version, at.to_pydatetime(), old, new, moved,
                               by_customer.get(cid, []))
                    )  # fmt: skip
            now = at.to_pydatetime()
            with self.log.engine.begin() as c:
                self.log.mark_applied(c, seqs, now)
                self.history.record(c, found)
                for m in models:
                    self.history.remember(c, m, state.models[m].version, after[m][0], now)
                queued = self.hooks.enqueue(c, found, now)
                self.log.announce(c, ids, now, self.origin)
            self.hint.bump(self.log.feed_position())
        if queued:
            self.sent.set()
        return at

    def _history(self, ids: list[str]) -> list[live.Record]:
        """These customers' live records, oldest first, kept per customer in this process: each pass reads only
        what anyone stored since the last one (a customer's history only grows), plus the whole history of
        customers it holds nothing of yet. On PostgreSQL, where sequence numbers are taken before commit, the read
        reaches back a margin and records are kept once by id."""
        news = self.log.since(max(self.kept_seq - self.margin, 0), 50_000)
        if len(news) == 50_000:  # a long gap (a bulk load elsewhere): start over rather than hold it all
            self.kept.clear()
            self.kept_seq = self.log.newest()
        else:
            for seq, rec in news:
                kept = self.kept.get(rec.customer_id)
                if kept is not None and rec.record_id not in kept[0]:
                    kept[0].add(rec.record_id)
                    kept[1].append(rec)
                self.kept_seq = max(self.kept_seq, seq)
        missing = [cid for cid in ids if cid not in self.kept]
        if missing:
            fresh: dict[str, tuple[set, list]] = {cid: (set(), []) for cid in missing}
            for _, rec in self.log.for_customers(missing):
                seen, recs = fresh[rec.customer_id]
                if rec.record_id not in seen:
                    seen.add(rec.record_id)
                    recs.append(rec)
            for cid, kept in fresh.items():
                self.kept[cid] = kept
        return [r for cid in ids for r in self.kept[cid][1]]

    def _view(self, name: str) -> object:
        """The Feast view object, parsed from the registry once per materialisation (parsing costs ~4 ms)."""
        mark = self.state.online.watermark
        if self._views[0] != mark:
            self._views = (mark, {})
        if name not in self._views[1]:
            self._views[1][name] = self.state.online.store.get_feature_view(name)
        return self._views[1][name]

    def write(self, frames: dict[str, pd.DataFrame], at: pd.Timestamp) -> None:
        """Feature rows into the online store through the provider's batch write (what write_to_online_store
        ends in), with the value protos built here: Feast's generic DataFrame → Arrow → proto conversion cost more
        than the whole pass."""
        store = self.state.online.store
        provider = store._get_provider()  # noqa: SLF001 - the public write path minus its per-value conversion
        if not self._wal and store.config.online_store.type == "sqlite":
            # Feast's SQLite file in WAL mode, synced at checkpoints: a commit survives a killed process (what the
            # replay guarantee needs) without three fsyncs per view and pass; readers never wait for writers
            conn = provider.online_store._get_conn(store.config)  # noqa: SLF001
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._wal = True
        when = at.to_pydatetime()
        rows = {view: protos(df) for view, df in frames.items()}
        if store.config.online_store.type == "sqlite":
            sqlite_upsert(store, provider, {self._view(v): r for v, r in rows.items()}, when)
            return
        for view, data in rows.items():
            provider.online_write_batch(store.config, self._view(view), [(k, v, when, when) for k, v in data], None)


def _points(scorer: object, ids: list[str], cols: dict[str, list]) -> tuple[dict, dict, dict]:
    """Points, whole explanations and the served answers per customer of the online columns `cols` (rows in
    `ids` order)."""
    from serving.scoring import explain_rows

    points, contribs, answers = {}, {}, {}
    for cid, out in zip(ids, explain_rows(scorer, cols), strict=True):
        if out is not None:
            points[cid] = Point(out[0].score, out[0].grade, out[0].probability)
            contribs[cid], answers[cid] = out[1], out[0]
    return points, contribs, answers


def _plain_points(scorer: object, ids: list[str], cols: dict[str, list]) -> dict[str, Point]:
    """Points per customer of the online columns `cols` from a plain predict (no TreeSHAP: what a baseline needs)."""
    from serving.scoring import point_rows

    if not ids:
        return {}
    return {cid: Point(p[1], p[2], p[0]) for cid, p in zip(ids, point_rows(scorer, cols), strict=True) if p is not None}


def _rows(cols: dict[str, list], rows: list[int]) -> dict[str, list]:
    return {name: [col[j] for j in rows] for name, col in cols.items()}


def _overlay(cols: dict[str, list], frames: dict[str, pd.DataFrame], ids: list[str]) -> dict[str, list]:
    """The served columns with the values just written: what the online store now holds for these customers."""
    out = {k: list(v) for k, v in cols.items()}
    pos = {cid: j for j, cid in enumerate(ids)}
    for df in frames.values():
        rows = [pos[c] for c in df[ENTITY]]
        for name in df.columns:
            if name in out:
                col, vals = out[name], df[name].tolist()
                for j, v in zip(rows, vals, strict=True):
                    col[j] = None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v
    return out


def _with_empty(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    from features.build import EMPTY

    out = dict(tables)
    for t, cols in EMPTY.items():
        if t not in out or not len(out[t].columns):
            out[t] = pd.DataFrame({c: pd.Series(dtype=d) for c, d in cols.items()})
    return out


def _moved(before: dict | None, after: dict | None) -> list[dict]:
    """The features whose contribution to the score moved most between two explanations."""
    if after is None:
        return []
    before = before or {}
    names = list(after["impact"])
    delta = np.array([after["impact"][n] - before.get("impact", {}).get(n, 0.0) for n in names])
    out = []
    for k in np.argsort(-np.abs(delta), kind="stable")[:MOVED]:
        n = names[k]
        if delta[k] == 0:
            break
        out.append(
            {
                "feature": n,
                "label": after["labels"][n],
                "before": before.get("values", {}).get(n),
                "after": after["values"][n],
                "impact_change": round(float(delta[k]), 4),
            }
        )
    return out
