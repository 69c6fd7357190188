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

from telehub.cli.exit_codes import Exit
from telehub.cli.remote import (
    CaFileOpt,
    Target,
    TokenOpt,
    UrlOpt,
    client_exit_code,
    describe,
    fail,
    require_token,
    target,
)
from telehub.cli.timefmt import iso_text
from telehub.client import tls
from telehub.client.errors import ApiError, LiveClosed
from telehub.client.sse import follow_events
from telehub.client.ws import tail_readings

JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON object per line")]

_console = Console(highlight=False, soft_wrap=True)
_errors = Console(stderr=True, highlight=False, soft_wrap=True)
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _unreachable(where: Target, exc: Exception) -> typer.Exit:
    """requests nests the cause three deep; the user wants 'connection refused'."""
    rejected = tls.rejected(exc, where.url)
    if rejected is not None:
        return fail(describe(rejected, where), Exit.UNREACHABLE)
    found = _ERRNO.search(str(exc))
    reason = found.group(1).strip() if found else exc
    return fail(f"cannot reach {where.url}: {reason}", Exit.UNREACHABLE)


def _refused(where: Target, exc: ApiError | LiveClosed) -> typer.Exit:
    """The hub said no: to the token (exit 4) or to the request (exit 1)."""
    if isinstance(exc, LiveClosed):  # 1008: the token, or its scope
        return fail(str(exc), Exit.AUTH)
    return fail(describe(exc, where), client_exit_code(exc))


def _where(url: str | None, token: str | None, ca_file: Path | None) -> tuple[Target, str]:
    """The server and token as every API command finds them (flags, env, `telehub login`)."""
    found = target(url, token, ca_file)
    return found, require_token(found)


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
        raise _refused(where, exc) from None
    except ConnectionClosed as exc:
        raise fail(f"the server closed the connection: {exc}", Exit.UNREACHABLE) from None
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
            _console.print(
                f"{iso_text(r['ts'])}  {r['device_id']:<20} {r['metric']:<20} {r['value']:g}",
                markup=False,
            )
    elif kind == "presence":
        state = "online" if message["online"] else "offline"
        _console.print(
            f"{iso_text(message['at'])}  {message['device_id']:<20} is {state}", markup=False
        )
    elif kind == "gap":
        lost = message.get("dropped")
        _errors.print(f"telehub: fell behind; {lost if lost is not None else 'some'} dropped")
    elif kind == "command_status":
        _console.print(
            f"{iso_text(message['at'])}  {message['device_id']:<20} command "
            f"{message['command_id']} {message['name']}: {message['status']}",
            markup=False,
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
                _console.print(
                    f"{event.id or '-':>8}  {event.event:<10} {event.data}", markup=False
                )
                sys.stdout.flush()
    except KeyboardInterrupt:
        return
    except ApiError as exc:
        raise _refused(where, exc) from None
    except requests.RequestException as exc:
        raise _unreachable(where, exc) from None
