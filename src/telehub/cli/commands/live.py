"""``telehub tail`` (live readings over WebSocket) and ``telehub events`` (the SSE feed).

Both talk to a running API, like the other API commands: server and token from
``--url``/``--token``, ``TELEHUB_URL``/``TELEHUB_TOKEN``, or ``telehub login``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import requests
import typer
from rich.console import Console
from websockets.exceptions import ConnectionClosed

from telehub.cli.remote import CaFileOpt, Target, TokenOpt, UrlOpt, describe, target
from telehub.client import tls
from telehub.client.errors import ApiError, LiveClosed
from telehub.client.sse import follow_events
from telehub.client.ws import tail_readings

JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON object per line")]

_console = Console(highlight=False, soft_wrap=True)
_errors = Console(stderr=True, highlight=False, soft_wrap=True)
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _fail(message: str) -> typer.Exit:
    _errors.print(f"telehub: {message}", markup=False)
    return typer.Exit(1)


def _unreachable(where: Target, exc: Exception) -> typer.Exit:
    """requests nests the cause three deep; the user wants 'connection refused'."""
    rejected = tls.rejected(exc, where.url)
    if rejected is not None:
        return _fail(describe(rejected, where))
    found = _ERRNO.search(str(exc))
    return _fail(f"cannot reach {where.url}: {found.group(1).strip() if found else exc}")


def _where(url: str | None, token: str | None, ca_file: Path | None) -> tuple[Target, str]:
    """The server and token as every API command finds them (flags, env, `telehub login`)."""
    found = target(url, token, ca_file)
    if found.token is None:
        raise _fail("a token is required: --token, TELEHUB_TOKEN or `telehub login`")
    return found, found.token


def tail(
    token: TokenOpt = None,
    url: UrlOpt = None,
    ca_file: CaFileOpt = None,
    device: Annotated[
        list[str] | None, typer.Option("--device", "-d", help="only this device (repeatable)")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="only this metric (repeatable)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print readings (and presence changes) as they are committed, until Ctrl-C."""
    where, token = _where(url, token, ca_file)
    try:
        for message in tail_readings(
            where.url, token=token, devices=device, metrics=metric, verify=where.verify
        ):
            _show_live(message, as_json=as_json)
    except KeyboardInterrupt:
        return
    except (LiveClosed, ApiError) as exc:
        raise _fail(str(exc)) from None
    except ConnectionClosed as exc:
        raise _fail(f"the server closed the connection: {exc}") from None
    except OSError as exc:
        raise _unreachable(where, exc) from None


def _show_live(message: dict[str, Any], *, as_json: bool) -> None:
    _print_live(message, as_json=as_json)
    # Flushed per message: a tail piped into grep or a file must not wait for a
    # full buffer.
    sys.stdout.flush()


def _print_live(message: dict[str, Any], *, as_json: bool) -> None:
    kind = message.get("type")
    if as_json:
        if kind == "readings":
            for reading in message["readings"]:
                sys.stdout.write(orjson.dumps(reading).decode() + "\n")
        else:
            sys.stdout.write(orjson.dumps(message).decode() + "\n")
        return
    if kind == "readings":
        for r in message["readings"]:
            _console.print(f"{r['ts']}  {r['device_id']:<20} {r['metric']:<20} {r['value']:g}")
    elif kind == "presence":
        state = "online" if message["online"] else "offline"
        _console.print(f"{message['at']}  {message['device_id']:<20} is {state}")
    elif kind == "gap":
        lost = message.get("dropped")
        _errors.print(f"telehub: fell behind; {lost if lost is not None else 'some'} dropped")
    elif kind == "command_status":
        _console.print(
            f"{message['at']}  {message['device_id']:<20} command {message['command_id']} "
            f"{message['name']}: {message['status']}"
        )


def events(
    token: TokenOpt = None,
    url: UrlOpt = None,
    ca_file: CaFileOpt = None,
    types: Annotated[
        str | None,
        typer.Option("--types", help="comma-separated: alerts, commands, jobs, presence"),
    ] = None,
    last_event_id: Annotated[
        str | None, typer.Option("--last-event-id", help="start after this event id")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow the event feed (SSE), resuming by itself after a dropped connection."""
    where, token = _where(url, token, ca_file)

    def reconnecting(problem: Exception) -> None:
        _errors.print(f"telehub: connection lost ({problem}); resuming")

    try:
        for event in follow_events(
            where.url,
            token=token,
            types=types.split(",") if types else None,
            last_event_id=last_event_id,
            on_reconnect=reconnecting,
            verify=where.verify,
        ):
            if as_json:
                line = {"id": event.id, "event": event.event, "data": event.json()}
                sys.stdout.write(orjson.dumps(line).decode() + "\n")
                sys.stdout.flush()
            else:
                _console.print(f"{event.id or '-':>8}  {event.event:<10} {event.data}")
                sys.stdout.flush()
    except KeyboardInterrupt:
        return
    except ApiError as exc:
        raise _fail(str(exc)) from None
    except requests.RequestException as exc:
        raise _unreachable(where, exc) from None
