"""What the API-backed commands share: where the server is, the token, output, and errors.

The server and the token come from ``--url``/``--token``, else ``TELEHUB_URL``/
``TELEHUB_TOKEN``, else the file ``telehub login`` wrote (config_file.py). A saved
token goes only to the URL it was saved with, never to another server. An https://
hub with a self-signed certificate (or its own CA) needs that certificate:
``--ca-file`` or ``TELEHUB_CA_FILE``.

Every failure is one line on stderr and an exit code of telehub.cli.exit_codes:
1 the hub refused the request or it did not happen, 2 bad flags or configuration,
3 no hub at that URL, 4 no token or one the hub refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import ssl
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import requests
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from telehub.cli.config_file import ConfigFileError, config_path, load_login
from telehub.cli.exit_codes import Exit
from telehub.cli.timefmt import iso_time
from telehub.client.errors import (
    ApiError,
    CertificateRejected,
    ClientError,
    ConnectionFailed,
    Forbidden,
    Unauthorized,
    UnreadableAnswer,
)
from telehub.client.http_client import DEFAULT_URL, Client
from telehub.client.tls import ssl_context
from telehub.domain.rules import DEVICE_ID_RULE, is_device_id

if TYPE_CHECKING:
    from telehub.cli.config_file import Login

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="TELEHUB_URL",
        help=f"the telehub API; else the `telehub login` one, else {DEFAULT_URL}",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TELEHUB_TOKEN",
        help="an API token; else the one saved by `telehub login` for this URL",
        show_default=False,
    ),
]
CaFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="TELEHUB_CA_FILE",
        help="an https:// hub's CA certificate (PEM), or its self-signed certificate; "
        "default: the trusted CAs",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document")]


def _device_id(value: str | None) -> str | None:
    # Checked here because the id becomes part of a URL path: "../tokens/x" must not
    # reach another endpoint; a new id is checked too, so a typo fails without a server.
    if value is not None and not is_device_id(value):
        raise typer.BadParameter(DEVICE_ID_RULE)
    return value


DeviceArg = Annotated[str, typer.Argument(metavar="DEVICE", help="device id", callback=_device_id)]
NewDeviceArg = Annotated[
    str | None,
    typer.Argument(metavar="[DEVICE]", help="the id; generated when omitted", callback=_device_id),
]

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    token: str | None
    verify: bool | str = True  # the clients' verify=: True, or the --ca-file path
    other_login: str | None = None  # the URL `telehub login` saved, when it is another one


def fail(message: str, code: Exit) -> typer.Exit:
    """Print ``telehub: message`` as one line on stderr; raise the returned Exit."""
    typer.echo("telehub: " + " ".join(message.split()), err=True)
    return typer.Exit(code)


def check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise fail(f"the URL must start with http:// or https:// (got {url!r})", Exit.USAGE)
    return url.rstrip("/")


def target(url: str | None, token: str | None, ca_file: Path | None = None) -> Target:
    """Flags and environment (typer merged those), then the saved login, then defaults."""
    saved: Login | None = None
    # Flags that give all there is to give need no file (a CA matters for https only).
    if url is None or token is None or (ca_file is None and url.startswith("https://")):
        try:
            saved = load_login(config_path())
        except ConfigFileError as exc:
            raise fail(str(exc), Exit.USAGE) from None
    resolved = check_url(url or (saved.url if saved else DEFAULT_URL))
    other_login = None
    if saved is not None and saved.url.rstrip("/") == resolved:
        # The saved token and CA belong to the saved server only.
        token = saved.token if token is None else token
        if ca_file is None and saved.ca_file is not None:
            ca_file = Path(saved.ca_file)
    elif saved is not None:
        other_login = saved.url.rstrip("/")
    return Target(
        url=resolved, token=token or None, verify=_ca_file(ca_file), other_login=other_login
    )


def require_token(where: Target) -> str:
    """The token, or exit 4 saying where one comes from (naming a login saved for
    another URL: the likeliest reason there is none)."""
    if where.token is not None:
        return where.token
    hint = f"give --token, set TELEHUB_TOKEN or run `telehub login --url {where.url}`"
    if where.other_login is None:
        message = f"no token for {where.url}: {hint}"
    else:
        message = (
            f"no token for {where.url}; a login is saved for {where.other_login}, not for "
            f"{where.url}: use --url {where.other_login}, or {hint}"
        )
    raise fail(message, Exit.AUTH)


def _ca_file(path: Path | None) -> bool | str:
    """The --ca-file as the clients' verify=, read now: a bad one is one line, exit 2."""
    if path is None:
        return True
    try:
        ssl_context(path)
    except FileNotFoundError:
        raise fail(f"--ca-file {path}: no such file", Exit.USAGE) from None
    except ssl.SSLError:
        raise fail(f"--ca-file {path}: not a PEM certificate", Exit.USAGE) from None
    except OSError as exc:
        raise fail(f"--ca-file {path}: cannot read it: {exc.strerror}", Exit.USAGE) from None
    return str(path)


@contextlib.contextmanager
def connect(url: str | None, token: str | None, ca_file: Path | None = None) -> Iterator[Client]:
    """A Client for the resolved server (with a token: exit 4 without one); any client
    error inside becomes one line and its exit code (:func:`exit_code`)."""
    where = target(url, token, ca_file)
    secret = require_token(where)
    try:
        with Client(where.url, token=secret, verify=where.verify) as client:
            yield client
    except UnreadableAnswer as exc:
        raise fail(
            f"{where.url} did not answer like a telehub API: {exc.detail}", Exit.UNREACHABLE
        ) from None
    except ClientError as exc:
        raise fail(describe(exc, where), client_exit_code(exc)) from None
    except (requests.RequestException, ValidationError) as exc:
        # An answer the SDK could not read: something else listens at that URL.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(
            f"{where.url} did not answer like a telehub API: {first}", Exit.UNREACHABLE
        ) from None


def client_exit_code(exc: ClientError) -> Exit:
    """4 for a token the hub refused, 3 for no hub there, 1 for any other refusal."""
    if isinstance(exc, Unauthorized | Forbidden):
        return Exit.AUTH
    if isinstance(exc, ConnectionFailed | UnreadableAnswer):
        return Exit.UNREACHABLE
    return Exit.FAILED


def describe(exc: ClientError, where: Target) -> str:
    """``404 not-found: device 'x' does not exist``, with the fields a 422 names."""
    if isinstance(exc, ApiError):
        head = f"{exc.status} {exc.problem_type}" if exc.problem_type else str(exc.status)
        text = f"{head}: {exc.detail}"
        fields = "; ".join(_field(e) for e in exc.errors)
        if fields:
            text += f" ({fields})"
        if exc.retry_after is not None:
            text += f"; retry after {exc.retry_after:g} s"
        if exc.status == 401 and where.token is None:
            text += "; give --token, set TELEHUB_TOKEN or run `telehub login`"
        return text
    if isinstance(exc, CertificateRejected):
        text = f"{where.url}: its TLS certificate was not accepted ({exc.reason})"
        if where.verify is True:
            return text + (
                "; if the hub has a self-signed certificate or its own CA, give that "
                "certificate with --ca-file or TELEHUB_CA_FILE"
            )
        return text + f" (checked against --ca-file {where.verify})"
    if isinstance(exc, ConnectionFailed):
        found = _ERRNO.search(str(exc))
        if found:
            reason = found.group(1).strip()
        elif "timed out" in str(exc).lower():
            reason = "timed out"
        else:
            reason = str(exc)
        return f"cannot reach {where.url}: {reason}"
    return str(exc)


def _field(error: Mapping[str, Any]) -> str:
    pointer = error.get("pointer")
    where = (
        pointer.removeprefix("#/") or "body"
        if isinstance(pointer, str)
        else str(error.get("parameter") or "request")
    )
    return f"{where}: {error.get('detail', 'invalid')}"


# Parsing flags.


def pairs(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    """``k=v`` items as a dict of strings (repeated keys: the last wins)."""
    found: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint=flag)
        found[key] = value
    return found


def typed_pairs(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``k=v`` items with typed values: see :func:`value_of`."""
    return {key: value_of(value) for key, value in pairs(items, flag).items()}


def value_of(text: str) -> Any:
    """``21.5`` is a number; ``true``, ``false``, ``null``, JSON objects and lists are
    those; ``"42"`` (quoted) is the string 42; anything else is the text itself."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return value


def timestamp(text: str) -> datetime:
    """ISO 8601; without an offset it is UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def time_option(flag: str, help: str) -> Any:
    """A ``--flag ISO`` option read by :func:`timestamp`."""
    return typer.Option(flag, parser=timestamp, metavar="ISO", help=help, show_default=False)


# Output.


def print_json(data: BaseModel | Sequence[BaseModel] | Mapping[str, Any]) -> None:
    if isinstance(data, BaseModel):
        body: Any = data.model_dump(mode="json")
    elif isinstance(data, Mapping):
        body = dict(data)
    else:
        body = [item.model_dump(mode="json") for item in data]
    sys.stdout.write(orjson.dumps(body).decode() + "\n")


def table(*columns: str) -> Table:
    return Table(*columns, highlight=False)


def add_row(into: Table, *cells: str) -> None:
    """Cells as plain text: a device named "[bold]" must not become markup."""
    into.add_row(*(Text(cell) for cell in cells))


def print_table(rendered: Table) -> None:
    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped into grep or a file: whole lines (not cells folded at 80 columns), no boxes.
        console = Console(highlight=False, width=max(console.width, 400))
        rendered.box = None
    console.print(rendered)


def when(moment: datetime | None, missing: str = "never") -> str:
    """A moment as every table shows it (telehub.cli.timefmt), or ``missing``."""
    return missing if moment is None else iso_time(moment)


def shown(value: Any) -> str:
    """A value for a table cell: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)
