"""The console at /console: server-rendered pages for marketers, sales and data scientists, in the same app.

- **Login with an API key.** The key is kept in a signed (itsdangerous), http-only, SameSite=Strict session cookie
  (Secure in production), re-verified against the key table on every request, so a revoked key logs out within
  `LEADSCOPE_KEY_CACHE_SECONDS`. Sessions expire after `LEADSCOPE_CONSOLE_SESSION_SECONDS`.
- **CSRF.** Every POST carries the session's token (a hidden form field, or the X-CSRF-Token header htmx sends),
  compared in constant time; the login form has its own pre-session token (double submit). SameSite=Strict is a
  second line, not the only one.
- **The same scopes as the API.** Pages read through the API itself (an in-process ASGI call with the session's
  key): what a key may not call, its page does not show, and every check, validation and error of the API applies
  unchanged. Model cards and signal status read MLflow and the outbox directly, behind the `score` and
  `conversions` scopes.
- **No raw personal data on any page.** E-mail and phone search go through a hashed identity index (normalised and
  SHA-256 hashed as the ad platforms hash them); pages show ids, scores and features, never e-mails, phones or
  names. Exports are the API's hashed platform files.
- **No JavaScript needed to read.** Forms are plain GET/POST; htmx (pinned, served from /console/static, never a
  CDN) swaps fragments when it runs. Charts are HTML bars with their numbers as text.

Hand-written where no library fits: the CSRF check is a token comparison (starlette-csrf and fastapi-csrf-protect
want their own cookie schemes around JSON APIs; this is ten lines over the session we sign anyway).
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import json
import logging
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from leadscope.settings import Settings
from serving.keys import ApiKey

HERE = Path(__file__).parent
log = logging.getLogger("leadscope.console")
COOKIE = "leadscope_session"
LOGIN_COOKIE = "leadscope_login"
HTMX = "htmx-2.0.11.min.js"  # htmx.org 2.0.11 from the npm registry (0BSD), unmodified
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", include_in_schema=False)
PAGES = (  # (path, title, scope): the navigation, each page shown to keys with its scope
    ("/console/leads", "Lead lookup", "score"),
    ("/console/audiences", "Audiences", "audiences"),
    ("/console/models", "Model cards", "score"),
    ("/console/signals", "Signals", "conversions"),
)
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


class Refused(Exception):
    """A console request that cannot go on: rendered as a page (or fragment) with the status and the reason."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


@dataclass
class Session:
    token: str
    csrf: str
    key: ApiKey

    def allows(self, scope: str) -> bool:
        return self.key.allows(scope)


class Sessions:
    """Signed session cookies: {key, csrf} under the console secret (LEADSCOPE_CONSOLE_SECRET, else a random
    secret kept in the data directory, mode 0600, shared by the workers of one machine)."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.console_secret.get_secret_value() if settings.console_secret else _local_secret(settings)
        self.signer = URLSafeTimedSerializer(secret, salt="leadscope-console-session")
        self.login_signer = URLSafeTimedSerializer(secret, salt="leadscope-console-login")
        self.max_age = settings.console_session_seconds
        self.secure = settings.profile == "production"

    def issue(self, token: str) -> tuple[str, str]:
        csrf = secrets.token_urlsafe(32)
        return self.signer.dumps({"k": token, "c": csrf}), csrf

    def read(self, cookie: str | None) -> dict | None:
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self.signer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        return data if isinstance(data, dict) and {"k", "c"} <= set(data) else None

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, samesite="strict", secure=self.secure, path="/console"
        )


def _local_secret(settings: Settings) -> str:
    """The data directory's console secret, created once (mode 0600). Written to a temporary file and linked into
    place, so workers starting together all read the same whole secret."""
    path = settings.resolve(settings.data_dir) / "console.secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".console.secret.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # fails if another worker was first: its secret stands
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def sessions_of(request: Request) -> Sessions:
    app = request.app
    if getattr(app.state, "console_sessions", None) is None:
        app.state.console_sessions = Sessions(request.app.state.serving.settings)
    return app.state.console_sessions


def _fragment(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def session(request: Request) -> Session:
    """A valid session with a key that is still active, else a redirect to the login page (a fragment or a
    POST gets 401: no page, no fragment and no action without a session)."""
    s = _current(request)
    if s is None:
        if request.method == "GET" and not _fragment(request):
            raise _ToLogin()
        raise Refused(401, "not logged in, or the session expired: log in again")
    if request.method == "POST":
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            sent = (await request.form()).get("csrf")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), s.csrf.encode()):
            raise Refused(403, "missing or wrong CSRF token: reload the page and try again", "csrf")
    return s


def _current(request: Request) -> Session | None:
    """The request's session if its cookie is ours and its key still active."""
    data = sessions_of(request).read(request.cookies.get(COOKIE))
    key = request.app.state.guard.keys.verify(data["k"]) if data else None
    return Session(data["k"], data["c"], key) if key is not None else None


class _ToLogin(Exception):
    pass


Auth = Annotated[Session, Depends(session)]
AudienceId = Annotated[str, FastApiPath(pattern=r"^[A-Za-z0-9_-]{1,40}$")]  # only ever an id in the API's path


def need(s: Session, scope: str) -> None:
    if not s.allows(scope):
        raise Refused(403, f"this API key lacks the '{scope}' scope")


def page(request: Request, name: str, s: Session | None, status: int = 200, **ctx: Any) -> HTMLResponse:
    nav = [(p, t) for p, t, scope in PAGES if s is not None and s.allows(scope)]
    response = templates.TemplateResponse(
        request,
        name,
        {"session": s, "nav": nav, "htmx": HTMX, "fragment": _fragment(request), "path": request.url.path, **ctx},
        status_code=status,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


async def api(request: Request, s: Session, method: str, path: str, **kw: Any) -> httpx.Response:
    """The API itself, in process, with the session's key: its scopes, validation and errors apply unchanged."""
    transport = httpx.ASGITransport(app=request.app, client=("127.0.0.1", 0))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.internal", timeout=120) as c:
        return await c.request(method, path, headers={"authorization": f"Bearer {s.token}"}, **kw)


def _error_of(r: httpx.Response) -> Refused:
    try:
        err = r.json()["error"]
        return Refused(r.status_code, err.get("message") or "refused", err.get("field"))
    except (ValueError, KeyError, TypeError):
        return Refused(r.status_code, f"the API answered {r.status_code}")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> HTMLResponse:
        s = _current(request)
        return page(request, "error.html", s, status=exc.status, message=exc.message, field=exc.field)

    api_validation = app.exception_handlers[RequestValidationError]

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        """A console form with a bad field gets the console's error page naming it; the API keeps its JSON."""
        if not request.url.path.startswith("/console"):
            return await api_validation(request, exc)
        first = (exc.errors() or [{}])[0]
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
        field = ".".join(loc) or None
        return await refused(request, Refused(422, f"{field or 'request'}: {first.get('msg', 'invalid')}", field))

    @app.exception_handler(_ToLogin)
    async def to_login(request: Request, exc: _ToLogin) -> Response:
        return RedirectResponse("/console/login", status_code=303)


# --- login --------------------------------------------------------------------------------------------------------


@router.get("")
async def home(s: Auth) -> Response:
    first = next((p for p, _, scope in PAGES if s.allows(scope)), "/console/login")
    return RedirectResponse(first, status_code=303)


@router.get("/login")
async def login_form(request: Request) -> HTMLResponse:
    sessions = sessions_of(request)
    token = secrets.token_urlsafe(32)
    response = page(request, "login.html", None, login_csrf=token)
    sessions.set_cookie(response, LOGIN_COOKIE, sessions.login_signer.dumps(token), max_age=3600)
    return response


@router.post("/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    sessions = sessions_of(request)
    try:
        expected = sessions.login_signer.loads(request.cookies.get(LOGIN_COOKIE, ""), max_age=3600)
    except BadSignature:
        expected = None
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), csrf.encode()):
        raise Refused(403, "missing or wrong CSRF token: reload the login page and try again", "csrf")
    key = request.app.state.guard.keys.verify(api_key.strip()) if api_key.strip() else None
    if key is None:
        token = secrets.token_urlsafe(32)
        response = page(request, "login.html", None, status=401, login_csrf=token, error="unknown or revoked API key")
        sessions.set_cookie(response, LOGIN_COOKIE, sessions.login_signer.dumps(token), max_age=3600)
        return response
    if key.allows("score") and request.app.state.serving.snapshots is not None:
        # the hashed e-mail/phone index is built once per snapshot (seconds on a large company): start it now
        asyncio.get_running_loop().run_in_executor(None, _warm_identity, request.app.state.serving)
    cookie, _ = sessions.issue(api_key.strip())
    first = next((p for p, _, scope in PAGES if key.allows(scope)), "/console/leads")
    response = RedirectResponse(first, status_code=303)
    sessions.set_cookie(response, COOKIE, cookie, max_age=sessions.max_age)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(s: Auth) -> Response:
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


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


def query(**kw: object) -> str:
    return urlencode({k: v for k, v in kw.items() if v not in (None, "")})


templates.env.globals["query"] = query
