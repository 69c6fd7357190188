"""Every setting is documented: it has a description and a row on the configuration page."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from telehub.config import Settings, load_settings
from tests.docs.hook_modules import ROOT, hook_module

settings_tables = hook_module("settings_tables")
generate = hook_module("generate")


def test_every_setting_has_a_description() -> None:
    assert settings_tables.undocumented(Settings.model_fields) == []


def test_a_field_without_a_description_is_found() -> None:
    class Partly(BaseModel):
        http_port: int = Field(8000, description="port")
        http_host: str = "127.0.0.1"
        http_path: str = Field("/", description="   ")

    assert settings_tables.undocumented(Partly.model_fields) == ["http_host", "http_path"]


def test_the_configuration_page_lists_every_setting_once() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    rendered = generate.settings_page(page)
    assert "telehub:settings" not in rendered
    for name in Settings.model_fields:
        assert rendered.count(f"| `TELEHUB_{name.upper()}` <br>(`{name}`) |") == 1, name


def test_a_row_says_type_default_bounds_and_meaning() -> None:
    rows = settings_tables.table({"http_port": Settings.model_fields["http_port"]})
    assert (
        "| `TELEHUB_HTTP_PORT` <br>(`http_port`) | integer | `8000` | port of the HTTP API" in rows
    )
    assert "*Allowed:* ≥ 0, ≤ 65535 |" in rows
    optional = settings_tables.table(
        {"mqtt_shared_group": Settings.model_fields["mqtt_shared_group"]}
    )
    assert "| text, optional | unset |" in optional
    assert "matches `^[A-Za-z0-9_-]{1,64}$`" in optional


def test_the_documented_variable_is_the_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings_tables.env_name("ingest_batch_quiet"), "0.25")
    monkeypatch.setenv(settings_tables.env_name("ws_compression"), "true")
    loaded = load_settings()
    assert loaded.ingest_batch_quiet == 0.25
    assert loaded.ws_compression is True


def test_a_field_in_no_group_or_a_group_left_off_the_page_stops_the_build() -> None:
    class Odd(BaseModel):
        http_port: int = Field(8000, description="port")
        colour: str = Field("blue", description="not a telehub setting")

    with pytest.raises(settings_tables.DocsError, match="colour"):
        settings_tables.render_groups(Odd.model_fields, ["http"])
    with pytest.raises(settings_tables.DocsError, match="no marker on the page: general, http,"):
        settings_tables.render_groups(Settings.model_fields, ["database"])
    with pytest.raises(settings_tables.DocsError, match="name no group: colour"):
        settings_tables.render_groups(Settings.model_fields, ["colour"])


def test_the_page_has_prose_around_each_group() -> None:
    """The markers sit in hand-written sections; the page says where the tables come from."""
    page = Path(ROOT / "docs" / "configuration.md").read_text()
    for group in settings_tables.GROUPS:
        before = page.split(f"<!-- telehub:settings {group.key} -->")[0]
        assert before.rstrip().splitlines()[-1].strip(), group.key


def test_the_fields_come_group_by_group_in_the_page_s_order() -> None:
    """Settings joins a class per group (telehub/config/); pydantic orders inherited fields
    by the bases, so a base listed out of order would reorder the page."""
    order = [group.key for group in settings_tables.GROUPS]
    seen = [settings_tables.group_of(name) for name in Settings.model_fields]
    assert seen == sorted(seen, key=lambda key: order.index(key or ""))
    assert list(dict.fromkeys(seen)) == order
