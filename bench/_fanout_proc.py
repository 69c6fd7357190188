"""Worker processes of the fan-out benchmark and the pipes that drive them.

Every client and load generator is its own process (spawned, so nothing of the
orchestrator leaks in), running an event loop that waits for one command at a
time on a pipe and answers it. A worker exits when told to or when the pipe
breaks (the orchestrator died), so none outlives a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _fanout_stats import raise_nofile

Command = tuple[Any, ...]
Handler = Callable[[Command], Awaitable[Any]]

_SPAWN = multiprocessing.get_context("spawn")


def serve_commands(
    conn: multiprocessing.connection.Connection, make: Callable[[], Handler]
) -> None:
    """The body of a worker: answer commands on ``conn`` until ``("exit",)`` or EOF."""
    import uvloop

    # Ctrl-C reaches the whole process group: the orchestrator alone handles it and
    # tells its workers to exit (or they see the pipe break).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_nofile()

    async def main() -> None:
        handler = make()
        loop = asyncio.get_running_loop()
        while True:
            try:
                command: Command = await loop.run_in_executor(None, conn.recv)
            except (EOFError, OSError):
                command = ("exit",)
            if command[0] == "ping":  # the pool waits for this: the worker is up
                conn.send("pong")
                continue
            try:
                answer = await handler(command)
            except Exception as exc:  # reported to the orchestrator, which raises it
                answer = WorkerError(f"{command[0]}: {exc!r}")
            if command[0] == "exit":
                return
            conn.send(answer)

    uvloop.run(main())


class WorkerError(Exception):
    """A worker's command failed; the message says which and why."""


class Pool:
    """``count`` processes running ``target(conn)``; ``call`` sends them all one command."""

    def __init__(self, name: str, target: Callable[..., None], count: int) -> None:
        self.name = name
        self._conns: list[multiprocessing.connection.Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        for k in range(count):
            mine, theirs = _SPAWN.Pipe()
            proc = _SPAWN.Process(target=target, args=(theirs,), name=f"{name}-{k}", daemon=True)
            proc.start()
            theirs.close()
            self._conns.append(mine)
            self._procs.append(proc)
        # Started means imported and listening: nothing measured overlaps their start-up.
        try:
            self.call("ping", timeout=60.0)
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def __len__(self) -> int:
        return len(self._procs)

    def call(self, *command: Any, timeout: float = 120.0) -> list[Any]:
        """The same command to every worker; their answers, in order."""
        return self.call_each([command] * len(self._conns), timeout=timeout)

    def call_each(self, commands: list[Command], *, timeout: float = 120.0) -> list[Any]:
        """One command per worker (``commands[k]`` to worker k), run concurrently."""
        for conn, command in zip(self._conns, commands, strict=True):
            conn.send(command)
        answers = []
        deadline = time.monotonic() + timeout
        for conn, proc in zip(self._conns, self._procs, strict=True):
            while not conn.poll(0.2):
                if not proc.is_alive():
                    raise WorkerError(f"{proc.name} died (exit code {proc.exitcode})")
                if time.monotonic() > deadline:
                    raise WorkerError(f"{proc.name}: no answer to {commands[0][0]!r} in {timeout}s")
            answer = conn.recv()
            if isinstance(answer, WorkerError):
                raise WorkerError(f"{proc.name}: {answer}")
            answers.append(answer)
        return answers

    def close(self) -> None:
        """Ask every worker to exit; kill whoever has not after a few seconds."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(("exit",))
        deadline = time.monotonic() + 5.0
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
