"""What every command shares: settings from flags, and errors as one clean line."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from telehub.cli.exit_codes import Exit
from telehub.config import Settings, load_settings
from telehub.errors import (
    AuthError,
    BrokerUnavailable,
    ConfigError,
    StorageUnavailable,
    TelehubError,
)

T = TypeVar("T")


def settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the flags that were given on top."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        # One line per problem, without pydantic's echo of the input (it holds secrets).
        problems = "; ".join(_problem(error) for error in exc.errors())
        typer.echo(f"telehub: invalid configuration: {problems}", err=True)
        raise typer.Exit(Exit.USAGE) from None
    except FileNotFoundError as exc:
        typer.echo(f"telehub: invalid configuration: {exc}", err=True)
        raise typer.Exit(Exit.USAGE) from None


def _problem(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a TelehubError becomes one line and its exit code."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coro)
    except (TelehubError, ExceptionGroup) as exc:
        error = _first_telehub_error(exc)
        if error is None:
            raise
        typer.echo(f"telehub: {error}", err=True)
        raise typer.Exit(exit_code(error)) from None


def exit_code(error: TelehubError) -> Exit:
    """A server command's refusal as the exit code every command uses."""
    if isinstance(error, ConfigError):
        return Exit.USAGE
    if isinstance(error, StorageUnavailable | BrokerUnavailable):
        return Exit.UNREACHABLE
    if isinstance(error, AuthError):
        return Exit.AUTH
    return Exit.FAILED


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or Ctrl-C: a long-running command waits on it, then stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn[standard]): a faster event loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _first_telehub_error(exc: BaseException) -> TelehubError | None:
    """Errors raised inside a TaskGroup arrive wrapped; the user wants the one that matters."""
    if isinstance(exc, TelehubError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_telehub_error(inner)
            if found is not None:
                return found
    return None


# Libraries whose INFO lines describe their internals, not telehub's behaviour.
_QUIET_LOGGERS = ("amqtt", "transitions", "gmqtt", "telehub.mqtt.gmqtt")


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def out(text: str) -> None:
    sys.stdout.write(text + "\n")
