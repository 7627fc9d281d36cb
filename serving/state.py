"""What the app holds while it runs: the Feast store and the champion models (loaded in the lifespan)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from feast import FeatureService, FeatureStore
from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse

from features import store as feature_store
from leadscope.settings import Settings
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

    def load(self, names: tuple[str, ...] = ("propensity",), optional: tuple[str, ...] = ("churn", "value")) -> None:
        """Load what can be loaded; a required model that cannot is recorded so /readyz says why instead of
        crashing. Optional models (trained later in a company's life) are served when registered."""
        try:
            self.store = feature_store.open_store(self.settings)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by /readyz
            self.problems.append(f"feature store: {type(exc).__name__}")
            return
        for name in names + optional:
            if name in optional and not tracking.has_champion(self.settings, name):
                continue
            try:
                champ = tracking.load_champion(self.settings, name)
                self.services[name] = self.store.get_feature_service(champ.feature_service)
                self.models[name] = champ
            except Exception as exc:  # noqa: BLE001
                log.warning("model %s not loaded: %s", name, type(exc).__name__)
                self.problems.append(f"model {name}: not available ({type(exc).__name__})")

    def refresh(self) -> list[str]:
        """Load any model whose champion alias moved; swap it in whole (requests in flight keep the object
        they started with, so a switch fails none). Returns what changed. Runs off the event loop."""
        changed = []
        for name, current in list(self.models.items()):
            version = tracking.alias_version(self.settings, name)
            if version is None or version == current.version:
                continue
            champ = tracking.load_champion(self.settings, name)
            assert self.store is not None
            service = self.store.get_feature_service(champ.feature_service)
            self.services[name], self.models[name] = service, champ
            log.info("model %s: champion v%s → v%s", name, current.version, champ.version)
            changed.append(f"{name} v{champ.version}")
        return changed

    async def watch(self, every_seconds: float) -> None:
        """Poll the registry for new champions until cancelled; errors are logged, never raised."""
        import asyncio

        from starlette.concurrency import run_in_threadpool

        while True:
            await asyncio.sleep(every_seconds)
            try:
                await run_in_threadpool(self.refresh)
            except Exception as exc:  # noqa: BLE001 - a failed reload keeps serving the current champion
                log.warning("model refresh failed: %s", type(exc).__name__)

    def online(self, name: str, ids: list[str]) -> dict[str, list]:
        """Feature columns for `ids` from the online store (None where missing)."""
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
