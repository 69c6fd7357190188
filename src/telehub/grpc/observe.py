"""One interceptor around every RPC: core errors become statuses here, and calls are counted.

Servicers raise :class:`TelehubError` like any core caller; this is the one
place that turns them into a status (see :mod:`telehub.grpc.status`). It also
counts calls by method and final code, and the messages of streams, and
decodes requests leniently: bytes that are no message of the method's type
are bad input, not a servicer error (see :mod:`telehub.grpc.garbled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from telehub.core.metrics import Metrics
from telehub.errors import TelehubError
from telehub.grpc.garbled import Garbled, Throttled, lenient
from telehub.grpc.status import abort, to_status

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # generic only in the type stubs
    Context = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]


class Observer(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._garbled = Throttled(log)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return _Call(self._metrics, handler_call_details.method, self._garbled).wrap(handler)


class _Call:
    def __init__(self, metrics: Metrics, method: str, garbled: Throttled) -> None:
        self.metrics = metrics
        self.method = method
        self.garbled = garbled

    def wrap(self, handler: Handler) -> Handler:
        kinds = {
            "unary_unary": grpc.unary_unary_rpc_method_handler,
            "unary_stream": grpc.unary_stream_rpc_method_handler,
            "stream_unary": grpc.stream_unary_rpc_method_handler,
            "stream_stream": grpc.stream_stream_rpc_method_handler,
        }
        for attribute, make in kinds.items():
            behaviour = getattr(handler, attribute)
            if behaviour is None:
                continue
            streams_in = attribute.startswith("stream_")
            if inspect.isasyncgenfunction(behaviour):
                wrapped: Any = self._generator(behaviour, streams_in)
            else:
                wrapped = self._coroutine(behaviour, streams_in)
            parse = handler.request_deserializer
            return make(
                wrapped,
                request_deserializer=None if parse is None else lenient(parse),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _coroutine(self, behaviour: Any, streams_in: bool) -> Any:
        async def call(request: Any, context: Context) -> Any:
            async with self._observed(context):
                return await behaviour(self._incoming(request, streams_in, context), context)
            raise AssertionError("unreachable: the call returned or raised")

        return call

    def _generator(self, behaviour: Any, streams_in: bool) -> Any:
        """A server stream, written with ``context.write`` rather than yielded.

        A client that hangs up while its write is pending makes that write fail
        before grpc marks the call cancelled; written here, the failure is
        turned into the cancel it is, instead of a servicer error logged with
        a traceback.
        """
        sent = self.metrics.grpc_stream_messages.labels(self.method, "sent")

        async def call(request: Any, context: Context) -> None:
            async with self._observed(context):
                responses = behaviour(self._incoming(request, streams_in, context), context)
                async with contextlib.aclosing(responses):
                    async for response in responses:
                        try:
                            await context.write(response)
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:
                            raise asyncio.CancelledError("the client hung up") from exc
                        sent.inc()

        return call

    @contextlib.asynccontextmanager
    async def _observed(self, context: Context) -> AsyncIterator[None]:
        """Counts the call; a core error raised inside ends it with its status."""
        self.metrics.grpc_in_flight.inc()
        failure: BaseException | None = None
        try:
            yield
        except TelehubError as exc:
            failure = exc
            await abort(context, to_status(exc))
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._finished(context, failure)

    def _incoming(self, request: Any, streams_in: bool, context: Context) -> Any:
        """The request, or the stream of them counted; one that did not parse raises."""
        if not streams_in:
            if isinstance(request, Garbled):
                raise self._refuse(request, context)
            return request
        received = self.metrics.grpc_stream_messages.labels(self.method, "received")

        async def counted() -> AsyncIterator[Any]:
            async for message in request:
                received.inc()
                if isinstance(message, Garbled):
                    raise self._refuse(message, context)
                yield message

        return counted()

    def _refuse(self, request: Garbled, context: Context) -> TelehubError:
        self.garbled.warning(
            "gRPC %s from %s: %s; answered INVALID_ARGUMENT",
            self.method,
            context.peer(),
            request.reason,
        )
        return request.error()

    def _finished(self, context: Context, failure: BaseException | None) -> None:
        self.metrics.grpc_in_flight.dec()
        if isinstance(failure, asyncio.CancelledError):
            code = "CANCELLED"
        elif failure is None or isinstance(failure, TelehubError | grpc.aio.AbortError):
            found = context.code()
            code = found.name if isinstance(found, grpc.StatusCode) else "OK"
        else:
            code = "UNKNOWN"
            log.error("gRPC %s failed", self.method, exc_info=failure)
        self.metrics.grpc_calls.labels(self.method, code).inc()
