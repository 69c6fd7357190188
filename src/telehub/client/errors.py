"""What the clients raise, one tree for the sync and async SDKs and the live feeds::

ClientError
├── ApiError              the server answered with a problem (status, type, detail)
│   ├── ValidationFailed  400/422: ``errors`` names each offending field
│   ├── Unauthorized      401: no token, or an unknown one
│   ├── Forbidden         403: the token lacks the scope
│   ├── NotFound          404
│   ├── Conflict          409
│   ├── PayloadTooLarge   413
│   └── Overloaded        429/503: ``retry_after`` seconds (after the client's own retries)
├── ConnectionFailed      no answer at all (refused, reset, timed out), after retries
│   └── CertificateRejected  HTTPS: the server's certificate failed verification (not retried)
└── LiveClosed            the server closed a live stream for good (1008)
"""

from __future__ import annotations

from typing import Any

PROBLEM_PREFIX = "urn:telehub:problem:"


class ClientError(Exception):
    """Base of every error the telehub clients raise."""


class ApiError(ClientError):
    """An HTTP problem+json answer (or any non-success status)."""

    def __init__(
        self,
        status: int,
        detail: str,
        problem_type: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.problem_type = problem_type
        self.errors = errors or []
        self.retry_after = retry_after


class ValidationFailed(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class PayloadTooLarge(ApiError):
    pass


class Overloaded(ApiError):
    pass


class UnreadableAnswer(ApiError):
    """The answer could not be read: probably something other than telehub listens there."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: Overloaded,
    503: Overloaded,
}


def api_error(status: int, body: Any, retry_after: float | None = None) -> ApiError:
    """The typed error for an answer: its class by status, its fields from problem+json."""
    problem = body if isinstance(body, dict) else {}
    kind = problem.get("type")
    slug = kind.removeprefix(PROBLEM_PREFIX) if isinstance(kind, str) else None
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    errors = problem.get("errors") if isinstance(problem.get("errors"), list) else None
    cls = _BY_STATUS.get(status, ApiError)
    return cls(status, detail, slug, errors=errors, retry_after=retry_after)


class ConnectionFailed(ClientError):
    """The server could not be reached (or did not answer in time), after retries."""


class CertificateRejected(ConnectionFailed):
    """The server's TLS certificate did not verify (unknown CA, wrong host name, expired).

    Not retried: it would fail the same way. A hub with a self-signed certificate
    needs the client's ``verify=`` set to that certificate (see telehub.client.tls).
    ``reason`` is OpenSSL's, e.g. ``self-signed certificate``.
    """

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(
            f"{what}: the server's TLS certificate was not accepted ({reason}); if the hub "
            "has a self-signed certificate or its own CA, give that certificate as verify=PATH"
        )
        self.reason = reason


class WaitTimedOut(ClientError):
    """The awaited command had not finished in time (it may still finish)."""


class LiveClosed(ClientError):
    """The server closed the WebSocket with a code that retrying will not fix (1008)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by the server ({code}): {reason or 'no reason given'}")
        self.code = code
        self.reason = reason
