"""API keys of the calling user: list them, create one (up to the limit of active keys), revoke one."""

from __future__ import annotations

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.crud import keys as crud
from api.deps import AppServices
from api.errors import ApiError, not_found
from api.schemas.keys import KeyCreated, KeyList, KeyOut


async def list_keys(session: Session, *, user_id: int) -> KeyList:
    rows = await run_in_threadpool(crud.list_keys, session, user_id=user_id)
    return KeyList(data=[KeyOut.from_row(row) for row in rows])


async def create_key(services: AppServices, session: Session, *, user_id: int, name: str) -> KeyCreated:
    """A new key, with the key itself in the response (the only time it is shown); 409 at the limit."""
    try:
        row, key = await run_in_threadpool(
            crud.create_key,
            session,
            user_id=user_id,
            name=name,
            max_active=services.settings.api_max_active_keys_per_user,
        )
    except crud.KeyLimitReached as error:
        raise ApiError(
            409,
            "key_limit_reached",
            f"you already have {error.limit} active API keys, the most allowed: revoke one "
            "(DELETE /v1/keys/{id}) before creating another",
        ) from None
    return KeyCreated(**KeyOut.from_row(row).model_dump(), key=key)


async def revoke_key(session: Session, *, user_id: int, key_id: int) -> None:
    """Revoke one of the user's keys, the one sending the request included; 404 for any other key."""
    row = await run_in_threadpool(crud.revoke_key, session, key_id=key_id, user_id=user_id)
    if row is None:
        raise not_found("key", key_id)
