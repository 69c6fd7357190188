"""A reader's terminal for the docs' commands: bash in the repository root, whose
environment (what ``export`` and ``. .venv/bin/activate`` change) carries on to the next
command, as it does for a person typing them one after another."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started (bash and what it runs), SIGKILL if it stays."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Background:
    """A command left running, as in another terminal; its output goes to files."""

    def __init__(self, script: str, env: dict[str, str], directory: Path) -> None:
        self._stdout = directory / "background.out"
        self._stderr = directory / "background.err"
        with self._stdout.open("wb") as out, self._stderr.open("wb") as err:
            self.process = subprocess.Popen(
                ["bash", "-c", script],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def stdout(self) -> str:
        return self._stdout.read_text(errors="replace")

    def describe(self) -> str:
        return f"--- stdout\n{self.stdout()}\n--- stderr\n{self._stderr.read_text()}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        _stop(self.process)


class Shell:
    """bash from the repository root, one command at a time, with the environment each
    command leaves behind (read with ``env -0`` after it) handed to the next."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.env = dict(env)
        self._directory = directory

    def run(self, script: str, *, extra: dict[str, str], timeout: float) -> Ran:
        """Run ``script``; ``extra`` is added to its environment for this command only."""
        state = self._directory / "env"
        state.unlink(missing_ok=True)
        wrapped = f"{script}\n__status=$?\nenv -0 > {shlex.quote(str(state))}\nexit $__status\n"
        process = subprocess.Popen(
            ["bash", "-c", wrapped],
            cwd=ROOT,
            env=self.env | extra,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise AssertionError(f"still running after {timeout} s: {script}") from None
        if state.exists():
            left = dict(item.split("=", 1) for item in state.read_text().split("\0") if item)
            self.env = {k: v for k, v in left.items() if extra.get(k) != v and k != "_"}
        return Ran(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def start(self, script: str, *, extra: dict[str, str]) -> Background:
        return Background(script, self.env | extra, self._directory)
