"""Secrets kept out of the log lines a request can produce.

A browser's EventSource cannot set headers, so the live feeds also take their
credential in the URL (``?token=``, ``?ticket=``), and uvicorn logs URLs: the
``"WebSocket /api/v1/ws?..." [accepted]`` line on ``uvicorn.error``, the
access line on ``uvicorn.access``; at debug level the websockets protocol logs
the handshake's headers (``Authorization``, ``Sec-WebSocket-Protocol``), and
at trace level ``uvicorn.asgi`` logs whole scopes. :class:`RedactSecrets`
rewrites those records before any handler sees them: the value of every query
parameter that carries a credential, bearer credentials, and anything shaped
like a telehub secret (``tha_``, ``thd_``, ``tht_``) become ``[redacted]``.

It sits on uvicorn's loggers, not on a handler, so it holds whatever log
configuration is in force; :func:`install` is called by ``create_app``, which
every way of running the API goes through (``telehub serve``, ``telehub api``,
each worker of ``telehub api --workers N``, a plain ``uvicorn --factory``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import unquote_plus

REDACTED = "[redacted]"

# uvicorn's loggers: request lines, handshake headers (debug), ASGI messages (trace).
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

# A query parameter whose name says it carries a credential (compared lower-cased,
# after percent-decoding, as the server itself decodes names).
_SECRET_NAME = re.compile(
    r"(?:[\w.-]*(?:token|ticket|secret|password|passwd|apikey|api_key|api-key))"
    r"|key|auth|authorization|sig|signature|code"
)
# A telehub credential anywhere: API token, device token, live ticket.
_SECRET_VALUE = re.compile(r"\bth[adt](?:_|%5[Ff])[\w%-]*")
# A query string: in a logged path or URL, or a scope's ``'query_string': b'…'`` (trace).
_QUERY = re.compile(r"(\?|'query_string': b')([^\s\"'#<>]*)")
# "Bearer <credentials>" (Authorization) and "bearer.<token>" (Sec-WebSocket-Protocol).
_BEARER = re.compile(r"(?i)\b(bearer[ .])[^\s,;\"']+")
_NUMBERS = (int, float)


def redact(text: str) -> str:
    """``text`` with every credential it holds replaced by ``[redacted]``."""
    if "?" in text or "query_string" in text:
        text = _QUERY.sub(_redact_query, text)
    text = _BEARER.sub(r"\g<1>" + REDACTED, text)
    return _SECRET_VALUE.sub(REDACTED, text)


def _redact_query(match: re.Match[str]) -> str:
    parts = []
    for part in match.group(2).split("&"):
        name, eq, value = part.partition("=")
        if eq and value and _secret_parameter(name, value):
            part = f"{name}={REDACTED}"
        parts.append(part)
    return match.group(1) + "&".join(parts)


def _secret_parameter(name: str, value: str) -> bool:
    return bool(
        _SECRET_NAME.fullmatch(unquote_plus(name).strip().lower())
        or _SECRET_VALUE.search(unquote_plus(value))
    )


class RedactSecrets(logging.Filter):
    """Rewrites a record's message, arguments and traceback text; never drops one.

    Arguments keep their places (uvicorn's access formatter unpacks them), and
    numbers are left alone (``%d`` needs them).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            cleaned = redact(text)
            if cleaned != text:
                record.exc_text = cleaned
        return True


def _redact_arg(arg: object) -> object:
    if arg is None or isinstance(arg, _NUMBERS):
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    cleaned = redact(text)
    return arg if cleaned == text else cleaned


def install() -> None:
    """Put one :class:`RedactSecrets` on each of uvicorn's loggers (again: no effect).

    A logger's filters survive ``logging.config.dictConfig`` (uvicorn applies
    its log configuration when a server is configured), which only adds to them.
    """
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
