"""The file ``telehub login`` writes: which server the API commands talk to, with which token.

It lives at ``$TELEHUB_CLI_CONFIG``, else ``$XDG_CONFIG_HOME/telehub/cli.toml``, else
``~/.config/telehub/cli.toml``, and holds a secret, so it is written readable by its
owner only (0600, in a 0700 directory when telehub creates it)::

    url = "http://127.0.0.1:8000"
    token = "tha_..."
    ca_file = "/etc/telehub/ca.pem"   # only when login was given --ca-file
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

CONFIG_ENV = "TELEHUB_CLI_CONFIG"


class ConfigFileError(Exception):
    """The file exists but cannot be read or is not what ``telehub login`` writes."""


@dataclass(frozen=True, slots=True)
class Login:
    url: str
    token: str
    ca_file: str | None = None  # the CA bundle that verifies this server's certificate


def config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "telehub" / "cli.toml"


def load_login(path: Path) -> Login | None:
    """The saved login, or None when there is no file."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(f"cannot read {path}: {exc}") from None
    url, token, ca_file = data.get("url"), data.get("token"), data.get("ca_file")
    if not isinstance(url, str) or not isinstance(token, str):
        raise ConfigFileError(f"{path} needs string values url and token; run `telehub login`")
    if ca_file is not None and not isinstance(ca_file, str):
        raise ConfigFileError(f"{path}: ca_file must be a string (a path); run `telehub login`")
    return Login(url=url, token=token, ca_file=ca_file)


def save_login(path: Path, login: Login) -> None:
    """Replace the file atomically; the temporary file is 0600 from the start."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = (
        "# written by `telehub login`\n"
        f"url = {_toml_string(login.url)}\n"
        f"token = {_toml_string(login.token)}\n"
    )
    if login.ca_file is not None:
        text += f"ca_file = {_toml_string(login.ca_file)}\n"
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".cli-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
