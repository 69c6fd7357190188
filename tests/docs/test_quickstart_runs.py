"""The quick starts run as written against a real ``telehub serve`` (issue 17, "Keep it true").

The commands are read from README.md and docs/quickstart.md, run with bash from the
repository root as a reader types them, and held to what their comments promise: the exit
code (0 unless a comment says ``exit N``), the answer's status and each literal
``"key": value`` it shows, and, for curl, a JSON answer that is no problem document.

A test must change a few things a reader's machine does not; each is one rule below, said
once. A command no rule maps fails the test, naming it: a new line in a quick start needs
someone to decide how it is checked, rather than being skipped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.docs.doc_commands import DocCommand, section_commands
from tests.docs.doc_shell import ROOT, Background, Ran, Shell
from tests.services.server_process import Server, serve_env

PAGES = {
    "README.md": ["## A 60-second tour"],
    "docs/quickstart.md": ["## Try it with curl", "## The CLI and the simulator"],
}
# What a command may start with; anything else is a line no rule below has decided on.
KNOWN = {"curl", "telehub", ".venv/bin/telehub", "export", "."}
TOKEN_LINE = "bootstrap admin token"
COMMAND_SECONDS = 60.0  # a bound on a hung command, never a promise checked
WAIT_SECONDS = 30.0  # how long a background command is given to show what it should

TELEHUB = r"^(\S*/)?telehub "
TELEMETRY_POST = re.compile(r"^curl .*-X POST \S*/api/v1/devices/(?P<device>[^/\s]+)/telemetry\b")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh ``telehub serve`` per page: each page starts from a fresh clone (and both
    create greenhouse-1). Free ports and its own SQLite file, as the process tests do."""
    started = Server(serve_env(tmp_path), tmp_path / "server.log", ("serve",))
    try:
        started.wait_healthy()
        yield started
    finally:
        started.stop()


def bootstrap_token(server: Server) -> str:
    lines = server.wait_for_line(TOKEN_LINE)
    token = lines[next(i for i, line in enumerate(lines) if TOKEN_LINE in line) + 1].strip()
    assert token.startswith("tha_"), server.output()
    return token


def reader_env(home: Path) -> dict[str, str]:
    """A newcomer's shell: none of the caller's TELEHUB_* settings, telehub not on the PATH
    (the pages say how to get it there), and a HOME of its own for what ``telehub login``
    saves."""
    venv_bins = {str(ROOT / ".venv" / "bin"), str(Path(sys.executable).parent)}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TELEHUB_") and k not in {"VIRTUAL_ENV", "PYTHONPATH"}
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p not in venv_bins)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    home.mkdir()
    return env


class Reader:
    """Someone following one page top to bottom in one terminal, with the server running."""

    def __init__(self, shell: Shell, server: Server, admin: str, home: Path) -> None:
        self.shell = shell
        self.server = server
        self.admin = admin
        self.home = home
        self.answer: object = None  # the last command's JSON answer
        self.post: tuple[DocCommand, str] | None = None  # the last reading posted

    def rewrite(self, doc: DocCommand) -> str | None:
        """The command as the test runs it, or None for one the test must not run."""
        text = doc.command
        # `make run` is the server the reader keeps going; the test started it already,
        # on free ports and a database of its own.
        if text == "make run":
            return None
        # `make run` printed the bootstrap admin token; the reader pastes it.
        text = re.sub(r"^export (\w+)=tha_\.\.\.$", lambda m: f"export {m[1]}={self.admin}", text)
        # The device token is the `token` of the answer before, shown only there.
        if re.fullmatch(r"export \w+=thd_\.\.\.", text):
            token = self.answer.get("token") if isinstance(self.answer, dict) else None
            assert token, f"no answer with a token before: {doc}"
            text = text.replace("thd_...", str(token))
        # `make run` listens on port 8000; the test's server on a free port.
        text = re.sub(r"\b(localhost|127\.0\.0\.1):8000\b", rf"\1:{self.server.port}", text)
        # The simulator is checked for what it does (provisions sim-1 … and exits 0 with its
        # readings stored, which the query after it reads); 60 s of load on a shared
        # machine would show nothing more than 3 s do.
        if re.match(TELEHUB + "simulate ", text):
            text = re.sub(r"--duration 60\b", "--duration 3", text)
        if "..." in text or "…" in text:
            pytest.fail(f"no rule fills in this placeholder: {doc}")
        if text.split()[0] not in KNOWN:
            pytest.fail(f"no rule says how to run or check this command: {doc}")
        return text

    def extra_env(self) -> dict[str, str]:
        """A telehub command given no --url and no saved login goes to its built-in
        http://127.0.0.1:8000, where `make run` listens; here it is told the test server's
        address instead, until `telehub login` saved one (which the page then relies on)."""
        if (self.home / ".config" / "telehub" / "cli.toml").exists():
            return {}
        return {"TELEHUB_URL": self.server.base_url}

    def follow(self, doc: DocCommand) -> None:
        script = self.rewrite(doc)
        if script is None:
            return
        if re.match(TELEHUB + "tail ", script):
            self.watch_tail(doc, script)
        elif script.startswith("curl ") and " -N " in script:
            self.watch_events(doc, script)
        else:
            self.answer = self.run(doc, script)
            if TELEMETRY_POST.match(script):
                self.post = (doc, script)

    def run(self, doc: DocCommand, script: str) -> object:
        """Run one command and hold it to its comment; its JSON answer, if it has one."""
        curl = script.startswith("curl ")
        if curl:
            # A reader sees the status with -i or in a browser; the test needs it to check
            # the status a comment shows, so curl prints it on a last line of its own.
            script = "curl --write-out '\\n%{http_code}' " + script.removeprefix("curl ")
        ran = self.shell.run(script, extra=self.extra_env(), timeout=COMMAND_SECONDS)
        return check(doc, ran, curl=curl)

    def post_again(self, doc: DocCommand) -> dict[str, str]:
        """Post the page's reading again, as the page says to in another terminal; the
        reading's numbers as tail prints them: {metric: value}."""
        assert self.post is not None, f"no reading was posted before {doc}"
        posted, script = self.post
        self.run(posted, script)
        words = shlex.split(script)
        values = json.loads(words[words.index("-d") + 1])["values"]
        return {k: f"{v:g}" for k, v in values.items() if isinstance(v, int | float)}

    def watch_tail(self, doc: DocCommand, script: str) -> None:
        """`telehub tail` follows the WebSocket until stopped: posted readings must show."""
        posted = TELEMETRY_POST.match(self.post[1]) if self.post else None
        assert posted is not None, f"no reading was posted before {doc}"
        tail = self.shell.start(script, extra=self.extra_env())
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            # Posted until one shows: tail may not have subscribed when the first is posted.
            while time.monotonic() < deadline:
                values = self.post_again(doc)
                if wait_for(tail, lambda out, v=values: shows(out, posted["device"], v)):
                    assert tail.alive(), f"tail ended: {doc}\n{tail.describe()}"
                    return
            pytest.fail(f"the posted reading never showed: {doc}\n{tail.describe()}")
        finally:
            tail.stop()

    def watch_events(self, doc: DocCommand, script: str) -> None:
        """`curl -N` on /events: an SSE stream that opens and stays open through a post."""
        events = self.shell.start(script, extra=self.extra_env())
        try:
            opened = wait_for(events, lambda out: out.startswith("retry: "), WAIT_SECONDS)
            assert opened, f"no SSE stream opened: {doc}\n{events.describe()}"
            self.post_again(doc)
            assert events.alive(), f"the stream ended: {doc}\n{events.describe()}"
        finally:
            events.stop()
        for line in events.stdout().splitlines():
            assert not line or re.match(r"^(:|(retry|id|event|data): )", line), (
                f"not an SSE line {line!r}: {doc}\n{events.describe()}"
            )


def wait_for(background: Background, seen: Callable[[str], bool], seconds: float = 2.0) -> bool:
    """Whether ``seen(output)`` became true while the command ran, within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if seen(background.stdout()):
            return True
        if not background.alive():
            return seen(background.stdout())
        time.sleep(0.1)
    return False


def shows(output: str, device: str, values: dict[str, str]) -> bool:
    """Whether tail printed each metric of the reading on a line of the device."""
    lines = [line.split() for line in output.splitlines()]
    return all(any({device, k, v} <= set(line) for line in lines) for k, v in values.items())


def check(doc: DocCommand, ran: Ran, *, curl: bool) -> object:
    """Hold a finished command to its comment; its JSON answer (curl's always is one)."""
    promise = doc.promise()
    where = f"{doc}\n--- stdout\n{ran.stdout}\n--- stderr\n{ran.stderr}"
    assert ran.code == promise.exit_code, f"exit {ran.code}, not {promise.exit_code}: {where}"
    body, status = ran.stdout, ""
    if curl:
        body, _, status = ran.stdout.rpartition("\n")
    elif not (promise.fields or promise.prefixes):
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        pytest.fail(f"the answer is not JSON: {where}")
    if curl:
        problem = isinstance(answer, dict) and str(answer.get("type", "")).startswith(
            "urn:telehub:problem:"
        )
        assert not problem, f"a problem document: {where}"
        assert int(status) < 400, f"status {status}: {where}"
        if promise.status is not None:
            assert int(status) == promise.status, f"status {status}: {where}"
    for key, value in promise.fields.items():
        assert isinstance(answer, dict), f"the answer is no object: {where}"
        assert answer.get(key) == value, f"{key!r} is not {value!r}: {where}"
    for key, start in promise.prefixes.items():
        assert isinstance(answer, dict), f"the answer is no object: {where}"
        assert str(answer.get(key, "")).startswith(start), f"{key!r} is not {start}…: {where}"
    return answer


@pytest.mark.parametrize("page", list(PAGES))
def test_the_quick_start_runs_as_written(page: str, server: Server, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shell = Shell(reader_env(home), tmp_path)
    reader = Reader(shell, server, bootstrap_token(server), home)
    for heading in PAGES[page]:
        for doc in section_commands(ROOT / page, heading, page=page):
            reader.follow(doc)
