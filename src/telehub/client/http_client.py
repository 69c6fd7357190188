"""The synchronous Python SDK of the REST API: ``Client``, on requests.

It and :class:`telehub.client.http_async.AsyncClient` carry the calls of
:mod:`telehub.client.http_calls`, so they share method names, results (the
server's own pydantic models) and errors (one tree, :mod:`telehub.client.errors`).
Pagination is an iterator; retries follow the calls' RetryPolicy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import requests
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
from telehub.client import tls
from telehub.client.errors import (
    ConnectionFailed,
    UnreadableAnswer,
    WaitTimedOut,
    api_error,
)
from telehub.client.sse import ServerSentEvent, follow_events
from telehub.client.ws import tail_readings

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
Values = Mapping[str, Any] | list[Mapping[str, Any]]


class Client:
    """Blocking client on one requests.Session (connection reuse); a context manager.

    ``verify`` checks an https:// server's certificate as requests does: True
    against the trusted CAs, a path against that CA bundle only (a self-signed
    hub's own certificate, say), False not at all; see :mod:`telehub.client.tls`.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: calls.RetryPolicy | None = None,
        verify: tls.Verify = True,
    ) -> None:
        self._base = url.rstrip("/")
        self._verify = tls.requests_verify(verify)
        self._timeout = timeout
        self._retry = retry or calls.RetryPolicy()
        self._token = token or ""
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
        return self._pages(lambda after: calls.device_page(after, page_size, attributes))

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
        order: str | None = None,
        cursor: str | None = None,
    ) -> SeriesOut:
        """One page: at most ``limit`` points (default 1000) per metric. A metric with
        more is named in ``truncated``, and ``next`` is the cursor to the rest: pass it
        as ``cursor`` (the query goes with it), or use ``query_pages``/``query_all``."""
        return self._do(
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

    def query_pages(
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
    ) -> Iterator[SeriesOut]:
        """Every page of the query, following ``next`` to the end (``limit``: page size)."""
        page = self.query(
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
            page = self.query(device_id, limit=limit, cursor=page.next)
            yield page

    def query_all(
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
        whole = calls.merged(pages)
        assert whole is not None  # there is always a first page
        return whole

    def delete_state(self, device_id: str, key: str) -> None:
        """Remove one state key of the device; NotFound if there is none of that name."""
        self._do(calls.delete_state(device_id, key))

    def latest(self, device_id: str) -> LatestOut:
        return self._do(calls.latest(device_id))

    def info(self) -> HubInfo:
        """Where the hub's MQTT broker and gRPC server are, its version and input limits."""
        return self._do(calls.info())

    # commands
    def send_command(
        self,
        device_id: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        ttl_s: int | None = None,
    ) -> CommandOut:
        """Queue a command (pending); it goes out over MQTT as soon as the device can take it."""
        return self._do(calls.send_command(device_id, name, params, ttl_s))

    def get_command(self, device_id: str, command_id: str) -> CommandOut:
        return self._do(calls.get_command(device_id, command_id))

    def list_commands(self, device_id: str, *, page_size: int = 100) -> Iterator[CommandOut]:
        """The device's commands, newest first, a page at a time."""
        return self._pages(lambda before: calls.command_page(device_id, before, page_size))

    def wait_command(self, device_id: str, command_id: str, *, within: float = 60.0) -> CommandOut:
        """Poll until the command is acked, failed or expired; WaitTimedOut after ``within`` s."""
        deadline = time.monotonic() + within
        for delay in calls.Waiting().delays():
            command = self.get_command(device_id, command_id)
            if not command.status.open:
                return command
            if time.monotonic() + delay > deadline:
                raise WaitTimedOut(f"command {command_id} still {command.status.value}")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def bulk_command(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        devices: list[str] | None = None,
        attributes: Mapping[str, str] | None = None,
        ttl_s: int | None = None,
    ) -> BatchOut:
        """One command per device (listed, or matched by attributes) under one batch id."""
        return self._do(
            calls.bulk_command(
                devices=devices, attributes=attributes, name=name, params=params, ttl_s=ttl_s
            )
        )

    def get_batch(self, batch_id: str) -> BatchOut:
        return self._do(calls.get_batch(batch_id))

    # rejected inputs and tokens
    def rejected(
        self, *, device_id: str | None = None, page_size: int = 100
    ) -> Iterator[RejectedOut]:
        """Refused inputs, newest first, a page at a time."""
        return self._pages(lambda before: calls.rejected(before, page_size, device_id))

    def create_token(self, name: str, *, scope: str = "read") -> TokenCreated:
        return self._do(calls.create_token(name, scope))

    def list_tokens(self) -> list[TokenOut]:
        return self._do(calls.list_tokens())

    def delete_token(self, token_id: str) -> None:
        self._do(calls.delete_token(token_id))

    # live
    def tail(
        self, *, devices: list[str] | None = None, metrics: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Readings (and presence, command status, gaps) as committed, over the WebSocket."""
        return tail_readings(
            self._base,
            token=self._token,
            devices=devices,
            metrics=metrics,
            verify=self._verify,
        )

    def events(
        self, *, types: list[str] | None = None, last_event_id: str | None = None
    ) -> Iterator[ServerSentEvent]:
        """The SSE event feed for ever, resuming with Last-Event-ID after a dropped connection."""
        return follow_events(
            self._base,
            token=self._token,
            types=types,
            last_event_id=last_event_id,
            verify=self._verify,
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _pages(self, page_at: Callable[[Any], calls.Call[calls.Paged[T]]]) -> Iterator[T]:
        """The items of every page, from the first (cursor None) until one has no next."""
        cursor = None
        while True:
            page = self._do(page_at(cursor))
            yield from page.items
            if page.next is None:
                return
            cursor = page.next

    def _do(self, call: calls.Call[T]) -> T:
        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = self._session.request(
                    call.method,
                    self._base + call.path,
                    params=call.params,
                    data=call.content(),
                    headers=call.headers(),
                    timeout=self._timeout,
                    # Per request: a Session's own verify loses to REQUESTS_CA_BUNDLE.
                    verify=self._verify,
                )
            except requests.RequestException as exc:
                rejected = tls.rejected(exc, f"{call.method} {call.path}")
                if rejected is not None:
                    raise rejected from None
                if not call.idempotent or attempt + 1 >= self._retry.attempts:
                    raise ConnectionFailed(f"{call.method} {call.path}: {exc}") from None
            else:
                if response.ok:
                    return _read(call, response.status_code, response.json)
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


def _read(call: calls.Call[T], status: int, body: Callable[[], Any]) -> T:
    """The answer as the call's result; an unreadable one is an ApiError, not a crash."""
    try:
        return call.read(body() if call.expect_body else None)
    except (ValueError, ValidationError) as exc:
        raise UnreadableAnswer(status, f"the server's answer could not be read: {exc}") from None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
