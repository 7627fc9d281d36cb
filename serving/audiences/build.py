"""Building a lookalike audience: seed resolution and size checks, the build itself (in the request or on the
server's audience worker thread), and its MLflow run."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from leadscope.settings import Settings
from serving.audiences.store import AudienceStore, Request
from training import lookalike
from training.lookalike import Population

log = logging.getLogger("leadscope.audiences")
UNKNOWN_SHOWN = 100  # unknown seed ids echoed back (ids are pseudonymous CRM keys, not personal data)


def resolve(pop: Population, req: Request) -> tuple[np.ndarray, dict, int]:
    """(seed rows, seed summary, target size); ValueError naming the field when the request cannot be built."""
    rows, unknown = pop.resolve(req.seed_customer_ids)
    seed = {
        "given": len(req.seed_customer_ids),
        "distinct": len(set(req.seed_customer_ids)),
        "resolved": int(len(rows)),
        "unknown_count": len(unknown),
        "unknown": unknown[:UNKNOWN_SHOWN],
    }
    if len(rows) < lookalike.MIN_SEED:
        raise SeedTooSmall(
            f"seed_customer_ids: {len(rows)} of {seed['distinct']} distinct ids resolved to known customers; "
            f"a lookalike needs at least {lookalike.MIN_SEED}",
            seed,
        )
    size = req.target_size(len(pop))
    limit = int(len(pop) * 0.10)
    if req.size is not None and size > limit:
        raise ValueError(f"size: at most 10% of the population ({limit} of {len(pop)})")
    return rows, seed, size


class SeedTooSmall(ValueError):
    def __init__(self, message: str, seed: dict) -> None:
        super().__init__(message)
        self.seed = seed


def run_build(
    settings: Settings,
    store: AudienceStore,
    pop: Population,
    audience_id: str,
    req: Request,
    seed_rows: np.ndarray,
    size: int,
    track: Callable[[dict], str | None] | None = None,
) -> None:
    """Build and store; any failure marks the audience failed (with a message that names no person)."""
    try:
        state = lookalike.random_state_for(list(pop.ids[seed_rows]), size, req.exclude)
        built = lookalike.build(pop, seed_rows, size, req.exclude, random_state=state, threads=settings.num_threads)
        metrics = {
            **{k: round(v, 6) for k, v in built.metrics.items()},
            "weights": dict(zip(("classifier", "embedding", "graph"), built.weights, strict=True)),
            "candidates": built.candidates,
            "method": lookalike.METHOD,
            "population": len(pop),
            "population_as_of": pop.as_of,
        }
        if track is not None:
            metrics["mlflow_run_id"] = track(
                {"audience_id": audience_id, "seed_resolved": len(seed_rows), "size": size, **metrics}
            )
        store.finish(audience_id, built, pop.ids, metrics)
    except ValueError as exc:
        store.fail(audience_id, str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded on the audience; the server keeps running
        log.exception("audience build failed")
        store.fail(audience_id, f"build failed: {type(exc).__name__}")


def tracker(settings: Settings) -> Callable[[dict], str | None]:
    """One MLflow run per audience build in the 'lookalike' experiment: sizes, method, weights, validation."""

    def track(info: dict) -> str | None:
        from training import tracking

        client = tracking.configure(settings)
        run = client.create_run(tracking.experiment(settings, "lookalike"), run_name=info["audience_id"])
        rid = run.info.run_id
        params = {k: info[k] for k in ("audience_id", "seed_resolved", "size", "method", "candidates", "population")}
        params.update({f"weight_{k}": v for k, v in info["weights"].items()})
        params["population_as_of"] = info["population_as_of"]
        for k, v in params.items():
            client.log_param(rid, k, v)
        for k, v in info.items():
            if k.startswith("val_") or k == "build_seconds":
                client.log_metric(rid, k, float(v))
        client.set_terminated(rid)
        return rid

    return track
