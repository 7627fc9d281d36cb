"""Audiences: lookalikes of an uploaded seed or a segment, their insight, members left out and exports."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

import pandas as pd
from fastapi import File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from leadscope.settings import Settings
from serving.console.base import (
    SECURITY_HEADERS,
    AudienceId,
    Auth,
    Refused,
    Session,
    _error_of,
    api,
    need,
    page,
    router,
)
from serving.console.leads import _bar

# --- audiences ------------------------------------------------------------------------------------------------------


@router.get("/audiences")
async def audiences(request: Request, s: Auth) -> HTMLResponse:
    need(s, "audiences")
    recent = await run_in_threadpool(request.app.state.audiences.recent, 20)
    estimate = await _estimate(request, 1.0)
    segments = await run_in_threadpool(_segments, request.app.state.serving)
    return page(request, "audiences.html", s, recent=recent, estimate=estimate, percent=1.0, segments=segments)


MAX_VALUES = 30  # an attribute with more distinct values than this is not offered as a segment filter


def _segments(state: Any) -> dict[str, list[str]]:
    """attribute → its values (the insight's attributes of the newest snapshot): the segment filters."""
    from serving.audiences.insight import attributes_of

    if state.snapshots is None:
        return {}
    try:
        attrs = attributes_of(state.snapshots.population())
    except Exception:  # noqa: BLE001 - no snapshot yet: the page offers only the upload
        return {}
    out = {}
    for col in attrs.columns:
        values = sorted(attrs[col].dropna().astype(str).unique())
        if 1 < len(values) <= MAX_VALUES:
            out[col] = values
    return out


@router.post("/audiences/segment")
async def build_from_segment(
    request: Request,
    s: Auth,
    filter: Annotated[list[str], Form(max_length=4)],
    percent: Annotated[float, Form(ge=0.1, le=10)] = 1.0,
    size: Annotated[str, Form(max_length=12)] = "",
    name: Annotated[str, Form(min_length=1, max_length=100)] = "segment lookalike",
) -> Response:
    """A lookalike of a segment: everyone whose attributes match every chosen `attribute=value` filter."""
    need(s, "audiences")
    state = request.app.state.serving
    segments = await run_in_threadpool(_segments, state)
    chosen: dict[str, set[str]] = {}
    for i, f in enumerate(x for x in filter if x):
        attr, _, value = f.partition("=")
        if value not in segments.get(attr, ()):
            raise Refused(422, f"filter.{i}: not an attribute=value of the newest snapshot", f"filter.{i}")
        chosen.setdefault(attr, set()).add(value)
    if not chosen:
        raise Refused(422, "choose at least one attribute=value filter", "filter")

    def members() -> list[str]:
        from serving.audiences.insight import attributes_of

        pop = state.snapshots.population()
        attrs = attributes_of(pop)
        mask = pd.Series(True, index=attrs.index)
        for attr, values in chosen.items():  # values of one attribute: any of them; attributes: all of them
            mask &= attrs[attr].astype(str).isin(values)
        return [str(i) for i in pop.ids[mask.to_numpy()]][:200_000]

    ids = await run_in_threadpool(members)
    if not ids:
        raise Refused(422, "no customer matches these filters", "filter")
    return await _lookalike(request, s, ids, _size(size, percent), name, "filter")


@router.get("/audiences/estimate")
async def estimate(request: Request, s: Auth, percent: Annotated[float, Query(ge=0.1, le=10)] = 1.0) -> HTMLResponse:
    need(s, "audiences")
    return page(request, "_estimate.html", s, estimate=await _estimate(request, percent), percent=percent)


async def _estimate(request: Request, percent: float) -> dict | None:
    """Expected reach and conversions of an audience of `percent` of the population: reach from the population
    size, conversions at the open leads' mean calibrated propensity (a lookalike of good customers does better;
    its own figure comes with the insight)."""
    state = request.app.state.serving
    if state.snapshots is None:
        return None

    def compute() -> dict:
        from serving.audiences.insight import expected_conversion

        pop = state.snapshots.population()
        reach = max(1, round(len(pop) * percent / 100))
        import numpy as np

        rate = expected_conversion(
            state.models.get("propensity"), pop, np.arange(len(pop)), state.settings.propensity_horizon_days
        )
        base = rate.get("population_rate") if rate else None
        return {
            "population": len(pop),
            "reach": reach,
            "rate": base,
            "conversions": round(reach * base, 1) if base else None,
        }

    try:
        return await run_in_threadpool(compute)
    except Exception:  # noqa: BLE001 - no snapshot yet: the page says so
        return None


@router.post("/audiences")
async def build(
    request: Request,
    s: Auth,
    seed_file: Annotated[UploadFile, File()],
    percent: Annotated[float, Form(ge=0.1, le=10)] = 1.0,
    size: Annotated[str, Form(max_length=12)] = "",
    name: Annotated[str, Form(min_length=1, max_length=100)] = "lookalike",
) -> Response:
    need(s, "audiences")
    settings: Settings = request.app.state.serving.settings
    ids = _seed_ids(await seed_file.read(settings.console_max_upload_bytes + 1), settings.console_max_upload_bytes)
    return await _lookalike(request, s, ids, _size(size, percent), name, "seed_file")


def _size(size: str, percent: float) -> dict:
    """The API's size rule: an exact member count when one is given, else the percent."""
    if not size.strip():
        return {"percent": percent}
    if not size.strip().isdigit() or int(size) < 1:
        raise Refused(
            422, "size: a whole number of members, at least 1 (or leave it empty and use the percent)", "size"
        )
    return {"size": int(size)}


async def _lookalike(request: Request, s: Session, ids: list[str], rule: dict, name: str, field: str) -> Response:
    """POST /v1/audiences/lookalike with the session's key; its refusals name the console's field."""
    r = await api(
        request, s, "POST", "/v1/audiences/lookalike",
        json={"seed_customer_ids": ids, **rule, "exclude": ["seed"], "name": name},
    )  # fmt: skip
    if r.status_code not in (201, 202):
        err = _error_of(r)
        if err.field and err.field.startswith("seed_customer_ids"):
            err.field = field
        raise err
    return RedirectResponse(f"/console/audiences/{r.json()['audience_id']}", status_code=303)


def _seed_ids(raw: bytes, limit: int) -> list[str]:
    """The ids of an uploaded seed CSV: a customer_id column (or the only column), UTF-8, at most `limit` bytes."""
    if len(raw) > limit:
        raise Refused(413, f"seed file larger than {limit:,} bytes", "seed_file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refused(422, "seed file is not UTF-8 text", "seed_file") from None
    from features.files import DELIMITERS

    first = text.split("\n", 1)[0]
    try:  # a spreadsheet's export: , ; tab or |, as the import reads them
        delimiter = csv.Sniffer().sniff(first, delimiters=DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise Refused(422, "seed file is empty", "seed_file")
    header = [c.strip().lower() for c in rows[0]]
    if "customer_id" in header:
        col, body = header.index("customer_id"), rows[1:]
    elif len(header) == 1:
        col, body = 0, rows
    else:
        raise Refused(422, "seed file needs a customer_id column (or a single column of ids)", "seed_file")
    ids = [r[col].strip() for r in body if len(r) > col and r[col].strip()]
    if not ids:
        raise Refused(422, "seed file holds no ids", "seed_file")
    return ids


@router.get("/audiences/{audience_id}")
async def audience(
    request: Request,
    s: Auth,
    audience_id: AudienceId,
    cross: Annotated[str | None, Query(max_length=200)] = None,
    compare: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    need(s, "audiences")
    found = await api(request, s, "GET", f"/v1/audiences/{audience_id}", params={"limit": 20})
    if found.status_code != 200:
        raise _error_of(found)
    info = found.json()
    insight, insight_error = None, None
    if info["status"] == "ready":
        params = {k: v for k, v in (("cross", cross), ("compare", compare)) if v}
        r = await api(request, s, "GET", f"/v1/audiences/{audience_id}/insight", params=params)
        if r.status_code == 200:
            insight = r.json()
        else:
            insight_error = _error_of(r).message
    recent = [
        a for a in await run_in_threadpool(request.app.state.audiences.recent, 20) if a["audience_id"] != audience_id
    ]
    left_out = await _left_out(request, s, audience_id) if info["status"] == "ready" else {}
    heat = _heatmap(insight["cross"]) if insight and insight.get("cross") else None
    return page(
        request, "audience.html", s, info=info, insight=insight, insight_error=insight_error, heat=heat,
        cross=cross or "", compare=compare or "", recent=recent, bar=_bar, left_out=left_out,
    )  # fmt: skip


async def _left_out(request: Request, s: Session, audience_id: str) -> dict:
    """Who each platform's file leaves out and why: the export's own counts, read once per audience and snapshot
    (a ready audience does not change; its members' consent and identifiers change with the snapshot)."""
    snapshots = request.app.state.serving.snapshots
    key = f"console:left-out:{audience_id}"
    found = snapshots.get(key) if snapshots is not None else None
    if found is not None:
        return found
    counts = {}
    for fmt in ("meta", "google"):
        r = await api(request, s, "GET", f"/v1/audiences/{audience_id}/export", params={"format": fmt})
        if r.status_code == 200:
            counts[fmt] = {
                k[12:].replace("-", " "): int(v) for k, v in r.headers.items() if k.startswith("x-leadscope-")
            }
    if snapshots is not None and len(counts) == 2:
        snapshots.memo(key, lambda: counts)
    return counts


def _heatmap(cross: dict) -> dict:
    first, second = cross["attributes"]
    rows = sorted({c[first] for c in cross["cells"]})
    cols = sorted({c[second] for c in cross["cells"]})
    cells = {(c[first], c[second]): c for c in cross["cells"]}
    top = max((c["lift"] for c in cross["cells"]), default=1.0) or 1.0
    return {"first": first, "second": second, "rows": rows, "cols": cols, "cells": cells, "top": top}


@router.get("/audiences/{audience_id}/export")
async def export(
    request: Request, s: Auth, audience_id: AudienceId, format: Annotated[str, Query(pattern="^(meta|google)$")]
) -> Response:
    need(s, "audiences")
    r = await api(request, s, "GET", f"/v1/audiences/{audience_id}/export", params={"format": format})
    if r.status_code != 200:
        raise _error_of(r)
    keep = {k: v for k, v in r.headers.items() if k.startswith("x-leadscope-") or k == "content-disposition"}
    return Response(r.content, media_type="text/csv", headers={**keep, **SECURITY_HEADERS})


# --- model cards ----------------------------------------------------------------------------------------------------
