"""One error shape for every 4xx/5xx: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from serving.online import FeatureStoreUnavailable


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.headers = status, code, message, field, headers
        self.details = details


class ErrorDetail(BaseModel):
    field: str | None
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_request, unauthenticated.")
    message: str = Field(description="What is wrong, naming the field; never echoes personal data.")
    field: str | None = Field(None, description="Dotted path of the offending field, when there is one.")
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    error: ErrorInfo


def documented(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` entries with the shared error body, so clients (and schemathesis) know every status."""
    text = {
        400: "Malformed HTTP request (e.g. a Content-Length that is not a number).",
        401: "Missing, unknown or revoked API key.",
        403: "The key lacks the scope this route needs.",
        404: "Not found.",
        413: "Request body too large.",
        422: "Invalid request: the message names the field.",
        429: "Rate limit of this key exceeded; see Retry-After.",
        503: "Models or features not loaded yet; see /readyz.",
        504: "No response started within the request timeout.",
    }
    return {s: {"model": ErrorBody, "description": text.get(s, "Error.")} for s in statuses}


def body(code: str, message: str, field: str | None = None, details: list | None = None) -> dict:
    err: dict = {"code": code, "message": message, "field": field}
    if details:
        err["details"] = details
    return {"error": err}


# Tags of discriminated unions in list items (POST /v1/events' record types): pydantic puts the tag in the error's
# location (events.1.event.channel); the field the client wrote is events.1.channel. A tag is only ever between
# an item's index and a field inside it: a last element (a conversion's events.0.stage) is the field itself.
UNION_TAGS = frozenset({"event", "order", "stage", "customer"})


def _is_tag(loc: tuple, i: int) -> bool:
    return 0 < i < len(loc) - 1 and isinstance(loc[i - 1], int) and loc[i] in UNION_TAGS


def _field(loc: tuple) -> str | None:
    parts = [str(p) for i, p in enumerate(loc) if p != "body" and not _is_tag(loc, i)]
    return ".".join(parts) or None


def _short(e: dict) -> str:
    """Validation messages without echoing the input (it may carry personal data)."""
    return f"{_field(tuple(e.get('loc', ()))) or 'body'}: {e.get('msg', 'invalid')}"


def api_error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content=body(exc.code, exc.message, exc.field), headers=exc.headers)


def features_unavailable_response(exc: FeatureStoreUnavailable) -> JSONResponse:
    return JSONResponse(
        status_code=503, content=body("features_unavailable", f"the feature store cannot answer: {exc}; see /readyz")
    )


def allowed_methods(request: Request, routers: list[APIRouter]) -> list[str]:
    """Every method some route of this path takes (Starlette's 405 names only the first route's: GET and POST of
    one path are two routes). Read from the routers the app includes (their public `routes`)."""
    methods: set[str] = set()
    scope = {**request.scope, "method": "__none__"}
    for route in (r for router in routers for r in router.routes):
        if route.matches(scope)[0] != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    methods.add("OPTIONS")
    return sorted(methods)


def install(app: FastAPI, routers: list[APIRouter]) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        if first.get("type") == "json_invalid":
            return JSONResponse(status_code=422, content=body("invalid_json", "request body is not valid JSON"))
        code = "invalid_request"
        details = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in errs[:20]]
        return JSONResponse(
            status_code=422, content=body(code, _short(first), _field(tuple(first.get("loc", ()))), details)
        )

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return api_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            allow = {"Allow": ", ".join(allowed_methods(request, routers))}
            if request.method == "OPTIONS":  # the path exists: OPTIONS says what it takes
                return Response(status_code=204, headers=allow)
            return JSONResponse(status_code=405, content=body("method_not_allowed", str(exc.detail)), headers=allow)
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body json.loads cannot read at all (not UTF-8, a 5,000-digit number)
            return JSONResponse(status_code=422, content=body("invalid_json", "request body is not valid JSON"))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            status_code=exc.status_code, content=body(code, str(exc.detail)), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(FeatureStoreUnavailable)
    async def features_unavailable(_: Request, exc: FeatureStoreUnavailable) -> JSONResponse:
        return features_unavailable_response(exc)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=500, content=body("internal_error", "unexpected server error"))
