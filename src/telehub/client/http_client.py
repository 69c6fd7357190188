"""The Python SDKs of the REST API: ``Client`` (requests) and ``AsyncClient`` (aiohttp).

Both carry the calls of :mod:`telehub.client.http_calls`, so they share method
names, results (the server's own pydantic models) and errors (one tree,
:mod:`telehub.client.errors`). Pagination is an iterator; retries follow the
calls' RetryPolicy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import requests

from telehub.api.schemas import (
    DeviceCreated,
    DeviceOut,
    DeviceToken,
    IngestAccepted,
    LatestOut,
    SeriesOut,
)
from telehub.client import http_calls as calls
from telehub.client.errors import ConnectionFailed, api_error

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
Values = Mapping[str, Any] | list[Mapping[str, Any]]


class Client:
    """Blocking client on one requests.Session (connection reuse); a context manager."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: calls.RetryPolicy | None = None,
    ) -> None:
        self._base = url.rstrip("/")
        self._timeout = timeout
        self._retry = retry or calls.RetryPolicy()
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    # devices
    def create_device(
        self,
        device_id: str | None = None,
        *,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> DeviceCreated:
        """Register a device; the result carries its token (shown only this once)."""
        return self._do(calls.create_device(device_id, name, attributes))

    def get_device(self, device_id: str) -> DeviceOut:
        return self._do(calls.get_device(device_id))

    def list_devices(
        self, *, attributes: Mapping[str, str] | None = None, page_size: int = 100
    ) -> Iterator[DeviceOut]:
        """Every device (matching ``attributes``), fetched a page at a time."""
        after: str | None = None
        while True:
            page = self._do(calls.device_page(after, page_size, attributes))
            yield from page.items
            if page.next is None:
                return
            after = page.next

    def update_device(
        self,
        device_id: str,
        *,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> DeviceOut:
        return self._do(calls.update_device(device_id, name, attributes))

    def delete_device(self, device_id: str) -> None:
        self._do(calls.delete_device(device_id))

    def rotate_device_token(self, device_id: str) -> DeviceToken:
        return self._do(calls.rotate_device_token(device_id))

    # telemetry
    def send_telemetry(
        self, device_id: str, values: Values, *, ts: datetime | None = None
    ) -> IngestAccepted:
        """One set of values (at ``ts``, default: now) or a list of ``{"ts", "values"}``."""
        return self._do(calls.send_telemetry(device_id, values, ts))

    def query(
        self,
        device_id: str,
        *,
        metrics: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        interval: str | None = None,
        agg: str | None = None,
        limit: int | None = None,
    ) -> SeriesOut:
        return self._do(
            calls.query(
                device_id,
                metrics=metrics,
                start=start,
                end=end,
                interval=interval,
                agg=agg,
                limit=limit,
            )
        )

    def latest(self, device_id: str) -> LatestOut:
        return self._do(calls.latest(device_id))

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _do(self, call: calls.Call[T]) -> T:
        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = self._session.request(
                    call.method,
                    self._base + call.path,
                    params=call.params,
                    json=call.json,
                    timeout=self._timeout,
                )
            except requests.RequestException as exc:
                if not call.idempotent or attempt + 1 >= self._retry.attempts:
                    raise ConnectionFailed(f"{call.method} {call.path}: {exc}") from None
            else:
                if response.ok:
                    return call.read(response.json() if call.expect_body else None)
                error = api_error(
                    response.status_code,
                    _json(response),
                    calls.retry_after(response.headers.get("Retry-After")),
                )
                if attempt + 1 >= self._retry.attempts or not self._retry.retries_status(
                    call, response.status_code
                ):
                    raise error
                wait = error.retry_after
            time.sleep(self._retry.delay(attempt, wait))
            attempt += 1


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class AsyncClient:
    """The same calls on one aiohttp.ClientSession, ``concurrency`` at a time; ``async with``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        concurrency: int = 100,
        retry: calls.RetryPolicy | None = None,
    ) -> None:
        self._base = url.rstrip("/")
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

    async def list_devices(
        self, *, attributes: Mapping[str, str] | None = None, page_size: int = 100
    ) -> AsyncIterator[DeviceOut]:
        after: str | None = None
        while True:
            page = await self._do(calls.device_page(after, page_size, attributes))
            for device in page.items:
                yield device
            if page.next is None:
                return
            after = page.next

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
    ) -> SeriesOut:
        return await self._do(
            calls.query(
                device_id,
                metrics=metrics,
                start=start,
                end=end,
                interval=interval,
                agg=agg,
                limit=limit,
            )
        )

    async def latest(self, device_id: str) -> LatestOut:
        return await self._do(calls.latest(device_id))

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
                connector=aiohttp.TCPConnector(limit=self._concurrency),
            )
        return self._session

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
                        json=call.json,
                    ) as response,
                ):
                    if response.ok:
                        body = await response.json() if call.expect_body else None
                        return call.read(body)
                    error = api_error(
                        response.status,
                        await _json_async(response),
                        calls.retry_after(response.headers.get("Retry-After")),
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
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
