"""RFC 9457 problem+json: the one error contract of the HTTP API."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from telehub.domain.telemetry import excerpt, loc_to_pointer
from telehub.domain.typed_batch import MAX_FIELD_ERRORS
from telehub.errors import (
    BrokerUnavailable,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    StorageUnavailable,
    TelehubError,
    Unauthenticated,
    error_code,
)

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:telehub:problem:"
# Statuses that say "try again later": each answer carries a Retry-After.
RETRY_STATUSES = frozenset({429, 503})
# Seconds, for those that know no better (the database or broker is unavailable, not
# ready): about a connect deadline, so a retry meets a hub that has tried again too.
RETRY_AFTER_SECONDS = 5

# error class → (status, title); the type slug is the error's code (telehub.errors).
_MAPPING: list[tuple[type[TelehubError], int, str]] = [
    (PayloadTooLarge, 413, "Payload too large"),
    (InvalidInput, 422, "Invalid input"),
    (Unauthenticated, 401, "Authentication required"),
    (Forbidden, 403, "Not allowed"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (Overloaded, 503, "Ingest is overloaded"),
    (StorageUnavailable, 503, "Storage unavailable"),
    (BrokerUnavailable, 503, "MQTT broker unavailable"),
]

_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = excerpt(instance)
    if errors:
        # Errors may quote the input (a key, a path): only an excerpt of it, and so many.
        body["errors"] = [
            {
                k: excerpt(v)
                for k, v in (
                    ("detail", e.detail),
                    ("pointer", e.pointer),
                    ("parameter", e.parameter),
                )
                if v is not None
            }
            for e in errors[:MAX_FIELD_ERRORS]
        ]
    if status in RETRY_STATUSES and not _has_retry_after(headers):
        headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _has_retry_after(headers: Mapping[str, str] | None) -> bool:
    return headers is not None and any(name.lower() == "retry-after" for name in headers)


def slug_of(exc: TelehubError) -> str:
    """The stable type slug of an error: the same code on HTTP and the live WebSocket."""
    return error_code(exc)


def from_error(exc: TelehubError, request: Request) -> JSONResponse:
    return problem_of(exc, instance=request.url.path)


def problem_of(exc: TelehubError, *, instance: str | None) -> JSONResponse:
    """The problem+json answer to a core error (``instance``: the request path)."""
    for cls, status, title in _MAPPING:
        if isinstance(exc, cls):
            slug = error_code(exc)
            headers: dict[str, str] = {}
            if isinstance(exc, Overloaded):
                headers["Retry-After"] = str(max(1, round(exc.retry_after)))
            if isinstance(exc, Unauthenticated):
                headers["WWW-Authenticate"] = "Bearer"
            errors = exc.errors if isinstance(exc, InvalidInput) else None
            detail = excerpt(exc.detail) if isinstance(exc, InvalidInput) else str(exc)
            return problem(
                status,
                slug,
                title,
                detail,
                errors=errors,
                headers=headers,
                instance=instance,
            )
    log.error("unmapped telehub error", exc_info=exc)
    return problem(500, "internal", "Internal error", "unexpected error")


def request_validation_errors(exc: RequestValidationError) -> list[FieldError]:
    """FastAPI's locations (``body``/``query``/``path``) as pointers or parameter names."""
    out: list[FieldError] = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if p not in ("message", "batch", "[key]")]
        where = loc[0] if loc else "body"
        msg = excerpt(str(err["msg"]).removeprefix("Value error, "))
        if where == "body":
            out.append(FieldError(detail=msg, pointer=loc_to_pointer(loc[1:])))
        else:
            name = str(loc[1]) if len(loc) > 1 else str(where)
            out.append(FieldError(detail=msg, parameter=name))
    return out


def install(app: FastAPI) -> None:
    """Map every error to problem+json once, for the whole app."""

    async def on_telehub_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TelehubError)
        return from_error(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        error = InvalidInput("the request is invalid", request_validation_errors(exc))
        recorder = getattr(request.state, "record_rejected", None)
        if recorder is not None:
            await recorder(error)
        return from_error(error, request)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug, title = _STATUS_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
        return problem(
            exc.status_code,
            slug,
            title,
            str(exc.detail),
            headers=exc.headers,
            instance=request.url.path,
        )

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal", "Internal error", "unexpected error; see server log")

    app.add_exception_handler(TelehubError, on_telehub_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
