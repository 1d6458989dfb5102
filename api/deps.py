"""Typed dependencies: everything a route needs comes from the app's lifespan, never from module globals.

Authentication and "load it or 404" live here, once: a route that takes ``OwnedPostDep`` can only ever see a
post of the calling user, and another user's post answers exactly like a post that does not exist. So does "only
while failed": a route that takes ``FailedPostDep`` answers 409 with the post's current status before anything else
is done (the routes a change can still reach take ``api.use_cases.post_changes.changeable_post``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from minio import Minio
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.crud.owned import Owned, get_owned
from api.crud.users import Principal, authenticate
from api.errors import ApiError, not_found, post_not_in_status
from api.schemas.common import MAX_ID
from api.start_records import StartRecorder
from api.upload_slots import UploadSlots
from chronogram.crypto import TokenCipher
from chronogram.enums import PostStatus
from chronogram.instagram import GraphClient
from chronogram.models import InstagramAccount, MediaAsset, Post, Template, WebhookEndpoint
from chronogram.settings import Settings


@dataclass(frozen=True)
class AppServices:
    settings: Settings
    temporal: Client
    engine: Engine
    storage: Minio
    graph: GraphClient
    cipher: TokenCipher
    start_records: StartRecorder


# Async where they need not wait on I/O: FastAPI runs a sync dependency in the thread pool, a round trip each.


async def get_services(request: Request) -> AppServices:
    services: AppServices = request.app.state.services
    return services


ServicesDep = Annotated[AppServices, Depends(get_services)]


async def get_session(services: ServicesDep) -> AsyncIterator[Session]:
    # expire_on_commit=False: rows stay readable after a commit, when the response is built from them.
    session = Session(services.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():
            # Closing rolls back the connection the transaction holds: I/O, so in a thread; shielded, so that a
            # cancelled request still returns the connection to the pool.
            await asyncio.shield(run_in_threadpool(session.close))
        else:
            session.close()


# Scope "function": the session is closed as soon as the route returns, before the response is sent, so that a
# client slow to read its answer holds no connection. (FastAPI reads a JSON body before it solves dependencies,
# so no session exists while a body streams in; the upload route reads its body itself, and takes no session.)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_upload_slots(request: Request) -> UploadSlots:
    slots: UploadSlots = request.app.state.upload_slots
    return slots


UploadSlotsDep = Annotated[UploadSlots, Depends(get_upload_slots)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `python -m api.admin create-user NAME` (or printed by `make dev`).",
)


async def get_current_user(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    challenge = {"WWW-Authenticate": 'Bearer realm="chronogram"'}
    if credentials is None or not credentials.credentials:
        raise ApiError(
            401, "missing_api_key", "send an API key as 'Authorization: Bearer <key>'", headers=challenge
        )
    principal = await run_in_threadpool(_authenticate, services.engine, credentials.credentials)
    if principal is None:
        raise ApiError(401, "invalid_api_key", "the API key is unknown or revoked", headers=challenge)
    request.state.user_id = principal.user_id  # for the access log line (api/telemetry.py)
    return principal


def _authenticate(engine: Engine, key: str) -> Principal | None:
    # A connection of its own, closed at once: it is back in the pool before the request goes on (to read an
    # upload's body, say), not held for the whole request.
    with engine.connect() as connection:
        return authenticate(connection, key=key)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def get_owned_account(
    account_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, session: SessionDep
) -> InstagramAccount:
    return _owned_or_404(session, InstagramAccount, "account", user, account_id)


def get_owned_media(
    media_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, session: SessionDep
) -> MediaAsset:
    return _owned_or_404(session, MediaAsset, "media", user, media_id)


def get_owned_post(
    post_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, session: SessionDep
) -> Post:
    return _owned_or_404(session, Post, "post", user, post_id)


def get_owned_webhook(
    webhook_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, session: SessionDep
) -> WebhookEndpoint:
    return _owned_or_404(session, WebhookEndpoint, "webhook", user, webhook_id)


def get_owned_template(
    template_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, session: SessionDep
) -> Template:
    return _owned_or_404(session, Template, "template", user, template_id)


def _owned_or_404(session: Session, model: type[Owned], what: str, user: Principal, row_id: int) -> Owned:
    row = get_owned(session, model, owner_id=user.user_id, row_id=row_id)
    # Ends the read's transaction, so its connection returns to the pool while the route waits on something else
    # (Temporal, the Graph API); the row stays readable (expire_on_commit=False) and the session reconnects when
    # used again.
    session.commit()
    if row is None:
        raise not_found(what, row_id)
    return row


OwnedAccountDep = Annotated[InstagramAccount, Depends(get_owned_account)]
OwnedMediaDep = Annotated[MediaAsset, Depends(get_owned_media)]
OwnedPostDep = Annotated[Post, Depends(get_owned_post)]
OwnedWebhookDep = Annotated[WebhookEndpoint, Depends(get_owned_webhook)]
OwnedTemplateDep = Annotated[Template, Depends(get_owned_template)]


async def get_failed_post(post: OwnedPostDep) -> Post:
    assert post.id is not None
    if post.status is not PostStatus.FAILED:
        raise post_not_in_status(post.id, post.status, expected=PostStatus.FAILED)
    return post


FailedPostDep = Annotated[Post, Depends(get_failed_post)]
