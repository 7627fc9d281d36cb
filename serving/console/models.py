"""Model cards (metrics, promotion checks, plots, drift) and the signals page (deliveries per platform)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from leadscope.settings import Settings
from serving.console.base import (
    SECURITY_HEADERS,
    Auth,
    Refused,
    api,
    need,
    page,
    router,
)


@router.get("/models")
async def models(request: Request, s: Auth, name: Annotated[str | None, Query(max_length=100)] = None) -> HTMLResponse:
    need(s, "score")
    state = request.app.state.serving
    names = sorted(state.models)
    chosen = name if name in names else (names[0] if names else None)
    card = await run_in_threadpool(_card, state.settings, chosen) if chosen else None
    return page(request, "models.html", s, names=names, chosen=chosen, card=card)


KEY_METRICS = (
    "auc", "roc_auc", "holdout_auc", "brier", "ece", "calibration_error", "lift_top_decile", "lift_at_10",
    "log_loss", "mae", "qini",
)  # fmt: skip


def _card(settings: Settings, name: str) -> dict:
    """A model's versions from the MLflow registry: aliases, the metrics of each version's run, its logged plots,
    the last promotion decision and the drift of the last `leadscope monitor` run."""
    from training import tracking

    client = tracking.configure(settings)
    try:
        registered = client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - a custom outcome or a model not registered under this name
        return {"versions": [], "aliases": {}, "metric_names": [], "drift": None, "decision": None}
    aliases: dict[str, list[str]] = {}
    for alias, version in (registered.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version), reverse=True)[:10]
    rows, names = [], set()
    decision = None
    for v in versions:
        metrics, plots = {}, []
        if v.run_id:
            try:
                run = client.get_run(v.run_id)
                metrics = {k: val for k, val in run.data.metrics.items() if not k.startswith("psi.")}
                plots = [a.path for a in client.list_artifacts(v.run_id, "plots") if a.path.endswith(".png")]
            except Exception:  # noqa: BLE001 - a run deleted from the tracking store: the version still shows
                pass
        names |= set(metrics)
        if decision is None and v.tags.get("promotion_decision"):
            decision = {"version": str(v.version), **json.loads(v.tags["promotion_decision"])}
        rows.append({"version": str(v.version), "aliases": aliases.get(str(v.version), []), "metrics": metrics,
                     "plots": plots, "run_id": v.run_id, "created": v.creation_timestamp})  # fmt: skip
    shown = [m for m in KEY_METRICS if m in names] + sorted(n for n in names if n not in KEY_METRICS)[:8]
    return {"versions": rows, "aliases": aliases, "metric_names": shown, "drift": _drift(client, settings, name),
            "decision": decision}  # fmt: skip


def _drift(client: Any, settings: Settings, name: str) -> dict | None:
    exp = client.get_experiment_by_name("monitoring")
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id], f"tags.model = '{name}'", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not runs:
        return None
    psi = sorted(((k[4:], v) for k, v in runs[0].data.metrics.items() if k.startswith("psi.")), key=lambda kv: -kv[1])
    return {"version": runs[0].data.tags.get("version"), "psi": psi[:15], "at": runs[0].info.start_time}


@router.get("/models/{name}/{version}/plots/{plot}")
async def plot(request: Request, s: Auth, name: str, version: str, plot: str) -> Response:
    """A plot logged with a model version's run (PNG), read from the tracking store."""
    need(s, "score")
    if not plot.endswith(".png") or "/" in plot or ".." in plot:
        raise Refused(404, "no such plot", "plot")
    settings = request.app.state.serving.settings

    def read() -> bytes | None:
        from mlflow.artifacts import download_artifacts

        from training import tracking

        client = tracking.configure(settings)
        try:
            run_id = client.get_model_version(name, version).run_id
            return Path(download_artifacts(run_id=run_id, artifact_path=f"plots/{plot}")).read_bytes()
        except Exception:  # noqa: BLE001 - unknown model, version or plot
            return None

    data = await run_in_threadpool(read)
    if data is None:
        raise Refused(404, "no such plot", "plot")
    return Response(data, media_type="image/png", headers=SECURITY_HEADERS | {"cache-control": "private, max-age=3600"})


# --- signals --------------------------------------------------------------------------------------------------------


@router.get("/signals")
async def signals(request: Request, s: Auth) -> HTMLResponse:
    need(s, "conversions")
    outbox = request.app.state.outbox
    platforms = await run_in_threadpool(outbox.status) if outbox is not None else {}
    failures = await run_in_threadpool(outbox.failures, 20) if outbox is not None else []
    hooks, deliveries = None, {}
    if s.allows("webhooks"):
        r = await api(request, s, "GET", "/v1/webhooks")
        if r.status_code == 200:
            hooks = r.json()
            for h in hooks[:10]:
                d = await api(request, s, "GET", f"/v1/webhooks/{h['id']}/deliveries")
                if d.status_code == 200:
                    deliveries[h["id"]] = d.json()
    return page(request, "signals.html", s, platforms=platforms, failures=failures, hooks=hooks, deliveries=deliveries)
