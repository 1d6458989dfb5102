"""/v1/keys: the calling user's API keys; list, create and revoke them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from api.deps import CurrentUser, ServicesDep, SessionDep
from api.openapi import problems
from api.schemas.common import MAX_ID
from api.schemas.keys import KeyCreate, KeyCreated, KeyList
from api.use_cases import keys

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=problems(401))

_LIMIT_REACHED = (
    "The caller already has the most active keys allowed",
    {
        "code": "key_limit_reached",
        "detail": "you already have 20 active API keys, the most allowed: revoke one (DELETE /v1/keys/{id}) "
        "before creating another",
    },
)
_NOT_FOUND = (
    "No such key, or it belongs to another user",
    {"code": "key_not_found", "detail": "key 3 not found"},
)


@router.get(
    "",
    response_model=KeyList,
    summary="List your API keys",
    description="Every key of the caller, revoked ones included (they stay for the audit trail), with when each "
    "was last used. Never the key itself: it is shown once, when it is created.",
)
async def list_keys(user: CurrentUser, session: SessionDep) -> KeyList:
    return await keys.list_keys(session, user_id=user.user_id)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    summary="Create an API key",
    description="Returns the new key in `key`, **shown only in this response**: only its sha256 is stored, so "
    "it can never be shown again. A user may hold a limited number of active keys (20 by default, setting "
    "`CHRONOGRAM_API_MAX_ACTIVE_KEYS_PER_USER`); beyond that this answers 409 `key_limit_reached` until one is "
    "revoked.",
    responses=problems(400, 409, 415, 422, examples={409: _LIMIT_REACHED}),
)
async def create_key(
    body: KeyCreate, user: CurrentUser, services: ServicesDep, session: SessionDep, response: Response
) -> KeyCreated:
    # The key must not be kept by any cache between here and the client.
    response.headers["Cache-Control"] = "no-store"
    return await keys.create_key(services, session, user_id=user.user_id, name=body.name)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    description="The key is refused (401) from the next request on, including when it is the key sending this "
    "one. It stays listed, with `revoked_at`. Revoking a revoked key changes nothing and answers 204 again.",
    responses=problems(404, examples={404: _NOT_FOUND}),
)
async def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, session: SessionDep
) -> Response:
    await keys.revoke_key(session, user_id=user.user_id, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
