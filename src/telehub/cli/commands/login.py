"""``telehub login``: remember the server and token the API commands use."""

from __future__ import annotations

from typing import Annotated

import typer

from telehub.cli.config_file import Login, config_path, save_login
from telehub.cli.exit_codes import Exit
from telehub.cli.remote import CaFileOpt, check_url, connect, fail


def login(
    url: Annotated[str, typer.Option("--url", help="the telehub API, e.g. http://hub:8000")],
    token: Annotated[
        str,
        typer.Option(
            "--token", prompt=True, hide_input=True, help="an API token; asked for if omitted"
        ),
    ],
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="try the token on the server first")
    ] = True,
    ca_file: CaFileOpt = None,
) -> None:
    """Save the server and token (and --ca-file) the API commands use when no flag or env
    gives them.

    The file is TELEHUB_CLI_CONFIG, else ~/.config/telehub/cli.toml, readable by
    you only. --url/--token and TELEHUB_URL/TELEHUB_TOKEN still win over it.
    """
    url = check_url(url)
    if check:
        with connect(url, token, ca_file) as client:
            next(iter(client.list_devices(page_size=1)), None)
    path = config_path()
    try:
        ca = None if ca_file is None else str(ca_file.resolve())
        save_login(path, Login(url=url, token=token, ca_file=ca))
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc}", Exit.FAILED) from None
    typer.echo(f"saved {url} to {path}")
