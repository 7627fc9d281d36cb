"""What the app holds while it runs: the Feast store and the champion models (loaded in the lifespan)."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from cachetools import LRUCache
from feast import FeatureService, FeatureStore
from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse

from features import store as feature_store
from leadscope.settings import Settings
from serving import observability
from training import tracking
from training.tracking import Champion

log = logging.getLogger("leadscope.serving")


@dataclass
class ServingState:
    settings: Settings
    store: FeatureStore | None = None
    models: dict[str, Champion] = field(default_factory=dict)
    services: dict[str, FeatureService] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    loaded: bool = False  # set once load() has finished (whatever it found); until then /readyz says loading
    cache: LRUCache | None = None
    cache_lock: threading.Lock = field(default_factory=threading.Lock)  # LRUCache is not thread-safe
    watermark: tuple = ()
    warming: bool = False  # the cache is being filled with every customer's features and scores (see prewarm)
    population: object | None = None  # training.lookalike.Population, read on first use (audiences)
    population_lock: threading.Lock = field(default_factory=threading.Lock)
    contacts: object | None = None  # pandas DataFrame: identifiers for audience exports, read on first export
    nba: tuple | None = None  # (version, training.uplift.UpliftBundle) of the uplift champion, when registered
    nba_catalogue: object | None = None  # leadscope.catalogue.Catalogue, read on first use
    nba_history: object | None = None  # serving.nba.History: reachability and contact history, read on first use

    def load(self, names: tuple[str, ...] = ("propensity",), optional: tuple[str, ...] = ("churn", "value")) -> None:
        """Load what can be loaded; a required model that cannot is recorded so /readyz says why instead of
        crashing. Optional models (trained later in a company's life) are served when registered."""
        try:
            self._load(names, optional)
        finally:
            # Everything loaded so far (Feast registry, models, libraries) lives as long as the process: move it
            # out of the collector's view so full collections stop pausing requests for tens of milliseconds.
            gc.collect()
            gc.freeze()
            self.loaded = True

    def _load(self, names: tuple[str, ...], optional: tuple[str, ...]) -> None:
        try:
            self.store = feature_store.open_store(self.settings)
            self.watermark = self._watermark()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by /readyz
            self.problems.append(f"feature store: {type(exc).__name__}")
            return
        if self.settings.feature_cache_size:
            self.cache = LRUCache(maxsize=self.settings.feature_cache_size)
        for name in names + optional:
            if name in optional and not tracking.has_champion(self.settings, name):
                continue
            try:
                champ = tracking.load_champion(self.settings, name)
                self.services[name] = self.store.get_feature_service(champ.feature_service)
                self.models[name] = champ
                observability.model_loaded(name, champ.version, champ.feature_service)
            except Exception as exc:  # noqa: BLE001
                log.warning("model %s not loaded: %s", name, type(exc).__name__)
                self.problems.append(f"model {name}: not available ({type(exc).__name__})")
        self._load_nba()

    def _load_nba(self) -> None:
        """The next-best-action bundle (optional: served once `leadscope train nba` has registered one)."""
        from training import nba

        if not tracking.has_champion(self.settings, nba.NAME):
            return
        try:
            version, bundle = nba.load_champion(self.settings)
            assert self.store is not None
            self.services["uplift"] = self.store.get_feature_service(bundle.feature_service)
            self.nba = (version, bundle)
            observability.model_loaded("uplift", version, bundle.feature_service)
        except Exception as exc:  # noqa: BLE001
            log.warning("model uplift not loaded: %s", type(exc).__name__)
            self.problems.append(f"model uplift: not available ({type(exc).__name__})")

    def _watermark(self) -> tuple:
        """What the registry says was last materialised, per view: changes with every materialisation."""
        assert self.store is not None
        self.store.refresh_registry()
        return tuple(
            sorted(
                (v.name, len(v.materialization_intervals), str(v.most_recent_end_time))
                for v in self.store.list_feature_views()
            )
        )

    def refresh(self) -> list[str]:
        """Load any model whose champion alias moved; swap it in whole (requests in flight keep the object
        they started with, so a switch fails none). Drop cached feature rows once a new materialisation shows
        in the registry. Returns what changed. Runs off the event loop."""
        changed = []
        if self.store is not None:
            mark = self._watermark()
            if mark != self.watermark:
                self.watermark = mark
                changed.append("features: new materialisation")
        for name, current in list(self.models.items()):
            version = tracking.alias_version(self.settings, name)
            if version is None or version == current.version:
                continue
            champ = tracking.load_champion(self.settings, name)
            assert self.store is not None
            service = self.store.get_feature_service(champ.feature_service)
            self.services[name], self.models[name] = service, champ
            observability.model_loaded(name, champ.version, champ.feature_service)
            log.info("model %s: champion v%s → v%s", name, current.version, champ.version)
            changed.append(f"{name} v{champ.version}")
        from training import nba

        version = tracking.alias_version(self.settings, nba.NAME)
        if version is not None and (self.nba is None or self.nba[0] != version):
            self._load_nba()
            changed.append(f"uplift v{version}")
        if changed:
            self.population = self.contacts = self.nba_history = None  # the next use reads the new snapshot
        if changed and self.cache is not None:
            self.cache = LRUCache(maxsize=self.cache.maxsize)  # swap, not clear: readers keep a whole one
        return changed

    async def watch(self, every_seconds: float, on_change: Callable[[], object] | None = None) -> None:
        """Poll the registry for new champions until cancelled; errors are logged, never raised. After a change,
        `on_change` runs off the event loop (the cache prewarm)."""
        import asyncio

        from starlette.concurrency import run_in_threadpool

        while True:
            await asyncio.sleep(every_seconds)
            try:
                if await run_in_threadpool(self.refresh) and on_change is not None:
                    await run_in_threadpool(on_change)
            except Exception as exc:  # noqa: BLE001 - a failed reload keeps serving the current champion
                log.warning("model refresh failed: %s", type(exc).__name__)

    def get_population(self):  # noqa: ANN201 - training.lookalike.Population (imported lazily: scoring needs none)
        """Everyone's features at the newest snapshot (offline store, point in time), built once per
        materialisation and shared by the audience builds of this process."""
        with self.population_lock:
            if self.population is None:
                from training import population

                self.population = population.load(self.settings, self.store)
            return self.population

    def customers(self):  # noqa: ANN201 - pandas DataFrame
        """The customers table's identifiers and ads consent (exports hash them; nothing else reads them)."""
        with self.population_lock:
            if self.contacts is None:
                from features.build import read_table

                df = read_table(self.settings.raw_dir, "customers")
                keep = ["customer_id", "email", "phone", "first_name", "last_name", "city", "state", "zip", "wechat_id"]
                self.contacts = df[[c for c in [*keep, "country", "consent_ads"] if c in df]]
            return self.contacts

    def online(self, name: str, ids: list[str]) -> dict[str, list]:
        """Feature columns for `ids` from the online store (None where missing).

        Online values change only when the store is materialised, so rows read once are kept in an LRU cache
        until the registry shows a new materialisation (checked every model_poll_seconds). Feast's Python read
        path costs ~1 ms per call whatever the batch size; a cached row costs a dict lookup. A future push path
        (POST /v1/events → Feast push source) writes outside materialisation and must drop the ids it pushes."""
        cache = self.cache
        if cache is None:
            return self._read(name, ids)
        service = self.services[name].name
        with self.cache_lock:
            rows = [cache.get((service, i)) for i in ids]
        missing = list(dict.fromkeys(i for i, r in zip(ids, rows, strict=True) if r is None))
        if missing:
            cols = self._read(name, missing)
            names = list(cols)
            fresh = {cid: (names, tuple(cols[n][j] for n in names)) for j, cid in enumerate(missing)}
            with self.cache_lock:
                for cid, row in fresh.items():
                    cache[(service, cid)] = row
            rows = [r if r is not None else fresh[i] for i, r in zip(ids, rows, strict=True)]
        names = rows[0][0]
        return {n: [r[1][k] for r in rows] for k, n in enumerate(names)}

    def _read(self, name: str, ids: list[str]) -> dict[str, list]:
        assert self.store is not None
        resp = self.store.get_online_features(features=self.services[name], entity_rows={"customer_id": ids})
        return decode(resp.proto)


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
