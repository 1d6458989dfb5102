"""Scheduling a post: check it against the rules, record it (with its "created" event), start its workflow.

The one way a post is created: POST /v1/posts and ``scripts/schedule_post.py`` both call ``create_post``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api import temporal_gateway
from api.crud import posts as crud
from api.crud.accounts import AccountDisconnecting
from api.deps import AppServices
from api.errors import ApiError, account_disconnecting
from api.schemas.posts import PostCreate
from api.use_cases import queues
from api.use_cases.post_checks import checked_new_post
from chronogram.models import Post, PostMedia
from chronogram.settings import Settings


@dataclass(frozen=True)
class CreatedPost:
    """The post a creation answers with (on an idempotent replay, the first request's) and its media in order."""

    post: Post
    media: list[PostMedia]
    replayed: bool
    # False when the workflow could not be started now: the post is recorded, and the reconciler will start it.
    workflow_started: bool


async def create_post(
    services: AppServices,
    session: Session | None,
    body: PostCreate,
    *,
    owner_id: int,
    idempotency_key: str | None = None,
) -> CreatedPost:
    """Check ``body`` (422 with every violation), record the post and start its workflow. With an idempotency
    key, a repeated request answers with the post the first one created. ``session`` None: a session of its own,
    opened and closed in the thread that does the database work (POST /v1/posts: one trip to the thread pool, and
    no session dependency to set up and tear down on the event loop)."""
    fingerprint = _fingerprint(body) if idempotency_key is not None else None
    now = datetime.now(UTC)
    try:
        created = await run_in_threadpool(
            _create_in_session,
            services.engine if session is None else session,
            body,
            owner_id,
            services.settings,
            now,
            idempotency_key,
            fingerprint,
        )
    except crud.IdempotencyKeyReused:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request; use a new key for a new post",
            field="Idempotency-Key",
        ) from None
    except crud.IdempotencyKeyInProgress:
        raise ApiError(
            409, "idempotency_key_in_progress", "the first request with this key is still running"
        ) from None
    except AccountDisconnecting as refused:
        raise account_disconnecting(refused.account_id) from None
    except crud.ReferenceGone:
        raise ApiError(
            409, "reference_gone", "the account or a media was deleted meanwhile; check and retry"
        ) from None
    started = True
    if created.start is not None:
        # On a replay too: if the first request died before starting the workflow, this starts it.
        started = await temporal_gateway.start_or_leave_to_reconciler(
            services, created.start, record_later=True
        )
    return CreatedPost(
        post=created.post, media=created.media, replayed=created.replayed, workflow_started=started
    )


def _create_in_session(
    session_or_engine: Session | Engine,
    body: PostCreate,
    owner_id: int,
    settings: Settings,
    now: datetime,
    idempotency_key: str | None,
    fingerprint: str | None,
) -> crud.Created:
    if isinstance(session_or_engine, Session):
        return _create(session_or_engine, body, owner_id, settings, now, idempotency_key, fingerprint)
    # expire_on_commit=False: the answer is built from the rows after the commit, and after the close.
    with Session(session_or_engine, expire_on_commit=False) as session:
        return _create(session, body, owner_id, settings, now, idempotency_key, fingerprint)


def _create(
    session: Session,
    body: PostCreate,
    owner_id: int,
    settings: Settings,
    now: datetime,
    idempotency_key: str | None,
    fingerprint: str | None,
) -> crud.Created:
    """Everything a creation asks of the database, in one trip to the thread pool."""
    created = None
    if idempotency_key is not None and fingerprint is not None:
        # A replay is answered before validation: the first request was valid, and a retry that comes late
        # (its publish_at now past) must still get the first result, not an error.
        created = crud.find_replay(session, user_id=owner_id, key=idempotency_key, fingerprint=fingerprint)
    if created is None and body.queue:
        created = queues.create_queued(
            session,
            body,
            owner_id=owner_id,
            settings=settings,
            now=now,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
    if created is None:
        new = checked_new_post(session, body, owner_id=owner_id, settings=settings, now=now)
        created = crud.create_post(session, new=new, idempotency_key=idempotency_key, fingerprint=fingerprint)
    # End the read transaction (a replay's), so that the request holds no pooled connection while it awaits
    # Temporal.
    session.commit()
    return created


# Fields added to PostCreate after release: left out of the fingerprint while not sent, so that a request retried
# across the upgrade still matches the key its first attempt recorded.
_ADDED_FIELDS = frozenset({"template_id", "variables", "draft"})


def _fingerprint(body: PostCreate) -> str:
    # Fields added since keys were first stored are left out while unsent (queue also while false): the
    # fingerprints of requests from before they existed stay the same.
    unsent = set(_ADDED_FIELDS - body.model_fields_set)
    if not body.queue:
        unsent.add("queue")
    canonical = json.dumps(
        body.model_dump(mode="json", exclude=unsent), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
