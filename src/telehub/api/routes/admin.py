"""API tokens and the rejected-input record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from telehub.api.deps import AdminScope, ReadScope, RejectedDep, TokensDep
from telehub.api.schemas import RejectedOut, RejectedPage, TokenCreate, TokenCreated, TokenOut
from telehub.domain.rules import DEVICE_ID_MAX_CHARS

router = APIRouter(prefix="/api/v1")


@router.post(
    "/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated, tags=["tokens"]
)
async def create_token(body: TokenCreate, tokens: TokensDep, _: AdminScope) -> TokenCreated:
    """Make an API token. The secret is in this response only."""
    token, secret = await tokens.create(name=body.name, scope=body.scope)
    return TokenCreated(**TokenOut.of(token).model_dump(), token=secret)


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"])
async def list_tokens(tokens: TokensDep, _: AdminScope) -> list[TokenOut]:
    return [TokenOut.of(t) for t in await tokens.list()]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["tokens"])
async def delete_token(
    token_id: Annotated[str, Path(max_length=32)], tokens: TokensDep, _: AdminScope
) -> Response:
    """Revoke a token at once."""
    await tokens.delete(token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/rejected", response_model=RejectedPage, tags=["rejected"])
async def list_rejected(
    rejected: RejectedDep,
    _: ReadScope,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, description="cursor: ids below this")] = None,
    device_id: Annotated[str | None, Query(max_length=DEVICE_ID_MAX_CHARS)] = None,
) -> RejectedPage:
    """Recent inputs that were refused, newest first, with the reason and an excerpt."""
    items = await rejected.recent(limit=limit, before_id=before, device_id=device_id)
    out = [RejectedOut.of(r) for r in items]
    return RejectedPage(items=out, next=out[-1].id if len(out) == limit else None)
