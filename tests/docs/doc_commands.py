"""Shell commands as a Markdown page shows them, and what their comments promise.

Read from the page itself, never copied into a test: a test that runs them then fails
when the page and the code part ways.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

_FENCE = "```"
# A comment that shows an answer: `# → 202 {"accepted": 2, …}`.
_ANSWER = re.compile(r"→\s*(?P<status>\d{3})?\s*(?P<body>\{.*\})?")
# One literal `"key": value` of a shown answer; `...`/`…` placeholders match nothing.
_PAIR = re.compile(r'"(?P<key>[^"]+)":\s*(?P<value>"[^"]*"|-?\d+(?:\.\d+)?|true|false|null)')
_EXIT = re.compile(r"\bexit (\d+)\b")
_PLACEHOLDERS = ("...", "…")


@dataclass(frozen=True)
class Promise:
    """What a command's comment says it does: exits with ``exit_code``, answers with
    ``status`` (when shown) and a JSON object holding ``fields``; a shown string that
    ends in a placeholder (``"thd_..."``) promises only its start (``prefixes``)."""

    exit_code: int = 0
    status: int | None = None
    fields: dict[str, object] = field(default_factory=dict)
    prefixes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DocCommand:
    """One command of a page: continuation lines joined, its comment apart (the one on
    its line and any comment-only lines right after it, which the pages use for answers)."""

    page: str
    line: int
    command: str
    comment: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.command}"

    def promise(self) -> Promise:
        exit_code = _EXIT.search(self.comment)
        answer = _ANSWER.search(self.comment)
        status = answer.group("status") if answer else None
        body = (answer.group("body") if answer else None) or ""
        fields: dict[str, object] = {}
        prefixes: dict[str, str] = {}
        for pair in _PAIR.finditer(body):
            value = json.loads(pair["value"])
            if isinstance(value, str) and value.endswith(_PLACEHOLDERS):
                prefixes[pair["key"]] = value.rstrip(".…")
            else:
                fields[pair["key"]] = value
        return Promise(
            exit_code=int(exit_code.group(1)) if exit_code else 0,
            status=int(status) if status else None,
            fields=fields,
            prefixes=prefixes,
        )


def split_comment(line: str) -> tuple[str, str]:
    """``line`` as (code, comment): a ``#`` starts a comment outside quotes, at the start
    or after a blank, as bash reads it (a URL's ``#`` or a quoted one does not)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def _section(lines: list[str], heading: str, page: str) -> range:
    """The line numbers under ``heading`` (a ``## `` heading) up to the next one."""
    try:
        start = lines.index(heading)
    except ValueError:
        raise AssertionError(f"{page} has no heading {heading!r}") from None
    level = heading.split(" ")[0] + " "
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(level)), len(lines))
    return range(start + 1, end)


def section_commands(path: Path, heading: str, *, page: str) -> list[DocCommand]:
    """Every command of the ```sh blocks under ``heading`` of the Markdown file ``path``."""
    lines = path.read_text().splitlines()
    commands: list[DocCommand] = []
    in_block = False
    pending: list[tuple[int, str]] = []  # the lines of a command continued with `\`
    for i in _section(lines, heading, page):
        text = lines[i]
        if text.startswith(_FENCE):
            assert not pending, f"{page}:{i + 1}: a block ends inside a continued command"
            in_block = text == _FENCE + "sh"
            continue
        if not in_block or not text.strip():
            continue
        code, comment = split_comment(text)
        if not code:  # a comment-only line: what the command before it answers
            if commands and not pending:
                last = commands[-1]
                commands[-1] = DocCommand(
                    last.page, last.line, last.command, f"{last.comment} {comment}"
                )
            continue
        if code.endswith("\\"):
            pending.append((i + 1, code[:-1].strip()))
            continue
        first = pending[0][0] if pending else i + 1
        joined = " ".join([*(part for _, part in pending), code.strip()])
        commands.append(DocCommand(page, first, joined, comment))
        pending = []
    assert commands, f"{page}: no ```sh commands under {heading!r}"
    return commands
