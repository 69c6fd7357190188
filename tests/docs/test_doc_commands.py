"""How a page's shell commands and their comments are read (tests/docs/doc_commands.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.doc_commands import DocCommand, Promise, section_commands, split_comment

PAGE = """# Page

## Other

```sh
not-this
```

## Tour

Some prose.

```sh
make run        # the server
curl -s -X POST localhost:8000/x \\
     -d '{"a": "#1"}'     # → 202 {"accepted": 2, "duplicates": 0, …}
# → then this line too
```

```python
not_sh()
```

```sh
telehub command send d reboot --wait --within 10   # no answer: exit 1 after 10 s
```

## Next
"""


def test_commands_are_joined_and_keep_their_comments(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)

    commands = section_commands(page, "## Tour", page="page.md")

    assert [(c.line, c.command) for c in commands] == [
        (14, "make run"),
        (15, """curl -s -X POST localhost:8000/x -d '{"a": "#1"}'"""),
        (25, "telehub command send d reboot --wait --within 10"),
    ]
    assert commands[1].comment == '→ 202 {"accepted": 2, "duplicates": 0, …} → then this line too'


def test_a_missing_heading_fails_naming_it(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    with pytest.raises(AssertionError, match=r"page\.md has no heading '## Tor'"):
        section_commands(page, "## Tor", page="page.md")


def test_a_hash_in_quotes_or_a_word_is_no_comment() -> None:
    line = "echo '# no' a#b \"#\"  # yes"
    assert split_comment(line) == ("echo '# no' a#b \"#\"", "yes")


@pytest.mark.parametrize(
    ("comment", "promise"),
    [
        ("", Promise()),
        ("no device answers now: exit 1 after 10 s", Promise(exit_code=1)),
        ('→ {"accepted": 2, …}', Promise(fields={"accepted": 2})),
        (
            '→ 201 {"id": "greenhouse-1", ..., "token": "thd_..."}   shown once',
            Promise(status=201, fields={"id": "greenhouse-1"}, prefixes={"token": "thd_"}),
        ),
    ],
)
def test_a_comment_promises_what_it_shows(comment: str, promise: Promise) -> None:
    assert DocCommand("page.md", 1, "true", comment).promise() == promise
