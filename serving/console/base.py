"""The console at /console: server-rendered pages for marketers, sales and data scientists, in the same app.

- **Login with an API key, sessions held server-side** (serving/console/sessions.py): the http-only, SameSite=Strict
  cookie (Secure in production) holds a random session id and nothing else; the service database maps it to the
  key's id. The key is re-checked against the key table on every request, so a revoked key logs out within
  `LEADSCOPE_KEY_CACHE_SECONDS`; logout ends the session for every copy of the cookie; sessions expire after
  `LEADSCOPE_CONSOLE_SESSION_SECONDS`.
- **CSRF.** Every POST carries the session's token (a hidden form field, or the X-CSRF-Token header htmx sends),
  compared in constant time; the login form has its own pre-session token (double submit). SameSite=Strict is a
  second line, not the only one.
- **The same scopes as the API.** Pages read through the API itself (an in-process ASGI call acting as the session's
  key, serving/security.py `acting_as`: the raw key is not kept anywhere): what a key may not call, its page does
  not show, and every check, validation and error of the API applies unchanged. Model cards and signal status
  read MLflow and the outbox directly, behind the `score` and `conversions` scopes.
- **No raw personal data on any page.** E-mail and phone search go through a hashed identity index (normalised and
  SHA-256 hashed as the ad platforms hash them); pages show ids, scores and features, never e-mails, phones or
  names. Exports are the API's hashed platform files.
- **No JavaScript needed to read.** Forms are plain GET/POST; htmx (pinned, served from /console/static, never a
  CDN) swaps fragments when it runs. Charts are HTML bars with their numbers as text.

Hand-written where no library fits: the CSRF check is a token comparison (starlette-csrf and fastapi-csrf-protect
want their own cookie schemes around JSON APIs; this is ten lines over the session we store anyway).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import URLSafeTimedSerializer

from leadscope.settings import Settings
from serving.console.sessions import SessionStore
from serving.keys import ApiKey
from serving.security import acting_as

HERE = Path(__file__).parent
log = logging.getLogger("leadscope.console")
COOKIE = "leadscope_session"
LOGIN_COOKIE = "leadscope_login"
HTMX = "htmx-2.0.11.min.js"  # htmx.org 2.0.11 from the npm registry (0BSD), unmodified
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", include_in_schema=False)  # every page module adds its routes here
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
    session_id: str
    csrf: str
    key: ApiKey

    def allows(self, scope: str) -> bool:
        return self.key.allows(scope)


class Sessions:
    """Server-side sessions (serving/console/sessions.py) and the login form's signed pre-session CSRF token
    (under the console secret: LEADSCOPE_CONSOLE_SECRET, else a random secret kept in the data directory, mode
    0600, shared by the workers of one machine)."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.console_secret.get_secret_value() if settings.console_secret else _local_secret(settings)
        self.login_signer = URLSafeTimedSerializer(secret, salt="leadscope-console-login")
        self.max_age = settings.console_session_seconds
        self.secure = settings.profile == "production"
        self.store = SessionStore(settings.database_url, settings.console_session_seconds)

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
    """The request's session if its id is an open one and its key still active (a revoked key's session ends)."""
    store = sessions_of(request).store
    session_id = request.cookies.get(COOKIE)
    opened = store.read(session_id)
    if opened is None:
        return None
    key = request.app.state.guard.keys.active(opened.key_id)
    if key is None:
        store.end(session_id)
        return None
    return Session(session_id, opened.csrf, key)


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
    """The API itself, in process, acting as the session's key: its scopes, rate, validation and errors apply
    unchanged."""
    transport = httpx.ASGITransport(app=request.app, client=("127.0.0.1", 0))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.internal", timeout=120) as c:
        with acting_as(s.key):
            return await c.request(method, path, **kw)


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


def query(**kw: object) -> str:
    return urlencode({k: v for k, v in kw.items() if v not in (None, "")})


templates.env.globals["query"] = query
