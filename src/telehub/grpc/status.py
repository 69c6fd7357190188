"""Core errors as gRPC statuses: the one mapping, with rich details (google.rpc).

Every status carries an ``ErrorInfo`` whose reason is the error's stable code
(the same as the HTTP problem type); bad input adds ``BadRequest`` field
violations, and push-back adds ``RetryInfo``. Extra messages (a Publish
stream's summary of what was committed) ride along in the details too.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from telehub.errors import (
    AuthError,
    BrokerUnavailable,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    Overloaded,
    ShuttingDown,
    StorageUnavailable,
    TelehubError,
    Unauthenticated,
    error_code,
)

DOMAIN = "telehub"

# Most specific first.
_CODES: tuple[tuple[type[TelehubError], int], ...] = (  # google.rpc.Code values
    (InvalidInput, code_pb2.INVALID_ARGUMENT),
    (Unauthenticated, code_pb2.UNAUTHENTICATED),
    (Forbidden, code_pb2.PERMISSION_DENIED),
    (AuthError, code_pb2.PERMISSION_DENIED),
    (NotFound, code_pb2.NOT_FOUND),
    (Conflict, code_pb2.ALREADY_EXISTS),
    (ShuttingDown, code_pb2.UNAVAILABLE),
    (Overloaded, code_pb2.RESOURCE_EXHAUSTED),
    (StorageUnavailable, code_pb2.UNAVAILABLE),
    (BrokerUnavailable, code_pb2.UNAVAILABLE),
)


def status_code(exc: TelehubError) -> int:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return int(code_pb2.INTERNAL)


def field_path(error: FieldError) -> str:
    """``#/readings/3/value`` → ``readings[3].value`` (the protobuf field path form)."""
    if error.pointer is None:
        return error.parameter or ""
    path = ""
    for part in error.pointer.removeprefix("#").split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path


def to_status(exc: TelehubError, *extra: Message) -> status_pb2.Status:
    detail = exc.detail if isinstance(exc, InvalidInput) else str(exc)
    details: list[Message] = [error_details_pb2.ErrorInfo(reason=error_code(exc), domain=DOMAIN)]
    if isinstance(exc, InvalidInput):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=field_path(e), description=e.detail
                    )
                    for e in exc.errors
                ]
            )
        )
    if isinstance(exc, Overloaded):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(exc.retry_after * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    details.extend(extra)
    packed = []
    for message in details:
        wrapped = any_pb2.Any()
        wrapped.Pack(message)
        packed.append(wrapped)
    return status_pb2.Status(code=status_code(exc), message=detail, details=packed)


async def abort(
    context: grpc.aio.ServicerContext[object, object], status: status_pb2.Status
) -> None:
    """End the call with ``status``; never returns (grpc raises AbortError)."""
    rich = rpc_status.to_status(status)
    await context.abort(rich.code, rich.details, rich.trailing_metadata)
