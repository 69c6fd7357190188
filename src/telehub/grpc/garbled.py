"""Requests whose bytes are no message of the method's type: INVALID_ARGUMENT, not a traceback.

grpcio decodes a request before any servicer (or interceptor code) sees it, and
a decode error there ends the call UNKNOWN with an ERROR traceback: anyone,
token or not, could fill the log with them. So every method is registered with
a :func:`lenient` deserializer instead (the generated ``add_*_to_server`` code
stays as it is: the observer swaps the deserializer when it wraps the
handler). A request that does not parse arrives as a :class:`Garbled` value,
which the observer answers INVALID_ARGUMENT like any bad input; a Publish
stream ends with the summary of what it committed, as for any other error.
The log gets one warning per :data:`WARN_EVERY` seconds at most, counting the
ones left out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from telehub.errors import InvalidInput

WARN_EVERY = 60.0


class Garbled:
    """Stands in for a request that did not parse (why, in ``reason``)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def error(self) -> InvalidInput:
        return InvalidInput(f"the request is not a valid protobuf message: {self.reason}")


def lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``parse``, answering a :class:`Garbled` value where it raises DecodeError.

    On a message that parses this costs one more function call (tens of
    nanoseconds; decoding a batch takes microseconds).
    """

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return Garbled(str(exc))

    return deserialize


class Throttled:
    """One warning per ``every`` seconds at most; the next one says how many were left out."""

    def __init__(
        self,
        logger: logging.Logger,
        every: float = WARN_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every = every
        self._clock = clock
        self._quiet_until = -math.inf
        self._left_out = 0

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        if now < self._quiet_until:
            self._left_out += 1
            return
        self._quiet_until = now + self._every
        if self._left_out:
            message += " (%d more like it since the last warning were not logged)"
            args = (*args, self._left_out)
            self._left_out = 0
        self._log.warning(message, *args)
