"""The shape the code keeps: dependencies point one way, and ingest has one entry.

``domain ← core ← storage/bus ← adapters (api, mqtt, grpc) ← cli``: the core
knows no transport and no SQL, and an adapter reaches readings' storage only
through the core's ingest gate. A change that breaks this fails here, naming
the module and the line, rather than in review.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "telehub"
ADAPTERS = ("api", "mqtt", "grpc")
# The one module of each adapter that opens or holds the Hub and hands every other
# module the core services it uses (app.state.hub for the REST routes' dependencies).
WIRING = {"api/app.py", "api/deps.py", "mqtt/service.py", "grpc/server.py"}
TRANSPORT_AND_SQL = (
    "fastapi",
    "starlette",
    "uvicorn",
    "grpc",
    "google.protobuf",
    "gmqtt",
    "amqtt",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "sqlite3",
)


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((SRC / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(SRC.parent)}:{line}"


@pytest.mark.parametrize("package", ["domain", "core"])
def test_the_core_imports_no_transport_and_no_sql(package: str) -> None:
    outer = tuple(f"telehub.{p}" for p in ("storage", "bus", "cli", "hub", *ADAPTERS))
    found = [
        f"{_where(path, line)} imports {name}"
        for path in _modules(package)
        for line, name in _imports(path)
        if _under(name, TRANSPORT_AND_SQL) or _under(name, outer)
    ]
    assert found == []


def test_the_domain_imports_nothing_of_the_core() -> None:
    found = [
        f"{_where(path, line)} imports {name}"
        for path in _modules("domain")
        for line, name in _imports(path)
        if _under(name, ("telehub.core",))
    ]
    assert found == []


@pytest.mark.parametrize("package", ADAPTERS)
def test_adapters_never_import_storage(package: str) -> None:
    found = [
        f"{_where(path, line)} imports {name}"
        for path in _modules(package)
        for line, name in _imports(path)
        if _under(name, ("telehub.storage",))
    ]
    assert found == []


@pytest.mark.parametrize("package", ADAPTERS)
def test_adapters_reach_ingest_only_through_the_gate(package: str) -> None:
    """No ``hub.ingestor``, ``hub.store`` or ``rejected.record`` in a transport: each
    calls ``hub.ingest`` (core/ingest_gate.py), which owns authorising, decoding,
    recording rejections and submitting."""
    found = []
    for path in _modules(package):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            owner_name = (
                owner.attr
                if isinstance(owner, ast.Attribute)
                else owner.id
                if isinstance(owner, ast.Name)
                else ""
            )
            if node.attr in ("ingestor", "store") or (
                node.attr == "record" and owner_name == "rejected"
            ):
                found.append(f"{_where(path, node.lineno)} uses {owner_name}.{node.attr}")
    assert found == []


@pytest.mark.parametrize("package", ADAPTERS)
def test_adapters_receive_ports_not_the_hub(package: str) -> None:
    """Outside its wiring module an adapter gets the core services it uses, so what it
    can reach is in its constructor's signature, not everything the hub holds."""
    found = [
        f"{_where(path, line)} imports {name}"
        for path in _modules(package)
        if path.relative_to(SRC).as_posix() not in WIRING
        for line, name in _imports(path)
        if _under(name, ("telehub.hub",))
    ]
    assert found == []
