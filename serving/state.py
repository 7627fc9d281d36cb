"""What the app holds while it runs: the champion models and readiness (loaded in the lifespan, reloaded when an
alias moves), the online features with their cache (serving/online.py) and the snapshot reads (snapshots.py)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from features import store as feature_store
from leadscope import outcomes
from leadscope.schema import MODELS, SCORED_MODELS
from leadscope.settings import Settings
from serving import observability
from serving.online import OnlineFeatures
from serving.snapshots import Snapshots
from training import tracking
from training.tracking import Champion

log = logging.getLogger("leadscope.serving")
UPLIFT = "uplift"
assert UPLIFT in MODELS


@dataclass
class ServingState:
    settings: Settings
    online: OnlineFeatures | None = None  # None when the feature store could not be opened (/readyz says why)
    snapshots: Snapshots | None = None
    models: dict[str, Champion] = field(default_factory=dict)  # scored models: Scorer or ValueModel champions
    nba: Champion | None = None  # the uplift champion (an UpliftBundle), when one is registered
    problems: list[str] = field(default_factory=list)
    loaded: bool = False  # set once load() has finished (whatever it found); until then /readyz says loading
    live: object | None = None  # serving/live.Live once the app runs (the real-time loop)
    warming: bool = False  # the cache is being filled with every customer's features and scores (see prewarm)
    score_batches: object | None = None  # serving/batches.ScoreBatches, made by the first small /v1/scores
    offline: object | None = None  # serving/offline.OfflineServing of the build online, made by a large batch

    def load(self, names: tuple[str, ...] = ("propensity",), optional: tuple[str, ...] | None = None) -> None:
        """Load what can be loaded; a required model that cannot is recorded so /readyz says why instead of
        crashing. Optional models (trained later in a company's life, the uplift model too) are served when
        registered."""
        if optional is None:
            optional = (*(m for m in SCORED_MODELS if m not in names), *outcomes.names(self.settings), UPLIFT)
        try:
            self._load(names, optional)
        finally:
            self.loaded = True

    def _load(self, names: tuple[str, ...], optional: tuple[str, ...]) -> None:
        try:
            store = feature_store.open_store(self.settings)
            self.online = OnlineFeatures(store, self.settings.feature_cache_size)
            self.snapshots = Snapshots(self.settings, store)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by /readyz
            self.problems.append(f"feature store: {type(exc).__name__}")
            return
        for name in names + optional:
            if name in optional and not tracking.has_champion(self.settings, name):
                continue
            try:
                self._swap_in(tracking.load_champion(self.settings, name))
            except Exception as exc:  # noqa: BLE001
                log.warning("model %s not loaded: %s", name, type(exc).__name__)
                self.problems.append(f"model {name}: not available ({type(exc).__name__})")

    def _swap_in(self, champ: Champion) -> None:
        """Serve `champ` from now on (requests in flight keep the object they started with)."""
        assert self.online is not None
        self.online.serve(champ.name, champ.feature_service)
        if hasattr(champ.model, "shap_tables"):
            champ.model.shap_tables()  # built before the model serves: the first request would pay for it
        if champ.name == UPLIFT:
            self.nba = champ
        else:
            self.models[champ.name] = champ
        observability.model_loaded(champ.name, champ.version, champ.feature_service)

    def current(self, name: str) -> Champion | None:
        return self.nba if name == UPLIFT else self.models.get(name)

    def refresh(self) -> list[str]:
        """Load any model whose champion alias moved and swap it in whole, so a switch fails no request. Drop
        cached rows and snapshots once a new materialisation shows in the registry. Returns what changed. Runs off
        the event loop."""
        if self.online is None:
            return []
        changed = ["features: new materialisation"] if self.online.materialised() else []
        trained = outcomes.names(self.settings)
        for name in dict.fromkeys((*self.models, *trained, UPLIFT)):
            current = self.current(name)
            version = tracking.alias_version(self.settings, name)
            if version is None or (current is not None and version == current.version):
                continue
            if current is None and name != UPLIFT and name not in trained:
                continue  # a built-in scored model not loaded at start-up stays unloaded (see load)
            champ = tracking.load_champion(self.settings, name)
            self._swap_in(champ)
            log.info("model %s: champion v%s → v%s", name, current.version if current else "-", champ.version)
            changed.append(f"{name} v{champ.version}")
        if changed:
            assert self.snapshots is not None
            self.snapshots.drop()
            self.online.drop()
        if changed and changed[0].startswith("features") and self.live is not None:
            self.live.reapply_unfolded()  # batch rows were written over live ones
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


def load(state: ServingState) -> None:
    """Load the champions and features, then move everything loaded so far (Feast registry, models, libraries),
    which lives as long as the process, out of the collector's view: full collections stop pausing requests for
    tens of milliseconds."""
    try:
        state.load()
    finally:
        gc.collect()
        gc.freeze()
