"""HTTPS settings: both files or neither, each checked before anything starts, and every
mistake one line naming its setting, from ``telehub serve`` and ``telehub api`` alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError
from typer.testing import CliRunner

from telehub.api.server import tls_options, uvicorn_config
from telehub.cli.main import app
from telehub.config import load_settings
from telehub.errors import ConfigError
from tests.tls_support import TlsFiles, make_tls_files

runner = CliRunner()
COMMANDS = [["serve"], ["api"], ["api", "--workers", "2"]]


@pytest.fixture
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TELEHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TELEHUB_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")


@pytest.mark.parametrize(
    ("given", "missing"),
    [("cert", "TELEHUB_HTTP_TLS_KEY_FILE"), ("key", "TELEHUB_HTTP_TLS_CERT_FILE")],
)
def test_half_configured_tls_is_refused_naming_the_missing_setting(
    tls: TlsFiles, given: str, missing: str
) -> None:
    with pytest.raises(ValidationError, match=f"{missing} is not: HTTPS needs both"):
        load_settings(**{f"http_tls_{given}_file": getattr(tls, given)})


def test_the_scheme_follows_the_settings(tls: TlsFiles) -> None:
    assert load_settings().http_scheme == "http"
    assert load_settings(**tls.settings()).http_scheme == "https"


def test_uvicorn_gets_the_files_for_https_and_nothing_for_http(tls: TlsFiles) -> None:
    config = uvicorn_config(object(), load_settings(**tls.settings()))
    assert (config.ssl_certfile, config.ssl_keyfile) == (str(tls.cert), str(tls.key))
    assert tls_options(load_settings()) == {}
    plain = uvicorn_config(object(), load_settings())
    assert (plain.ssl_certfile, plain.ssl_keyfile) == (None, None)


def _problem(tmp_path: Path, tls: TlsFiles, kind: str) -> tuple[dict[str, object], str]:
    """Settings with one kind of mistake, and what its error must say."""
    other = make_tls_files(tmp_path / "other") if kind == "another key" else tls
    encrypted = tmp_path / "encrypted.pem"
    if kind == "encrypted":
        key = serialization.load_pem_private_key(tls.key.read_bytes(), password=None)
        encrypted.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
    cases: dict[str, tuple[dict[str, object], str]] = {
        "missing cert": (
            {"http_tls_cert_file": tmp_path / "nope.pem", "http_tls_key_file": tls.key},
            f"TELEHUB_HTTP_TLS_CERT_FILE={tmp_path / 'nope.pem'}: cannot read it: "
            "No such file or directory",
        ),
        "missing key": (
            {"http_tls_cert_file": tls.cert, "http_tls_key_file": tmp_path / "nope.pem"},
            f"TELEHUB_HTTP_TLS_KEY_FILE={tmp_path / 'nope.pem'}: cannot read it",
        ),
        "directory": (
            {"http_tls_cert_file": tmp_path, "http_tls_key_file": tls.key},
            f"TELEHUB_HTTP_TLS_CERT_FILE={tmp_path}: cannot read it: Is a directory",
        ),
        "key as cert": (
            {"http_tls_cert_file": tls.key, "http_tls_key_file": tls.key},
            f"TELEHUB_HTTP_TLS_CERT_FILE={tls.key}: not a PEM certificate",
        ),
        "cert as key": (
            {"http_tls_cert_file": tls.cert, "http_tls_key_file": tls.cert},
            f"TELEHUB_HTTP_TLS_KEY_FILE={tls.cert}: not the unencrypted PEM private key",
        ),
        "another key": (
            {"http_tls_cert_file": tls.cert, "http_tls_key_file": other.key},
            f"TELEHUB_HTTP_TLS_KEY_FILE={other.key}: not the unencrypted PEM private key "
            "of TELEHUB_HTTP_TLS_CERT_FILE (KEY_VALUES_MISMATCH)",
        ),
        "encrypted": (
            {"http_tls_cert_file": tls.cert, "http_tls_key_file": encrypted},
            f"TELEHUB_HTTP_TLS_KEY_FILE={encrypted}: the key is encrypted",
        ),
    }
    return cases[kind]


KINDS = [
    "missing cert",
    "missing key",
    "directory",
    "key as cert",
    "cert as key",
    "another key",
    "encrypted",
]


@pytest.mark.parametrize("kind", KINDS)
def test_unusable_files_are_one_clear_error(tmp_path: Path, tls: TlsFiles, kind: str) -> None:
    overrides, expected = _problem(tmp_path, tls, kind)
    with pytest.raises(ConfigError) as caught:
        tls_options(load_settings(**overrides))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.usefixtures("_clean_env")
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_commands_refuse_half_configured_tls_in_one_line(
    tls: TlsFiles, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEHUB_HTTP_TLS_CERT_FILE", str(tls.cert))
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "telehub: invalid configuration: TELEHUB_HTTP_TLS_CERT_FILE is set but "
        "TELEHUB_HTTP_TLS_KEY_FILE is not: HTTPS needs both (or neither, for plain HTTP)\n"
    )


@pytest.mark.usefixtures("_clean_env")
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_commands_stop_on_a_missing_key_before_starting(
    tls: TlsFiles, tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEHUB_HTTP_TLS_CERT_FILE", str(tls.cert))
    monkeypatch.setenv("TELEHUB_HTTP_TLS_KEY_FILE", str(tmp_path / "gone.pem"))
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"telehub: TELEHUB_HTTP_TLS_KEY_FILE={tmp_path / 'gone.pem'}: cannot read it: "
        "No such file or directory\n"
    )
    assert result.stdout == ""  # nothing was started, not even the database
    assert not (tmp_path / "cli.db").exists()
