"""One error shape for every 4xx/5xx: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _body(code: str, message: str, field: str | None = None, details: list | None = None) -> dict:
    err: dict = {"code": code, "message": message, "field": field}
    if details:
        err["details"] = details
    return {"error": err}


def _field(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


def _short(e: dict) -> str:
    """Validation messages without echoing the input (it may carry personal data)."""
    return f"{_field(tuple(e.get('loc', ()))) or 'body'}: {e.get('msg', 'invalid')}"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        if first.get("type") == "json_invalid":
            return JSONResponse(status_code=422, content=_body("invalid_json", "request body is not valid JSON"))
        code = "invalid_request"
        details = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in errs[:20]]
        return JSONResponse(
            status_code=422, content=_body(code, _short(first), _field(tuple(first.get("loc", ()))), details)
        )

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=_body(exc.code, exc.message, exc.field))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            status_code=exc.status_code, content=_body(code, str(exc.detail)), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=500, content=_body("internal_error", "unexpected server error"))
