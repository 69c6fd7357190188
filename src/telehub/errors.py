"""The one exception tree of telehub.

The core raises these; each adapter maps them once to its wire format
(HTTP problem+json, and later gRPC status codes and MQTT rejections)::

    TelehubError
    ├── ConfigError            a setting is wrong or a listener address is taken
    ├── InvalidInput           bad input; carries the pointer to each offending field
    │   ├── PayloadTooLarge    the body or batch exceeds a hard limit
    │   ├── UnknownDevice      a message names a device that does not exist (MQTT topics)
    │   ├── TopicNotAllowed    a device published outside its own MQTT topics
    │   ├── ClientIdNotAllowed an MQTT login used a client id that is not its device id
    │   ├── ProtocolViolation  an MQTT packet that breaks the protocol (its connection ends)
    │   ├── RetainedReplay     a broker's replay of a retained telemetry/state/ack message
    │   ├── UnknownCommand     an acknowledgement names no command of that device
    │   └── CommandClosed      an acknowledgement for a command already acked, failed or expired
    ├── AuthError
    │   ├── Unauthenticated    no credentials, or unknown ones
    │   └── Forbidden          valid credentials without the needed scope
    ├── NotFound               the addressed resource does not exist
    ├── Conflict               the resource already exists
    ├── Overloaded             ingest queue is full: retry after ``retry_after`` seconds
    │   └── ShuttingDown       the pipeline no longer accepts work
    ├── StorageUnavailable     the database failed to commit; nothing was acknowledged
    │   └── StorageTimeout     the database did not answer within its deadline
    └── BrokerUnavailable      the MQTT broker could not take a device's credentials
"""

from __future__ import annotations

from dataclasses import dataclass


class TelehubError(Exception):
    """Base of every error telehub raises on purpose."""


class ConfigError(TelehubError):
    """A setting is invalid or cannot be honoured (for example a port in use)."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending field: an RFC 6901 JSON pointer (``#/values/x``) or a parameter name."""

    detail: str
    pointer: str | None = None
    parameter: str | None = None


class InvalidInput(TelehubError):
    """Input that fails validation. ``reason`` is a stable machine-readable code."""

    reason = "invalid-input"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class PayloadTooLarge(InvalidInput):
    reason = "payload-too-large"


class UnknownDevice(InvalidInput):
    """Input addressed to a device that does not exist: for HTTP that is a 404, but an
    MQTT message names its device in its topic, so there it is bad input to record."""

    reason = "unknown-device"


class TopicNotAllowed(InvalidInput):
    """A device published to a topic its login may not use (another device's, say)."""

    reason = "topic-not-allowed"


class ClientIdNotAllowed(InvalidInput):
    """An MQTT client id is a session's identity: a device may only use its own id,
    so no login can take over another's session (the bridge's above all)."""

    reason = "client-id-not-allowed"


class ProtocolViolation(InvalidInput):
    reason = "protocol-violation"


class RetainedReplay(InvalidInput):
    """A retained telemetry, state or ack message that a broker replays on every
    (re)subscription: not new data, so it is not stored again."""

    reason = "retained-replay"


class UnknownCommand(InvalidInput):
    reason = "unknown-command"


class CommandClosed(InvalidInput):
    reason = "command-closed"


class AuthError(TelehubError):
    """Base for authentication and authorization failures."""


class Unauthenticated(AuthError):
    pass


class Forbidden(AuthError):
    pass


class NotFound(TelehubError):
    pass


class Conflict(TelehubError):
    pass


class Overloaded(TelehubError):
    """The ingest pipeline is full; nothing was accepted from this request."""

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ShuttingDown(Overloaded):
    pass


class StorageUnavailable(TelehubError):
    """The database could not commit; nothing from the request was acknowledged."""


class StorageTimeout(StorageUnavailable):
    """The database did not answer within its deadline (a silent network partition, say).

    A commit cut short may or may not have happened: its senders are not told
    it did, and the reading key makes their retry land once. Not worth retrying
    at once: the next try would wait out the same deadline.
    """


class BrokerUnavailable(TelehubError):
    """The broker could not store (or drop) a device's login; nothing was changed."""


# The stable code of each error, the same on every transport: the HTTP problem
# type, the WebSocket error code, the gRPC ErrorInfo reason. Most specific first.
_CODES: tuple[tuple[type[TelehubError], str], ...] = (
    (PayloadTooLarge, "payload-too-large"),
    (InvalidInput, "invalid-input"),
    (Unauthenticated, "unauthenticated"),
    (Forbidden, "forbidden"),
    (NotFound, "not-found"),
    (Conflict, "conflict"),
    (Overloaded, "overloaded"),
    (StorageUnavailable, "storage-unavailable"),
    (BrokerUnavailable, "broker-unavailable"),
)


def error_code(exc: TelehubError) -> str:
    """The stable machine-readable code of ``exc`` (``internal`` for anything unlisted)."""
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return "internal"
