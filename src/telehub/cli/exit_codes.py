"""The exit status of every ``telehub`` command (docs/interfaces/cli.md, "Exit codes").

Every failure is one line on stderr, ``telehub: ...``, and one of these codes.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    # Asked and answered, but it did not happen: the hub refused the request (404,
    # 409, 422, 429, ...), a command failed, expired or was not acked within --within,
    # a prompt was declined; for the server commands, telehub's own refusal
    # (an unknown token id, say).
    FAILED = 1
    # How it was called: flags or arguments (typer's own usage errors), the
    # configuration (TELEHUB_* settings, the login file, --ca-file, a listener port
    # already taken, a schema that needs `telehub db upgrade`).
    USAGE = 2
    # No hub to talk to at that URL: nothing listens, the name does not resolve, it
    # timed out, its TLS certificate was not accepted, or what answered is not telehub.
    # For the server commands: the database or the MQTT broker could not be reached.
    UNREACHABLE = 3
    # The hub refused the token: none was given (or saved for that URL), it is
    # unknown or revoked (401), or its scope does not allow this (403).
    AUTH = 4
