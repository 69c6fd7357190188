"""Settings: embedded defaults, TELEHUB_* variables, the TOML file, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from telehub.config import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TELEHUB_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_ones() -> None:
    s = load_settings()
    assert s.database_url == "sqlite+aiosqlite:///./telehub.db"
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8000)
    assert s.is_sqlite
    assert s.max_batch_readings == 10_000
    assert s.max_body_bytes == 1024 * 1024


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEHUB_DATABASE_URL", "postgresql+asyncpg://u@db/telehub")
    monkeypatch.setenv("TELEHUB_HTTP_PORT", "9001")
    s = load_settings()
    assert not s.is_sqlite
    assert s.http_port == 9001


def test_explicit_values_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEHUB_HTTP_PORT", "9001")
    assert load_settings(http_port=9002).http_port == 9002


def test_config_file_is_read_below_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "telehub.toml"
    config.write_text('http_port = 7000\nhttp_host = "0.0.0.0"\n')
    monkeypatch.setenv("TELEHUB_CONFIG_FILE", str(config))
    assert (load_settings().http_host, load_settings().http_port) == ("0.0.0.0", 7000)
    monkeypatch.setenv("TELEHUB_HTTP_PORT", "7001")
    assert load_settings().http_port == 7001


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEHUB_CONFIG_FILE", "/nonexistent/telehub.toml")
    with pytest.raises(FileNotFoundError, match="TELEHUB_CONFIG_FILE"):
        load_settings()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"database_url": "mysql://x"}, "database_url"),
        ({"http_port": 70000}, "http_port"),
        ({"ingest_queue_readings": 10_000, "max_batch_readings": 20_000}, "ingest_queue"),
        ({"unknown_setting": 1}, "unknown_setting"),
    ],
)
def test_invalid_settings_are_refused_with_the_field(
    overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        load_settings(**overrides)
