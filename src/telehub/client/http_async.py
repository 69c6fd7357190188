"""The asynchronous Python SDK of the REST API: ``AsyncClient``, on aiohttp.

The same calls as :class:`telehub.client.http_client.Client` (both carry
:mod:`telehub.client.http_calls`): same names, results and errors, with
concurrency bounded by a semaphore on one ClientSession.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from pydantic import ValidationError

from telehub.api.command_schemas import BatchOut, CommandOut
from telehub.api.info_schemas import HubInfo
from telehub.api.schemas import (
    DeviceCreated,
    DeviceOut,
    DeviceToken,
    IngestAccepted,
    LatestOut,
    RejectedOut,
    SeriesOut,
    TokenCreated,
    TokenOut,
)
from telehub.client import http_calls as calls
from telehub.client import live_async, tls
from telehub.client.errors import (
    ConnectionFailed,
    UnreadableAnswer,
    WaitTimedOut,
    api_error,
)
from telehub.client.http_client import DEFAULT_URL, Values
from telehub.client.sse import ServerSentEvent

T = TypeVar("T")


class AsyncClient:
    """The same calls on one aiohttp.ClientSession, ``concurrency`` at a time; ``async with``.

    ``verify`` is the sync Client's (requests' meaning): True, a CA bundle path, or
    False; see :mod:`telehub.client.tls`.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        concurrency: int = 100,
        retry: calls.RetryPolicy | None = None,
        verify: tls.Verify = True,
    ) -> None:
        self._base = url.rstrip("/")
        self._ssl = tls.aiohttp_ssl(verify)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry or calls.RetryPolicy()
        self._limit = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    async def create_device(
        self,
        device_id: str | None = None,
        *,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> DeviceCreated:
        return await self._do(calls.create_device(device_id, name, attributes))

    async def get_device(self, device_id: str) -> DeviceOut:
        return await self._do(calls.get_device(device_id))

    def list_devices(
        self, *, attributes: Mapping[str, str] | None = None, page_size: int = 100
    ) -> AsyncIterator[DeviceOut]:
        return self._pages(lambda after: calls.device_page(after, page_size, attributes))

    async def update_device(
        self,
        device_id: str,
        *,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> DeviceOut:
        return await self._do(calls.update_device(device_id, name, attributes))

    async def delete_device(self, device_id: str) -> None:
        await self._do(calls.delete_device(device_id))

    async def rotate_device_token(self, device_id: str) -> DeviceToken:
        return await self._do(calls.rotate_device_token(device_id))

    async def send_telemetry(
        self, device_id: str, values: Values, *, ts: datetime | None = None
    ) -> IngestAccepted:
        return await self._do(calls.send_telemetry(device_id, values, ts))

    async def query(
        self,
        device_id: str,
        *,
        metrics: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        interval: str | None = None,
        agg: str | None = None,
        limit: int | None = None,
        order: str | None = None,
        cursor: str | None = None,
    ) -> SeriesOut:
        """One page: at most ``limit`` points (default 1000) per metric. A metric with
        more is named in ``truncated``, and ``next`` is the cursor to the rest: pass it
        as ``cursor`` (the query goes with it), or use ``query_pages``/``query_all``."""
        return await self._do(
            calls.query(
                device_id,
                metrics=metrics,
                start=start,
                end=end,
                interval=interval,
                agg=agg,
                limit=limit,
                order=order,
                cursor=cursor,
            )
        )

    async def query_pages(
        self,
        device_id: str,
        *,
        metrics: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        interval: str | None = None,
        agg: str | None = None,
        limit: int | None = None,
        order: str | None = None,
    ) -> AsyncIterator[SeriesOut]:
        """Every page of the query, following ``next`` to the end (``limit``: page size)."""
        page = await self.query(
            device_id,
            metrics=metrics,
            start=start,
            end=end,
            interval=interval,
            agg=agg,
            limit=limit,
            order=order,
        )
        yield page
        while page.next is not None:
            page = await self.query(device_id, limit=limit, cursor=page.next)
            yield page

    async def query_all(
        self,
        device_id: str,
        *,
        metrics: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        interval: str | None = None,
        agg: str | None = None,
        order: str | None = None,
        page_size: int | None = None,
    ) -> SeriesOut:
        """The whole answer, every page of it merged (``next`` None, nothing truncated)."""
        pages = self.query_pages(
            device_id,
            metrics=metrics,
            start=start,
            end=end,
            interval=interval,
            agg=agg,
            limit=page_size,
            order=order,
        )
        whole = calls.merged([page async for page in pages])
        assert whole is not None  # there is always a first page
        return whole

    async def delete_state(self, device_id: str, key: str) -> None:
        """Remove one state key of the device; NotFound if there is none of that name."""
        await self._do(calls.delete_state(device_id, key))

    async def latest(self, device_id: str) -> LatestOut:
        return await self._do(calls.latest(device_id))

    async def info(self) -> HubInfo:
        """Where the hub's MQTT broker and gRPC server are, its version and input limits."""
        return await self._do(calls.info())

    async def send_command(
        self,
        device_id: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        ttl_s: int | None = None,
    ) -> CommandOut:
        return await self._do(calls.send_command(device_id, name, params, ttl_s))

    async def get_command(self, device_id: str, command_id: str) -> CommandOut:
        return await self._do(calls.get_command(device_id, command_id))

    def list_commands(self, device_id: str, *, page_size: int = 100) -> AsyncIterator[CommandOut]:
        return self._pages(lambda before: calls.command_page(device_id, before, page_size))

    async def wait_command(
        self, device_id: str, command_id: str, *, within: float = 60.0
    ) -> CommandOut:
        deadline = time.monotonic() + within
        for delay in calls.Waiting().delays():
            command = await self.get_command(device_id, command_id)
            if not command.status.open:
                return command
            if time.monotonic() + delay > deadline:
                raise WaitTimedOut(f"command {command_id} still {command.status.value}")
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def bulk_command(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        devices: list[str] | None = None,
        attributes: Mapping[str, str] | None = None,
        ttl_s: int | None = None,
    ) -> BatchOut:
        return await self._do(
            calls.bulk_command(
                devices=devices, attributes=attributes, name=name, params=params, ttl_s=ttl_s
            )
        )

    async def get_batch(self, batch_id: str) -> BatchOut:
        return await self._do(calls.get_batch(batch_id))

    def rejected(
        self, *, device_id: str | None = None, page_size: int = 100
    ) -> AsyncIterator[RejectedOut]:
        return self._pages(lambda before: calls.rejected(before, page_size, device_id))

    async def create_token(self, name: str, *, scope: str = "read") -> TokenCreated:
        return await self._do(calls.create_token(name, scope))

    async def list_tokens(self) -> list[TokenOut]:
        return await self._do(calls.list_tokens())

    async def delete_token(self, token_id: str) -> None:
        await self._do(calls.delete_token(token_id))

    def tail(
        self, *, devices: list[str] | None = None, metrics: list[str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Readings (and presence, command status, gaps) as committed, over the WebSocket."""
        return live_async.tail(self._open(), self._base, devices=devices, metrics=metrics)

    def events(
        self, *, types: list[str] | None = None, last_event_id: str | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        """The SSE event feed for ever, resuming with Last-Event-ID after a dropped connection."""
        return live_async.events(self._open(), self._base, types=types, last_event_id=last_event_id)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._concurrency, ssl=self._ssl),
            )
        return self._session

    async def _pages(
        self, page_at: Callable[[Any], calls.Call[calls.Paged[T]]]
    ) -> AsyncIterator[T]:
        """The items of every page, from the first (cursor None) until one has no next."""
        cursor = None
        while True:
            page = await self._do(page_at(cursor))
            for item in page.items:
                yield item
            if page.next is None:
                return
            cursor = page.next

    async def _do(self, call: calls.Call[T]) -> T:
        session = self._open()
        attempt = 0
        while True:
            wait: float | None = None
            try:
                async with (
                    self._limit,
                    session.request(
                        call.method,
                        self._base + call.path,
                        params=_aiohttp_params(call.params),
                        data=call.content(),
                        headers=call.headers(),
                    ) as response,
                ):
                    if response.ok:
                        try:
                            body = await response.json() if call.expect_body else None
                            return call.read(body)
                        except (ValueError, aiohttp.ContentTypeError, ValidationError) as exc:
                            raise UnreadableAnswer(
                                response.status, f"the server's answer could not be read: {exc}"
                            ) from None
                    error = api_error(
                        response.status,
                        await _json_async(response),
                        calls.retry_after(response.headers.get("Retry-After")),
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                rejected = tls.rejected(exc, f"{call.method} {call.path}")
                if rejected is not None:
                    raise rejected from None
                if not call.idempotent or attempt + 1 >= self._retry.attempts:
                    raise ConnectionFailed(f"{call.method} {call.path}: {exc}") from None
            else:
                if attempt + 1 >= self._retry.attempts or not self._retry.retries_status(
                    call, error.status
                ):
                    raise error
                wait = error.retry_after
            await asyncio.sleep(self._retry.delay(attempt, wait))
            attempt += 1


def _aiohttp_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """aiohttp wants repeated keys as pairs (``metric=a&metric=b``), and strings."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, str(item)))
    return pairs


async def _json_async(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None
