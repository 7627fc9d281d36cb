"""Online features and what is computed from them, in one cache: the Feast online read per FeatureService, the
rows it returned, and each model's answers for those rows.

Online values change only when the store is materialised, so rows read once are kept in an LRU cache until the
registry shows a new materialisation (checked every model_poll_seconds) or a new champion loads. Feast's Python
read path costs ~1 ms per call whatever the batch size; a cached row costs a dict lookup. Live records
(serving/live.py) write outside materialisation: `forget` drops exactly the customers they changed.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from cachetools import LRUCache
from feast import FeatureService, FeatureStore
from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse

_MISSING = object()
MEMO_SIZE = 200_000  # entries in each memo of the direct SQLite read (cleared when full)


class FeatureStoreUnavailable(RuntimeError):
    """The online store cannot serve a model's features now (the message names the FeatureService, no data)."""


class OnlineFeatures:
    def __init__(self, store: FeatureStore, cache_size: int) -> None:
        self.store = store
        self.services: dict[str, FeatureService] = {}  # model name → the FeatureService it is served from
        self.cache: LRUCache | None = LRUCache(maxsize=cache_size) if cache_size else None
        self.lock = threading.Lock()  # LRUCache is not thread-safe
        self._plans: dict[str, tuple] = {}  # service → its SQLite read plan (_plan)
        self._keys: dict[str, bytes] = {}  # customer id → serialised entity key (bounded memo)
        self._values: dict[bytes, object] = {}  # Feast Value blob → decoded value (bounded memo)
        self.prefixes: set[tuple] = set()  # every key prefix cached under: (service,) and (result, model, version)
        self.watermark = self._watermark()

    def serve(self, name: str, service: str) -> None:
        """Read model `name`'s features from FeatureService `service` from now on."""
        self.services[name] = self.store.get_feature_service(service)
        self._plans.pop(service, None)

    def read(self, name: str, ids: list[str]) -> dict[str, list]:
        """Feature columns for `ids` straight from the online store (None where missing). A store that cannot
        answer (unreachable, or a registry whose views collide) raises FeatureStoreUnavailable, never a bare
        error: the API answers 503 with the reason, and /readyz says it."""
        try:
            if self.store.config.online_store.type == "sqlite":
                return self._read_sqlite(self.services[name], ids)
            resp = self.store.get_online_features(features=self.services[name], entity_rows={"customer_id": ids})
        except Exception as exc:  # noqa: BLE001 - whatever Feast raises, the caller gets one kind of error
            raise FeatureStoreUnavailable(f"{type(exc).__name__} reading {self.services[name].name}") from exc
        return decode(resp.proto)

    def _read_sqlite(self, service: FeatureService, ids: list[str]) -> dict[str, list]:
        """The service's features straight from Feast's SQLite online tables: one UNION ALL query over the views,
        values decoded from Feast's own protos. What SqliteOnlineStore.online_read plus get_online_features return
        (a test compares them for every feature), without the request planning around them, which cost ~1 ms per
        call, most of a score that misses the cache. Decoded values and serialised keys are memoised: most
        feature values repeat (zeros, counts, categories), and a Value parse costs more than the row's fetch."""
        plan = self._plans.get(service.name)
        if plan is None:
            plan = self._plans[service.name] = self._plan(service)
        columns, views, sql_for = plan
        keys = [self._entity_key(cid) for cid in ids]
        where: dict[bytes, list[int]] = {}
        for j, k in enumerate(keys):
            where.setdefault(k, []).append(j)
        unique = list(where)
        conn = self.store._get_provider().online_store._get_conn(self.store.config)  # noqa: SLF001
        cols = {n: [None] * len(ids) for n in dict.fromkeys(columns.values())}
        values, decode_value = self._values, self._decode_value
        wanted = columns.get
        step = max(1, 900 // views)  # SQLite's bound-parameter limit, each key bound once per view
        for start in range(0, len(unique), step):
            part = unique[start : start + step]
            for view, key, fname, blob in conn.execute(sql_for(len(part)), part * views):
                col = wanted((view, fname))
                if col is None:
                    continue
                value = values.get(blob, _MISSING)
                if value is _MISSING:
                    value = decode_value(blob)
                target = cols[col]
                for j in where[key]:
                    target[j] = value
        return {"customer_id": list(ids)} | cols  # Feast answers the join key too

    def _plan(self, service: FeatureService) -> tuple[dict[tuple[int, str], str], int, Callable[[int], str]]:
        """((view number, feature) → output column, number of views, n → the UNION ALL query for n keys)."""
        from feast.infra.online_stores.helpers import compute_table_id

        config = self.store.config
        versioning = config.registry.enable_online_feature_view_versioning
        views = {v.name: v for v in self.store.list_feature_views()}
        tables = [
            '"' + compute_table_id(config.project, views[p.name], versioning).replace('"', '""') + '"'
            for p in service.feature_view_projections
        ]
        columns = {(v, f.name): f.name for v, p in enumerate(service.feature_view_projections) for f in p.features}

        @functools.lru_cache(maxsize=64)
        def sql_for(n: int) -> str:
            marks = ",".join("?" * n)
            return " UNION ALL ".join(
                f"SELECT {v}, entity_key, feature_name, value FROM {t} WHERE entity_key IN ({marks})"
                for v, t in enumerate(tables)
            )

        return columns, len(tables), sql_for

    def _entity_key(self, cid: str) -> bytes:
        key = self._keys.get(cid)
        if key is None:
            from feast.infra.key_encoding_utils import serialize_entity_key
            from feast.protos.feast.types.EntityKey_pb2 import EntityKey
            from feast.protos.feast.types.Value_pb2 import Value

            key = serialize_entity_key(
                EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=cid)]),
                entity_key_serialization_version=self.store.config.entity_key_serialization_version,
            )
            if len(self._keys) >= MEMO_SIZE:
                self._keys.clear()
            self._keys[cid] = key
        return key

    def _decode_value(self, blob: bytes) -> object:
        from feast.protos.feast.types.Value_pb2 import Value

        v = Value.FromString(blob)
        kind = v.WhichOneof("val")
        value = None if kind is None or kind == "null_val" else getattr(v, kind)
        if len(self._values) >= MEMO_SIZE:
            self._values.clear()
        self._values[blob] = value
        return value

    def rows(self, name: str, ids: list[str]) -> dict[str, list]:
        """Feature columns for `ids`, through the cache."""
        cache = self.cache
        if cache is None:
            return self.read(name, ids)
        service = self.services[name].name
        self.prefixes.add((service,))
        found = self._cached(cache, [(service, i) for i in ids])
        missing = list(dict.fromkeys(i for i, r in zip(ids, found, strict=True) if r is _MISSING))
        if missing:
            cols = self.read(name, missing)
            names = list(cols)
            fresh = {cid: (names, tuple(cols[n][j] for n in names)) for j, cid in enumerate(missing)}
            self._store(cache, {(service, cid): row for cid, row in fresh.items()})
            found = [fresh[i] if r is _MISSING else r for i, r in zip(ids, found, strict=True)]
        names = found[0][0]
        return {n: [r[1][k] for r in found] for k, n in enumerate(names)}

    def results(self, key: tuple, ids: list[str], compute: Callable[[list[str]], list]) -> list:
        """One answer per id for the computation named by `key` (model and version), from the cache where it
        was computed before: an answer depends only on the model version and the customer's online row."""
        cache = self.cache
        if cache is None:
            return compute(ids)
        self.prefixes.add(key)
        found = self._cached(cache, [(*key, cid) for cid in ids])
        missing = list(dict.fromkeys(cid for cid, f in zip(ids, found, strict=True) if f is _MISSING))
        if missing:
            fresh = dict(zip(missing, compute(missing), strict=True))
            self._store(cache, {(*key, cid): out for cid, out in fresh.items()})
            found = [fresh[cid] if f is _MISSING else f for cid, f in zip(ids, found, strict=True)]
        return found

    def materialised(self) -> bool:
        """True (once) when the registry shows a materialisation newer than the one this cache was filled from."""
        mark = self._watermark()
        if mark == self.watermark:
            return False
        self.watermark = mark
        return True

    def drop(self) -> None:
        """Forget every cached row and answer (swap, not clear: readers keep a whole cache)."""
        self._plans = {}
        if self.cache is not None:
            self.cache = LRUCache(maxsize=self.cache.maxsize)

    def forget(self, ids: list[str]) -> None:
        """Drop these customers' rows and answers (their features changed in the online store)."""
        cache = self.cache
        if cache is None:
            return
        with self.lock:
            for prefix in list(self.prefixes):
                for cid in ids:
                    cache.pop((*prefix, cid), None)

    def put(self, name: str, ids: list[str], cols: dict[str, list], key: tuple, answers: dict[str, object]) -> None:
        """Rewrite these customers' cached rows (model `name`'s service) and answers (computation `key`) with
        what was just written online, so their next score is a cache hit (serving/live.py)."""
        cache = self.cache
        if cache is None:
            return
        service, names = self.services[name].name, list(cols)
        with self.lock:
            for j, cid in enumerate(ids):
                cache[(service, cid)] = (names, tuple(cols[n][j] for n in names))
                if cid in answers:
                    cache[(*key, cid)] = answers[cid]
        self.prefixes |= {(service,), key}

    def _cached(self, cache: LRUCache, keys: list[tuple]) -> list:
        with self.lock:
            return [cache.get(k, _MISSING) for k in keys]

    def _store(self, cache: LRUCache, items: dict[tuple, object]) -> None:
        with self.lock:
            for k, v in items.items():
                cache[k] = v

    def _watermark(self) -> tuple:
        """What the registry says was last materialised, per view: changes with every materialisation."""
        self.store.refresh_registry()
        return tuple(
            sorted(
                (v.name, len(v.materialization_intervals), str(v.most_recent_end_time))
                for v in self.store.list_feature_views()
            )
        )


def decode(proto: GetOnlineFeaturesResponse) -> dict[str, list]:
    """Column dict from Feast's response proto. Equivalent to OnlineResponse.to_dict() for our scalar
    types but without its per-value type dispatch, which cost more than the whole model on a 1-id call."""
    out: dict[str, list] = {}
    for name, vector in zip(proto.metadata.feature_names.val, proto.results, strict=True):
        col = []
        for v in vector.values:
            kind = v.WhichOneof("val")
            col.append(None if kind is None or kind == "null_val" else getattr(v, kind))
        out[name] = col
    return out
