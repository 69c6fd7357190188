"""The configuration reference, made from ``Settings`` itself so it cannot drift from it.

Every field of :class:`telehub.config.Settings` belongs to exactly one group,
chosen by the start of its name; the page holds a marker per group
(``<!-- telehub:settings database -->``) with hand-written prose around it. A
field that no group claims, or a group the page never shows, stops the build:
a setting nobody can look up is a bug of the docs.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import SecretStr
from pydantic.fields import FieldInfo

ENV_PREFIX = "TELEHUB_"


@dataclass(frozen=True)
class Group:
    key: str
    prefixes: tuple[str, ...]


# Order matters only where prefixes overlap: the first group that claims a field has it.
GROUPS = (
    Group("general", ("environment",)),
    Group("database", ("database_",)),
    Group("http", ("http_",)),
    Group("ingest", ("ingest_",)),
    Group("limits", ("max_",)),
    Group("mqtt", ("mqtt_", "command_")),
    Group("live", ("bus_", "event_log_", "events_", "ws_", "sse_", "live_")),
    Group("grpc", ("grpc_",)),
    Group("metrics", ("metrics_",)),
    Group("rollups", ("rollup_",)),
    Group("records", ("rejected_", "auth_")),
)


class DocsError(Exception):
    """The docs cannot be built truthfully; mkdocs reports it and stops."""


def group_of(name: str) -> str | None:
    for group in GROUPS:
        if name.startswith(group.prefixes):
            return group.key
    return None


def grouped(fields: Mapping[str, FieldInfo]) -> dict[str, dict[str, FieldInfo]]:
    """Fields by group key, in declaration order; DocsError for a field no group claims."""
    out: dict[str, dict[str, FieldInfo]] = {g.key: {} for g in GROUPS}
    homeless = []
    for name, info in fields.items():
        key = group_of(name)
        if key is None:
            homeless.append(name)
        else:
            out[key][name] = info
    if homeless:
        raise DocsError(
            f"Settings fields in no group of docs/hooks/settings_tables.py: {', '.join(homeless)}"
        )
    return out


def undocumented(fields: Mapping[str, FieldInfo]) -> list[str]:
    """Names of fields without a description: each needs one, the page prints it."""
    return [name for name, info in fields.items() if not (info.description or "").strip()]


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def type_text(annotation: Any) -> str:
    """A field's type as a reader of an environment variable thinks of it."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " or ".join(f"`{v}`" for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = " or ".join(type_text(a) for a in args)
        return f"{inner}, optional" if len(args) < len(typing.get_args(annotation)) else inner
    names = {
        str: "text",
        int: "integer",
        float: "number",
        bool: "`true` or `false`",
        Path: "file path",
        SecretStr: "secret text",
    }
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default_text(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def bounds_text(info: FieldInfo) -> str:
    """The limits pydantic enforces (a value outside them stops the start)."""
    words = []
    for item in info.metadata:
        if isinstance(item, Ge):
            words.append(f"≥ {item.ge}")
        elif isinstance(item, Gt):
            words.append(f"> {item.gt}")
        elif isinstance(item, Le):
            words.append(f"≤ {item.le}")
        elif isinstance(item, Lt):
            words.append(f"< {item.lt}")
        elif isinstance(item, MinLen):
            words.append(f"at least {item.min_length} characters")
        elif isinstance(item, MaxLen):
            words.append(f"at most {item.max_length} characters")
        elif getattr(item, "pattern", None):
            words.append(f"matches `{item.pattern}`")
    return ", ".join(words)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell (one line, no column breaks)."""
    return " ".join(text.split()).replace("|", "\\|")


def table(fields: Mapping[str, FieldInfo]) -> str:
    lines = [
        "| variable (TOML key) | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, info in fields.items():
        meaning = cell(info.description or "")
        bounds = bounds_text(info)
        if bounds:
            meaning += f" <br>*Allowed:* {cell(bounds)}"
        lines.append(
            f"| `{env_name(name)}` <br>(`{name}`) | {type_text(info.annotation)} "
            f"| {default_text(info)} | {meaning} |"
        )
    return "\n".join(lines)


def render_groups(fields: Mapping[str, FieldInfo], shown: Iterable[str]) -> dict[str, str]:
    """The table of each group the page shows; DocsError if the page leaves a group out
    or names one that does not exist."""
    groups = grouped(fields)
    wanted = list(shown)
    unknown = [key for key in wanted if key not in groups]
    if unknown:
        raise DocsError(f"settings markers name no group: {', '.join(unknown)}")
    missing = [key for key, members in groups.items() if members and key not in wanted]
    if missing:
        raise DocsError(f"settings groups with no marker on the page: {', '.join(missing)}")
    return {key: table(groups[key]) if groups[key] else "*(no settings)*" for key in wanted}
