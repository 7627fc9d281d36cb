"""The console's login and logout: a session opened for a valid key, ended server-side."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature
from starlette.concurrency import run_in_threadpool

from serving.console.base import (
    COOKIE,
    LOGIN_COOKIE,
    PAGES,
    Auth,
    Refused,
    page,
    router,
    sessions_of,
)
from serving.console.leads import _warm_identity

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
    sessions.store.end(request.cookies.get(COOKIE))  # a new id at every login: the old one is dead
    cookie, _ = await run_in_threadpool(sessions.store.open, key.key_id)
    first = next((p for p, _, scope in PAGES if key.allows(scope)), "/console/leads")
    response = RedirectResponse(first, status_code=303)
    sessions.set_cookie(response, COOKIE, cookie, max_age=sessions.max_age)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(request: Request, s: Auth) -> Response:
    await run_in_threadpool(sessions_of(request).store.end, s.session_id)  # every copy of the cookie ends here
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response
