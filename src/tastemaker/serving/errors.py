"""Errors → HTTP: the one place tastemaker's exceptions become status codes and JSON bodies.

Every error body is ``{"error": code, "detail": what was wrong and what to do}``. Unexpected
exceptions become 500 with a short reference (the traceback goes to the log, not to the client).
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tastemaker.errors import ArtifactError, ConfigError, DataError, NotFittedError, TastemakerError
from tastemaker.serving.service import NotFound, Unavailable
from tastemaker.store.base import StoreError, StoreUnavailable

log = logging.getLogger(__name__)


class AuthError(TastemakerError):
    """A write without a valid API key: `status` 401 (missing) or 403 (wrong / writes disabled)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class PayloadTooLarge(StarletteHTTPException):
    """A request body over the configured limit (raised while the body streams in)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_detail(limit))


def too_large_detail(limit: int, size: int | None = None) -> str:
    got = f"the request body is {size:,} bytes; " if size is not None else "the request body exceeds the limit; "
    return (f"{got}the limit is {limit:,} bytes (max_body_bytes in the serve settings): send fewer events per "
            "batch or a smaller payload")


# (exception class, status, error code) — first match wins, so subclasses come first
STATUS: list[tuple[type[BaseException], int, str]] = [
    (AuthError, 401, "unauthorized"),
    (NotFound, 404, "not_found"),
    (StoreUnavailable, 503, "store_unavailable"),
    (Unavailable, 503, "unavailable"),
    (StoreError, 503, "store_error"),
    (NotFittedError, 503, "model_not_ready"),
    (ArtifactError, 503, "model_not_ready"),
    (DataError, 422, "invalid_request"),
    (ConfigError, 400, "bad_request"),
    (TastemakerError, 400, "bad_request"),
]


def status_of(exc: BaseException) -> tuple[int, str]:
    for cls, status, code in STATUS:
        if isinstance(exc, cls):
            if isinstance(exc, AuthError):
                return exc.status, "unauthorized" if exc.status == 401 else "forbidden"
            return status, code
    return 500, "internal"


def error_response(status: int, code: str, detail, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""

    @app.exception_handler(TastemakerError)
    async def _ours(request: Request, exc: TastemakerError) -> JSONResponse:
        status, code = status_of(exc)
        headers = {"Retry-After": "1"} if status == 503 else None
        if status == 401:
            headers = {"WWW-Authenticate": "ApiKey header=X-API-Key"}
        return error_response(status, code, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = []
        for err in exc.errors():
            entry = {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type")}
            if "input" in err and len(repr(err["input"])) <= 200:
                entry["input"] = err["input"] if isinstance(err["input"], (str, int, float, bool, type(None))) \
                    else repr(err["input"])
            detail.append(entry)
        return error_response(422, "invalid_request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 400: "bad_request"}
        detail = exc.detail
        if exc.status_code == 400 and "parsing the body" in str(detail):
            detail = "the body is not valid JSON: send Content-Type: application/json with a JSON object"
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), detail,
                              getattr(exc, "headers", None))

    @app.exception_handler(OSError)
    async def _os(request: Request, exc: OSError) -> JSONResponse:
        log.error("I/O error serving %s: %s", request.url.path, exc)
        return error_response(503, "unavailable", f"{exc}; the request was not stored, retry later",
                              {"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s serving %s %s", ref, request.method, request.url.path)
        return error_response(500, "internal", f"an unexpected error occurred (reference {ref}); it has been logged")
