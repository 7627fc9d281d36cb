"""Lead lookup: search by id, e-mail or phone (through the hashed identity index), a lead's scores, reasons,
next-best-action, score history and social-graph features."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from serving.console.base import (
    Auth,
    Refused,
    _error_of,
    api,
    log,
    need,
    page,
    query,
    router,
)

# --- lead lookup ----------------------------------------------------------------------------------------------------


@router.post("/leads")
async def search(request: Request, s: Auth, q: Annotated[str, Form(max_length=200)] = "") -> Response:
    """The search form: an id, e-mail or phone in the body (never in an address or a log), answered with a
    redirect to the customer's page by id, or the page saying what matched."""
    need(s, "score")
    q = q.strip()
    if not q:
        return RedirectResponse("/console/leads", status_code=303)
    ids = await run_in_threadpool(_find, request.app.state.serving, q)
    if len(ids) == 1:
        return RedirectResponse(f"/console/leads?{query(q=ids[0])}", status_code=303)
    if not ids:
        return page(request, "leads.html", s, status=404, q="", lead=None, missing=f"no customer with this {_kind(q)}")
    return page(request, "leads.html", s, q="", lead=None, matches=ids[:20])


def _kind(q: str) -> str:
    return "e-mail" if "@" in q else ("phone" if _phone_like(q) else "id")


def _phone_like(q: str) -> bool:
    digits = q.lstrip("+").replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
    return digits.isdigit() and len(digits) >= 7


@router.get("/leads")
async def leads(request: Request, s: Auth, q: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    need(s, "score")
    q = q.strip()
    if not q:
        return page(request, "leads.html", s, q="", lead=None)
    state = request.app.state.serving
    if "@" in q:  # personal data stays out of addresses (history, proxies, logs): the form posts it
        raise Refused(422, "search by e-mail or phone with the search form, not in the address", "q")
    ids = await run_in_threadpool(_find, state, q)
    if not ids:
        return page(request, "leads.html", s, status=404, q=q, lead=None, missing=f"no customer with this {_kind(q)}")
    if len(ids) > 1:
        return page(request, "leads.html", s, q="", lead=None, matches=ids[:20])
    cid = ids[0]
    models = [m for m in ("propensity", "churn", "value") if m in state.models]
    r = await api(request, s, "POST", "/v1/scores", json={"customer_ids": [cid], "models": models})
    if r.status_code != 200:
        raise _error_of(r)
    item = r.json()["results"][0]
    nba = await api(request, s, "POST", "/v1/next-best-action", json={"customer_ids": [cid], "max_actions": 5})
    history = await api(request, s, "GET", f"/v1/customers/{cid}/scores")
    graph = await run_in_threadpool(_graph, state, cid)
    return page(
        request,
        "leads.html",
        s,
        q=cid,
        lead=cid,
        item=item,
        scores=[(m, item.get(m)) for m in ("propensity", "churn") if item.get(m)],
        value=item.get("value"),
        nba=nba.json()["items"][0] if nba.status_code == 200 else None,
        nba_error=None if nba.status_code == 200 else _error_of(nba).message,
        history=history.json() if history.status_code == 200 else None,
        graph=graph,
        bar=_bar,
        waterfall=_waterfall,
    )


def _find(state: Any, q: str) -> list[str]:
    """Customer ids matching an id, or (through the hashed identity index) an e-mail or phone."""
    from serving.signals import hashing

    if not state.loaded or state.snapshots is None:
        raise Refused(503, "models and features are still loading (or the feature store is unavailable): see /readyz")
    index = _identity_index(state)
    if "@" in q:
        return index.get(_hashed(hashing.meta_email, q), [])
    if _phone_like(q) and q not in index["ids"]:
        digits = "".join(ch for ch in q if ch.isdigit())
        return index.get(_hashed(hashing.meta_phone, q if q.startswith("+") else "+" + digits), [])
    return [q] if q in index["ids"] else []


def _hashed(rule: Any, *values: str | None) -> str | None:
    """The platform rule's hash of a value, or None where the rule cannot read it (not an e-mail, not a number):
    a customer's unreadable identifier is simply not in the index, a searched one matches nobody."""
    try:
        return rule(*values)
    except ValueError:
        return None


def _identity_index(state: Any) -> dict:
    """sha256(normalised e-mail or phone) → customer ids, and the set of ids; rebuilt with the snapshots (the raw
    identifiers are read once and never kept)."""
    snapshots = state.snapshots

    def build() -> dict:
        from serving.signals import hashing

        contacts = snapshots.contacts()
        frame = contacts if "customer_id" in contacts else contacts.reset_index()
        index: dict = {"ids": set(frame["customer_id"].astype(str))}
        for row in frame.to_dict("records"):
            cid = str(row["customer_id"])
            for h in (
                _hashed(hashing.meta_email, _text(row.get("email"))),
                _hashed(hashing.meta_phone, _text(row.get("phone")), _text(row.get("country"))),
            ):
                if h:
                    index.setdefault(h, []).append(cid)
        return index

    return snapshots.memo("console_identity", build)


def warm(state: Any) -> None:
    """Build what the console's first visits need (the imported tables, the hashed identity index, the audience
    population), in the background with the server's prewarm: a first lead search then answers as fast as the
    next."""
    if state.live is not None:  # the imported tables the score history checks ids against
        try:
            state.live.base.fresh()
        except Exception as exc:  # noqa: BLE001 - the first history read loads them again and says what failed
            log.warning("imported tables not loaded: %s", type(exc).__name__)
    if state.snapshots is None:
        return
    _warm_identity(state)
    try:
        state.snapshots.population()
    except Exception as exc:  # noqa: BLE001 - the audience page loads it again and says what failed
        log.warning("audience population not loaded: %s", type(exc).__name__)


def _warm_identity(state: Any) -> None:
    try:
        _identity_index(state)
    except Exception as exc:  # noqa: BLE001 - the first search builds it again and says what failed
        log.warning("identity index not built: %s", type(exc).__name__)


def _text(v: object) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def _graph(state: Any, cid: str) -> list[tuple[str, str, object]]:
    """The customer's social-graph features online (referrals, influence, community) with their labels."""
    from features.catalog import describe

    online = state.online
    if online is None:
        return []
    try:
        if "console_graph" not in online.services:
            online.serve("console_graph", "customer_360")
        row = online.read("console_graph", [cid])
    except Exception:  # noqa: BLE001 - the page shows the rest; the store's state is on /readyz
        return []
    view = next(
        (p for p in online.services["console_graph"].feature_view_projections if p.name == "customer_graph"), None
    )
    names = [f.name for f in view.features] if view is not None else []
    out = []
    for n in names:
        v = row.get(n, [None])[0]
        out.append((n, describe(n).label, round(v, 4) if isinstance(v, float) else v))
    return out


def _waterfall(reasons: list[dict]) -> list[dict]:
    """The reasons as waterfall steps: each bar starts where the previous one ended (the running sum of the
    contributions, log-odds), positions in percent of the span the sums cover (0 included)."""
    sums = [0.0]
    for r in reasons:
        sums.append(sums[-1] + float(r["impact"]))
    lo, hi = min(sums), max(sums)
    span = (hi - lo) or 1.0
    out = []
    for r, a, b in zip(reasons, sums, sums[1:], strict=False):
        x = 100 * (min(a, b) - lo) / span
        out.append({**r, "x": round(x, 2), "w": round(max(100 * abs(b - a) / span, 1.0), 2), "up": b >= a})
    return out


def _bar(value: float, scale: float) -> int:
    """Width in percent of a bar for `value` against the largest magnitude `scale`."""
    return 0 if not scale else max(1, round(100 * abs(value) / scale))
