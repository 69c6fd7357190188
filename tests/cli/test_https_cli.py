"""The API commands against a hub served over HTTPS with a certificate of its own CA:
``--ca-file`` (or TELEHUB_CA_FILE) trusts it; without it the refusal is one line that
says what to do."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from telehub.cli.exit_codes import Exit
from tests.cli.conftest import failed, succeeded, telehub
from tests.live.support import LiveServer
from tests.tls_support import TlsFiles, make_tls_files


@pytest.fixture
def backend() -> str:
    return "sqlite"


def _at(server: LiveServer) -> list[str]:
    return ["--url", server.base, "--token", server.admin]


async def test_ca_file_flag_or_env_trusts_the_hub(https_server: LiveServer, tls: TlsFiles) -> None:
    succeeded(
        await telehub("devices", "create", "dev-1", *_at(https_server), "--ca-file", str(tls.ca))
    )
    out = succeeded(
        await telehub(
            "send", "dev-1", "t=1", *_at(https_server), env={"TELEHUB_CA_FILE": str(tls.ca)}
        )
    )
    assert out == "accepted 1, duplicates 0, state 0\n"


async def test_without_the_ca_file_the_certificate_is_refused_in_one_line(
    https_server: LiveServer,
) -> None:
    line = failed(await telehub("devices", "list", *_at(https_server)), Exit.UNREACHABLE)
    assert line == (
        f"telehub: {https_server.base}: its TLS certificate was not accepted (unable to get local "
        "issuer certificate); if the hub has a self-signed certificate or its own CA, give "
        "that certificate with --ca-file or TELEHUB_CA_FILE"
    )


async def test_a_ca_file_that_did_not_sign_it_is_named(
    https_server: LiveServer, tmp_path: Path
) -> None:
    other = make_tls_files(tmp_path / "other").ca
    line = failed(
        await telehub("latest", "dev-1", *_at(https_server), "--ca-file", str(other)),
        Exit.UNREACHABLE,
    )
    assert line.endswith(
        f"(unable to get local issuer certificate) (checked against --ca-file {other})"
    )


@pytest.mark.parametrize(
    ("name", "problem"), [("nope.pem", "no such file"), ("key", "not a PEM certificate")]
)
async def test_an_unusable_ca_file_is_one_line(
    https_server: LiveServer, tls: TlsFiles, tmp_path: Path, name: str, problem: str
) -> None:
    path = tls.key if name == "key" else tmp_path / name
    line = failed(
        await telehub("devices", "list", *_at(https_server), "--ca-file", str(path)), Exit.USAGE
    )
    assert line == f"telehub: --ca-file {path}: {problem}"


async def test_tail_and_events_check_the_certificate_with_the_ca_file(
    https_server: LiveServer, tmp_path: Path
) -> None:
    """They run until Ctrl-C when trusted, so only the refusals are tested here; the
    second shows the --ca-file reached the connection."""
    other = make_tls_files(tmp_path / "other").ca
    for command in ("tail", "events"):
        line = failed(await telehub(command, *_at(https_server)), Exit.UNREACHABLE)
        assert "its TLS certificate was not accepted" in line
        assert "give that certificate with --ca-file" in line
        line = failed(
            await telehub(command, *_at(https_server), "--ca-file", str(other)), Exit.UNREACHABLE
        )
        assert line.endswith(f"(checked against --ca-file {other})")


async def test_login_remembers_the_ca_file_for_the_commands_after_it(
    https_server: LiveServer, tls: TlsFiles, config_file: Path
) -> None:
    succeeded(await telehub("login", *_at(https_server), "--ca-file", str(tls.ca)))

    saved = await asyncio.to_thread(config_file.read_text)
    assert f'ca_file = "{tls.ca.resolve()}"' in saved
    succeeded(await telehub("devices", "create", "dev-1"))
    assert succeeded(await telehub("send", "dev-1", "t=1")) == "accepted 1, duplicates 0, state 0\n"


async def _simulate(*argv: str) -> tuple[int, str, str]:
    """A real process: simulate installs signal handlers, which typer's runner thread cannot."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "telehub"),
        "simulate",
        *("--devices", "2", "--rate", "20", "--duration", "1", "--json"),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_simulate_provisions_and_sends_over_https_with_the_ca_file(
    https_server: LiveServer, tls: TlsFiles
) -> None:
    code, out, err = await _simulate(*_at(https_server), "--ca-file", str(tls.ca))

    assert code == 0, err
    summary = json.loads(out)
    assert summary["error_total"] == 0
    assert summary["acknowledged"] > 0
    assert await https_server.hub.devices.get("sim-1") is not None


async def test_simulate_without_the_ca_file_is_refused_before_any_device_is_made(
    https_server: LiveServer,
) -> None:
    code, _, err = await _simulate(*_at(https_server))

    assert code != 0
    assert err == (
        f"telehub: simulation failed: {https_server.base}: its TLS certificate was not accepted "
        "(unable to get local issuer certificate); if the hub has a self-signed certificate "
        "or its own CA, give that certificate with --ca-file or TELEHUB_CA_FILE\n"
    )
    assert await https_server.hub.store.devices.get("sim-1") is None
