"""crud.create_post on SQLite: what it answers is what it stored, a key returns the first post, and a reference
deleted under it leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from api.crud import posts as crud
from chronogram.crypto import TokenCipher
from chronogram.enums import EventKind, PostStatus, PostType
from chronogram.models import IdempotencyKey, Post, PostEvent, PostMedia, UserTag
from tests.support.factories import add_account, add_image, add_user, id_of

FINGERPRINT = "f" * 64


@pytest.fixture
def carousel(sqlite_engine: Engine, cipher: TokenCipher) -> crud.NewPost:
    with Session(sqlite_engine, expire_on_commit=False) as session:
        owner = add_user(session)
        account = add_account(session, owner, cipher)
        media_ids = [id_of(add_image(session, owner, name)) for name in ("first", "second")]
        session.commit()
    return crud.NewPost(
        owner_id=id_of(owner),
        account_id=id_of(account),
        account_username=account.username,
        post_type=PostType.CAROUSEL,
        media_ids=media_ids,
        publish_at=datetime(2027, 5, 1, 12, 30, tzinfo=UTC),
        caption="two #things",
        first_comment="more below",
        user_tags=[UserTag(username="friend", x=0.5, y=0.5)],
        items=[
            {"alt_text": "first"},
            {"alt_text": "second", "user_tags": [UserTag(username="b", x=0.1, y=0.2)]},
        ],
    )


def test_the_answer_is_what_was_stored(sqlite_engine: Engine, carousel: crud.NewPost) -> None:
    with Session(sqlite_engine) as session:
        created = crud.create_post(session, new=carousel, idempotency_key="k1", fingerprint=FINGERPRINT)
    assert not created.replayed and created.start is not None
    with Session(sqlite_engine) as session:
        stored = session.get(Post, created.post_id)
        assert stored is not None
        assert stored.model_dump() == created.post.model_dump()
        media = session.exec(
            select(PostMedia).where(PostMedia.post_id == created.post_id).order_by(col(PostMedia.position))
        ).all()
        assert [row.model_dump() for row in media] == [row.model_dump() for row in created.media]
        assert [row.alt_text for row in media] == ["first", "second"]
        assert media[1].user_tags == [UserTag(username="b", x=0.1, y=0.2)]
        (event,) = session.exec(select(PostEvent).where(PostEvent.post_id == created.post_id)).all()
        assert (event.kind, event.to_status, event.dedupe_key) == (
            EventKind.TRANSITION,
            PostStatus.SCHEDULED,
            f"created:{created.post_id}",
        )
        # The workflow start is recorded against this intent: the reconciler's bookkeeping depends on it.
        assert created.start.intent_id == event.id
        key = session.get(IdempotencyKey, (carousel.owner_id, "k1"))
        assert key is not None and key.post_id == created.post_id


def test_a_key_returns_the_first_post(sqlite_engine: Engine, carousel: crud.NewPost) -> None:
    with Session(sqlite_engine) as session:
        first = crud.create_post(session, new=carousel, idempotency_key="k2", fingerprint=FINGERPRINT)
    with Session(sqlite_engine) as session:
        again = crud.create_post(session, new=carousel, idempotency_key="k2", fingerprint=FINGERPRINT)
        assert again.replayed and again.post_id == first.post_id
        assert again.post.model_dump() == first.post.model_dump()
        assert session.exec(select(func.count()).select_from(Post)).one() == 1
        with pytest.raises(crud.IdempotencyKeyReused):
            crud.create_post(session, new=carousel, idempotency_key="k2", fingerprint="e" * 64)


def test_a_deleted_media_leaves_nothing_behind(sqlite_engine: Engine, carousel: crud.NewPost) -> None:
    gone = crud.NewPost(**{**carousel.__dict__, "media_ids": [carousel.media_ids[0], 999_999]})
    with Session(sqlite_engine) as session, pytest.raises(crud.ReferenceGone):
        crud.create_post(session, new=gone, idempotency_key="k3", fingerprint=FINGERPRINT)
    with Session(sqlite_engine) as session:
        for table in (Post, PostMedia, PostEvent, IdempotencyKey):
            assert session.exec(select(func.count()).select_from(table)).one() == 0, table.__name__
        # And the key is free for the corrected request.
        created = crud.create_post(session, new=carousel, idempotency_key="k3", fingerprint=FINGERPRINT)
        assert not created.replayed
