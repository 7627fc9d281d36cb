"""The Feast repo: config, entity → sources → views → services, apply and materialise."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, String

from features.online_write import OnlineWriter
from features.services import (  # noqa: F401 - re-exported: the views and services are read as feature_store.*
    ALL,
    GRAPH_LABELS,
    GRAPH_MODEL_FEATURES,
    OUTCOME_BASE,
    SERVICES,
    VIEWS,
    WHAT_IT_ADDS,
    AllBut,
    _names,
    feature_names,
    has_service,
    services_of,
    view_features,
)
from leadscope.schema import ENTITY, TS
from leadscope.settings import Settings
from leadscope.tables import META_FILE, SCHEMA_FILE, FeatureMeta, has_features, read_feature_meta

PROJECT = "leadscope"
_TYPES = {"float": Float64, "string": String}


def write_repo_config(settings: Settings) -> Path:
    """feature_store.yaml for the configured online store (sqlite embedded, Redis in production)."""
    repo = settings.feature_repo_dir
    repo.mkdir(parents=True, exist_ok=True)
    if settings.online_store == "redis":
        if not settings.redis_url:
            raise ValueError("online_store=redis needs LEADSCOPE_REDIS_URL")
        # skip_dedup: Feast's Redis store would drop a write older than the stored row's timestamp, and batch rows
        # are stamped at the build's end (the next midnight), so live rows written now would be dropped until then.
        # Live passes keep their own order (a Redis lock, serving/live.py); a new materialisation re-applies them.
        online = f'  type: redis\n  connection_string: "{_redis_conn(settings.redis_url)}"\n  skip_dedup: true'
    else:
        online = f"  type: sqlite\n  path: {repo / 'online.db'}"
    offline = "offline_store:\n  type: duckdb\n"
    if ray_materializes(settings):
        # Historical retrieval stays on DuckDB: Feast 0.67's Ray offline store sorts the feature rows by (id, time),
        # merge_asof refuses them ("keys must be sorted") and it falls back to a row-by-row join, 48 s for 1,000
        # entity rows here (docs/SCALE.md); it also drops entity rows that repeat an (id, time)
        sqlite = settings.online_store == "sqlite"
        offline += f"batch_engine:\n  type: ray.engine\n  write_concurrency: {1 if sqlite else 2}\n"
        if settings.ray_address:
            offline += f"  ray_address: {settings.ray_address}\n"
    (repo / "feature_store.yaml").write_text(
        f"project: {PROJECT}\nprovider: local\nregistry: {repo / 'registry.db'}\n"
        f"online_store:\n{online}\n{offline}entity_key_serialization_version: 3\n"
    )
    return repo


def ray_materializes(settings: Settings) -> bool:
    """engine=ray materialises with Feast's Ray compute engine when the features are current. That engine drops
    every row older than now − the view's TTL (the wall clock, not the window's end: feast/infra/compute_engines/
    ray/nodes.py), so on a history that ended more than a TTL ago it would load no rows but the profiles; such a
    build materialises with Feast's local engine instead, as engine=local does."""
    if settings.engine != "ray":
        return False
    try:
        end = read_feature_meta(settings.feature_dir).end
    except FileNotFoundError:
        return True
    return end.to_pydatetime() >= datetime.now(UTC) - view_ttl(settings)


def view_ttl(settings: Settings) -> timedelta:
    """The TTL of every view but the profiles: two snapshots and a day."""
    return timedelta(days=2 * settings.feature_cadence_days + 1)


def _project(view: FeatureView, columns: dict[str, str], spec: list[str] | AllBut | None) -> object:
    return view if spec is ALL else view[_names(columns, spec)]


def _redis_conn(url: str) -> str:
    """redis://host:port/db → host:port,db=N (Feast's connection-string form)."""
    rest = url.split("://", 1)[-1]
    hostport, _, db = rest.partition("/")
    return f"{hostport},db={db}" if db else hostport


def definitions(settings: Settings) -> list[object]:
    """Feast objects built from the schema that the build step wrote (custom attributes included)."""
    schema = read_feature_meta(settings.feature_dir).schema
    ttl = view_ttl(settings)
    customer = Entity(
        name="customer",
        join_keys=[ENTITY],
        value_type=ValueType.STRING,
        description="A customer or lead record (one CRM contact).",
    )
    views = {}
    for name in (v for v in VIEWS if v in schema):  # the graph view exists once graphs/ has built it
        source = FileSource(
            name=f"{name}_source", path=str(settings.feature_dir / f"{name}.parquet"), timestamp_field=TS
        )
        fields = [Field(name=f, dtype=_TYPES[t]) for f, t in schema[name].items()]
        views[name] = FeatureView(
            name=name,
            entities=[customer],
            schema=fields,
            source=source,
            online=True,
            ttl=timedelta(0) if name == "customer_profile" else ttl,
        )
    services = [
        FeatureService(name=s, features=[_project(views[v], schema[v], f) for v, f in vs.items()])
        for s, vs in services_of(settings).items()
    ]
    return [customer, *views.values(), *services]


def open_store(settings: Settings) -> FeatureStore:
    if ray_materializes(settings):
        from leadscope.engine import ensure_ray

        ensure_ray(settings)
    # feast's import re-adds a DeprecationWarning filter ahead of ours; ibis (inside its DuckDB store) warns per query
    warnings.filterwarnings("ignore", message=".*fetch_arrow_table.*", category=DeprecationWarning)
    return FeatureStore(repo_path=str(write_repo_config(settings)))


def apply(settings: Settings) -> FeatureStore:
    store = open_store(settings)
    store.apply(definitions(settings))
    return store


def window(settings: Settings, meta: FeatureMeta, view: str) -> tuple[datetime, datetime]:
    """The rows a materialisation moves (the newest per customer inside it): the profile over the whole history,
    the other views over their TTL before the build's end (explicit: generated history is old)."""
    end = meta.end.to_pydatetime() + timedelta(seconds=1)
    if view == "customer_profile":
        return meta.start.to_pydatetime() - timedelta(seconds=1), end
    return end - timedelta(days=2 * settings.feature_cadence_days + 2), end


CHUNK_ROWS = 50_000  # rows per write to the online store: memory stays flat whatever the company's size


@dataclass(frozen=True)
class Written:
    """What a materialisation wrote for one view: `rows` (None: moved by Feast's own engine, not counted), and
    whether only the changed customers were (`changed_only`)."""

    rows: int | None
    changed_only: bool


def materialize(
    store: FeatureStore, settings: Settings, previous: Path | None = None, *, live_since: int = 0
) -> dict[str, Written]:
    """Load the newest row per customer of every view into the online store. After a rebuild (`previous`: the
    features the online store was loaded from, by the marker), only the customers whose row changed are written;
    otherwise every customer's. The rows come from DuckDB over the view's parquet in chunks of CHUNK_ROWS and go
    into the online store as Feast's `write_to_online_store` writes them, converted once per distinct value
    (features/online_write.py), and the window is recorded in Feast's registry as its own materialisation does.
    Feast's `materialize` loads a whole view at once (a 6.52 GB peak for the 200,000-customer company, against
    1.70 GB in chunks), so it moves the rows only where its Ray compute engine does the work (`ray_materializes`).
    `live_since`: live records folded into this build; live passes wrote their customers' rows online since the
    previous build, so everything is written."""
    meta = read_feature_meta(settings.feature_dir)
    base = previous if previous is not None and not live_since and _holds(settings, previous) else None
    old_meta = read_feature_meta(base) if base is not None else None
    # until this materialisation completes, the online store holds no one build's rows (a failure part-way leaves
    # the next build to write everything)
    _online_mark(settings, clear=True)
    written: dict[str, Written] = {}
    writer = OnlineWriter(store)
    for view in (v for v in VIEWS if meta.has_view(v)):
        start, end = window(settings, meta, view)
        same = old_meta is not None and old_meta.schema.get(view) == meta.schema[view]
        if not same and ray_materializes(settings):
            store.materialize(start_date=start, end_date=end, feature_views=[view])
            written[view] = Written(None, changed_only=False)
            continue
        rows = 0
        for chunk in _newest_rows(settings, meta, view, base if same else None, old_meta):
            writer.write(view, chunk)
            rows += len(chunk)
        store.registry.apply_materialization(store.get_feature_view(view), store.project, start, end)
        written[view] = Written(rows, changed_only=same)
    _online_mark(settings, _build_identity(settings.feature_dir))
    return written


def _build_identity(feature_dir: Path) -> str:
    return hashlib.sha256(b"".join((feature_dir / f).read_bytes() for f in (META_FILE, SCHEMA_FILE))).hexdigest()[:16]


def _online_mark(settings: Settings, build: str | None = None, *, clear: bool = False) -> str | None:
    """Which build's rows the online store holds, kept in the online store itself (a Redis key, a table of the
    SQLite file): a flushed Redis or a deleted file loses it with the rows, and the next build writes everything.
    With `build`: record it; with `clear`: forget it; else read it."""
    if settings.online_store == "redis":
        import redis

        key = f"leadscope:{PROJECT}:online_build"
        with redis.Redis.from_url(settings.redis_url) as r:
            if clear:
                r.delete(key)
            elif build is not None:
                r.set(key, build)
            else:
                found = r.get(key)
                return found.decode() if found else None
        return None
    import sqlite3

    path = settings.feature_repo_dir / "online.db"
    if not path.exists():
        return None
    con = sqlite3.connect(path)
    if not clear and build is None:  # a read takes no write lock (live passes write this file)
        try:
            row = con.execute("SELECT build FROM leadscope_online_build").fetchone()
        except sqlite3.OperationalError:  # no table: no build recorded
            row = None
        con.close()
        return row[0] if row else None
    try:
        with con:
            con.execute("CREATE TABLE IF NOT EXISTS leadscope_online_build (build TEXT)")
            if clear or build is not None:
                con.execute("DELETE FROM leadscope_online_build")
            if build is not None:
                con.execute("INSERT INTO leadscope_online_build VALUES (?)", (build,))
        row = con.execute("SELECT build FROM leadscope_online_build").fetchone()
        return row[0] if row else None
    finally:
        con.close()


def online_build(settings: Settings) -> str | None:
    """The identity of the last build (its feature files) when the online store holds exactly that build's
    newest rows as materialize wrote them, else None (a materialisation under way or failed part-way, a store
    loaded from another build, a lost store). Live passes since then changed only their customers' rows."""
    if not has_features(settings.feature_dir):
        return None
    build = _build_identity(settings.feature_dir)
    return build if _online_mark(settings) == build else None


def _holds(settings: Settings, feature_dir: Path) -> bool:
    """Does the online store hold exactly the newest rows of the build in `feature_dir`?"""
    return has_features(feature_dir) and _online_mark(settings) == _build_identity(feature_dir)


def quote(name: str) -> str:
    """A column name as a DuckDB identifier: a company's own attribute names may hold any character."""
    return '"' + name.replace('"', '""') + '"'


def newest_rows_sql(columns: list[str]) -> str:
    """DuckDB: these columns of each customer's newest row in one parquet file (parameter 1) inside a window
    (parameters 2 and 3): what a materialisation moves, and what batch scoring reads (serving/offline.py)."""
    return (
        f"SELECT {', '.join(quote(c) for c in columns)} FROM read_parquet(?) "  # noqa: S608 - quoted identifiers
        f"WHERE {quote(TS)} BETWEEN ? AND ? "
        f"QUALIFY row_number() OVER (PARTITION BY {quote(ENTITY)} ORDER BY {quote(TS)} DESC) = 1"
    )


NEWEST_FILE = "newest.json"  # the windows the `<view>.newest.parquet` files were selected in (write_newest)


def newest_path(folder: Path, view: str) -> Path:
    return folder / f"{view}.newest.parquet"


NEWEST_BATCH = 250_000  # rows per batch written to a newest-rows file
DUCKDB_MEMORY = "4GB"  # what the build's DuckDB queries may hold before spilling to disk


def write_newest(settings: Settings, folder: Path, meta: FeatureMeta) -> None:
    """Each view's newest row per customer inside its window (what a materialisation moves), selected once per
    build into `<view>.newest.parquet` beside the view, with the windows in NEWEST_FILE: batch scoring reads
    these (serving/offline.py) instead of ranking the window's rows on every call (0.55 s of a 1.9 s batch of
    200,000 customers)."""
    import duckdb
    import pyarrow.parquet as pq

    windows = {}
    # DuckDB's default memory limit is 80 % of the machine's; the sort spills to disk above this one
    con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY})
    try:
        con.execute("SET TimeZone = 'UTC'")
        for view, kinds in meta.schema.items():
            lo, hi = window(settings, meta, view)
            sql = f"{newest_rows_sql([ENTITY, TS, *kinds])} ORDER BY {quote(ENTITY)}"  # one id order for every view
            # streamed: the newest rows of 10 M customers' detail view are gigabytes
            reader = con.execute(sql, [str(folder / f"{view}.parquet"), lo, hi]).fetch_record_batch(NEWEST_BATCH)
            with pq.ParquetWriter(newest_path(folder, view), reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
            windows[view] = [lo.isoformat(), hi.isoformat()]
    finally:
        con.close()
    (folder / NEWEST_FILE).write_text(json.dumps(windows))


def newest_written(folder: Path, view: str, lo: datetime, hi: datetime) -> Path | None:
    """The view's newest-rows file when the build wrote it for this window, else None."""
    path, record = newest_path(folder, view), folder / NEWEST_FILE
    if not path.exists() or not record.exists():
        return None
    return path if json.loads(record.read_text()).get(view) == [lo.isoformat(), hi.isoformat()] else None


def _newest_rows(
    settings: Settings, meta: FeatureMeta, view: str, old_dir: Path | None, old_meta: FeatureMeta | None
) -> Iterator[pd.DataFrame]:
    """The newest row per customer of `view` inside its window, in chunks; with `old_dir` only those the previous
    build did not have the same, values and timestamp alike (DuckDB's EXCEPT: NULL and NaN equal to themselves)."""
    import duckdb

    latest = newest_rows_sql([ENTITY, TS, *meta.schema[view]])
    query, args = latest, [str(settings.feature_dir / f"{view}.parquet"), *window(settings, meta, view)]
    if old_dir is not None and old_meta is not None:
        query = f"({latest}) EXCEPT ({latest})"
        args += [str(old_dir / f"{view}.parquet"), *window(settings, old_meta, view)]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        reader = con.execute(query, args).to_arrow_reader(CHUNK_ROWS)
        for batch in reader:
            if batch.num_rows:
                yield batch.to_pandas()
    finally:
        con.close()


def materialize_incremental(store: FeatureStore, settings: Settings) -> dict[str, tuple[str, str]]:
    """Move only what is new since each view's last materialisation (Feast keeps the watermark in the
    registry); a view never materialised gets the explicit window instead, since Feast's first incremental
    run would look back one TTL from now and skip generated history. Returns the window moved per view."""
    meta = read_feature_meta(settings.feature_dir)
    end = meta.end.to_pydatetime() + timedelta(seconds=1)
    moved = {}
    for view in store.list_feature_views():
        last = view.most_recent_end_time
        if last is None:
            materialize(store, settings)
            return {v.name: ("full", end.isoformat()) for v in store.list_feature_views()}
        if last < end:
            store.materialize(start_date=last, end_date=end, feature_views=[view.name])
            moved[view.name] = (last.isoformat(), end.isoformat())
    return moved
