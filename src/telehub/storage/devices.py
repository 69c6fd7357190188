"""Devices and API tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import String, case, cast, delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from telehub.domain.devices import ApiToken, Device, Scope
from telehub.errors import Conflict
from telehub.storage.database import json_text
from telehub.storage.tables import (
    api_tokens,
    commands,
    device_latest,
    device_state,
    devices,
    readings,
    rollup_progress,
    rollups,
)

_DEVICE_COLUMNS = (
    devices.c.id,
    devices.c.name,
    devices.c.attributes,
    devices.c.created_us,
    devices.c.last_seen_us,
    devices.c.online,
    devices.c.presence_us,
)


def _device(row: Any) -> Device:
    return Device(
        id=row.id,
        name=row.name,
        attributes=row.attributes,
        created_us=row.created_us,
        last_seen_us=row.last_seen_us,
        online=row.online,
        presence_us=row.presence_us,
    )


class SqlDeviceStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"

    async def create(self, device: Device, *, token_hash: str) -> Device:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(devices).values(
                        id=device.id,
                        name=device.name,
                        attributes=device.attributes,
                        token_hash=token_hash,
                        created_us=device.created_us,
                    )
                )
        except IntegrityError:
            raise Conflict(f"device {device.id!r} already exists") from None
        return device

    async def get(self, device_id: str) -> Device | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(*_DEVICE_COLUMNS).where(devices.c.id == device_id))
            ).first()
        return _device(row) if row else None

    async def existing(self, device_ids: Sequence[str]) -> set[str]:
        """Which of these ids are devices: one query per thousand, not one per id."""
        found: set[str] = set()
        async with self._engine.connect() as conn:
            for start in range(0, len(device_ids), 1000):
                chunk = list(device_ids[start : start + 1000])
                rows = await conn.execute(select(devices.c.id).where(devices.c.id.in_(chunk)))
                found.update(r.id for r in rows)
        return found

    async def by_token_hash(self, token_hash: str) -> Device | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*_DEVICE_COLUMNS).where(devices.c.token_hash == token_hash)
                )
            ).first()
        return _device(row) if row else None

    async def page(
        self, *, limit: int, after: str | None, attributes: Mapping[str, str]
    ) -> list[Device]:
        query = select(*_DEVICE_COLUMNS).order_by(devices.c.id).limit(limit)
        if after is not None:
            query = query.where(devices.c.id > after)
        for key, value in attributes.items():
            # Compare the attribute's JSON text with the filter taken as a JSON
            # literal (3, true) or as a string ("north"): the same on both databases.
            path = key if self._pg else '$."' + key.replace('"', '""') + '"'
            as_json = cast(devices.c.attributes.op("->")(literal(path)), String)
            query = query.where(as_json.in_([value, json_text(value)]))
        async with self._engine.connect() as conn:
            return [_device(r) for r in await conn.execute(query)]

    async def update(
        self, device_id: str, *, name: str | None, attributes: dict[str, Any] | None
    ) -> Device | None:
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if attributes is not None:
            values["attributes"] = attributes
        async with self._engine.begin() as conn:
            if values:
                await conn.execute(update(devices).where(devices.c.id == device_id).values(values))
            row = (
                await conn.execute(select(*_DEVICE_COLUMNS).where(devices.c.id == device_id))
            ).first()
        return _device(row) if row else None

    async def delete(self, device_id: str) -> bool:
        async with self._engine.begin() as conn:
            gone = (await conn.execute(delete(devices).where(devices.c.id == device_id))).rowcount
            # Progress before rollups: a build step holding the progress rows makes this
            # wait, and then its rollups are found (storage/rollups.py).
            tables = (readings, device_latest, device_state, commands, rollup_progress, rollups)
            for table in tables:
                await conn.execute(delete(table).where(table.c.device_id == device_id))
        return bool(gone)

    async def set_presence(
        self, device_id: str, *, online: bool, at_us: int, contact: bool
    ) -> bool | None:
        """Record presence; True if it changed, False if not, None if no such device.

        ``presence_us`` moves only on a change, so a replayed retained status
        keeps the time the device really came online.
        """
        changed = devices.c.online.is_distinct_from(online)
        values: dict[str, Any] = {
            "online": online,
            "presence_us": case((changed, at_us), else_=devices.c.presence_us),
        }
        if contact:
            values["last_seen_us"] = case(
                (devices.c.last_seen_us > at_us, devices.c.last_seen_us), else_=at_us
            )
        async with self._engine.begin() as conn:
            before = (
                await conn.execute(select(devices.c.online).where(devices.c.id == device_id))
            ).first()
            if before is None:
                return None
            await conn.execute(update(devices).where(devices.c.id == device_id).values(values))
        return bool(before.online is not online)

    async def set_token_hash(self, device_id: str, token_hash: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(devices).where(devices.c.id == device_id).values(token_hash=token_hash)
            )
        return bool(result.rowcount)


def _token(row: Any) -> ApiToken:
    return ApiToken(id=row.id, name=row.name, scope=Scope(row.scope), created_us=row.created_us)


_TOKEN_COLUMNS = (api_tokens.c.id, api_tokens.c.name, api_tokens.c.scope, api_tokens.c.created_us)


class SqlTokenStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, token: ApiToken, *, token_hash: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(api_tokens).values(
                    id=token.id,
                    name=token.name,
                    scope=token.scope.value,
                    token_hash=token_hash,
                    created_us=token.created_us,
                )
            )

    async def all(self) -> list[ApiToken]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(*_TOKEN_COLUMNS).order_by(api_tokens.c.created_us))
            return [_token(r) for r in rows]

    async def delete(self, token_id: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(api_tokens).where(api_tokens.c.id == token_id))
        return bool(result.rowcount)

    async def rename(self, token_id: str, name: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(name=name)
            )
        return bool(result.rowcount)

    async def by_hash(self, token_hash: str) -> ApiToken | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*_TOKEN_COLUMNS).where(api_tokens.c.token_hash == token_hash)
                )
            ).first()
        return _token(row) if row else None

    async def has_admin(self) -> bool:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_tokens.c.id).where(api_tokens.c.scope == Scope.ADMIN.value).limit(1)
                )
            ).first()
        return row is not None
