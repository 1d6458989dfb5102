"""The tables round-trip real rows on SQLite and on PostgreSQL (built from schema.sql), and enforce their rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, text, tuple_
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, col, select

from chronogram.crypto import TokenCipher
from chronogram.models import (
    ApiKey,
    EventKind,
    IdempotencyKey,
    InstagramAccount,
    MediaAsset,
    Post,
    PostEvent,
    PostMedia,
    PostStatus,
    PostType,
    User,
)
from tests.support.factories import ACCESS_TOKEN, add_account, add_image, add_post, add_user, id_of, ig_id

PUBLISH_AT = datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))


def test_a_published_carousel_round_trips(engine: Engine, cipher: TokenCipher) -> None:
    parent, children = ig_id(), [ig_id(), ig_id(), ig_id()]
    media_id, comment_id = ig_id(), ig_id()
    published_at = datetime(2026, 12, 1, 7, 31, 5, 123456, tzinfo=UTC)
    run = uuid.uuid4().hex
    with Session(engine) as session:
        user = add_user(session)
        account = add_account(session, user, cipher)
        images = [add_image(session, user, name) for name in ("first", "second", "third")]
        post = Post(
            owner_id=id_of(user),
            account_id=id_of(account),
            type=PostType.CAROUSEL,
            caption="Winter drop ❄️ #chronogram @friend",
            first_comment="#more #tags",
            location_id="110585832294254",
            publish_at=PUBLISH_AT,
            status=PostStatus.PUBLISHED,
            ig_container_id=parent,
            ig_media_id=media_id,
            ig_first_comment_id=comment_id,
            permalink="https://www.instagram.com/p/ABC123/",
            published_at=published_at,
        )
        session.add(post)
        session.flush()
        post_id = id_of(post)
        # Inserted out of order: the position, not insertion order, is the carousel order.
        for position in (2, 0, 1):
            session.add(
                PostMedia(
                    post_id=post_id,
                    position=position,
                    media_id=id_of(images[position]),
                    ig_container_id=children[position],
                    alt_text=f"slide {position}",
                    user_tags=[{"username": "friend", "x": 0.25, "y": 0.75}] if position == 0 else [],
                )
            )
        events = [
            PostEvent(
                kind=EventKind.TRANSITION,
                to_status=PostStatus.SCHEDULED,
                detail={"message": "scheduled", "publish_at": PUBLISH_AT.isoformat()},
            ),
            PostEvent(
                kind=EventKind.TRANSITION, from_status=PostStatus.SCHEDULED, to_status=PostStatus.PUBLISHING
            ),
            PostEvent(kind=EventKind.ATTEMPT, attempt=1, detail={"children": children, "parent": parent}),
            PostEvent(
                kind=EventKind.ERROR,
                attempt=1,
                error_code="4/2207051",
                error_message="Application request limit reached",
            ),
            PostEvent(
                kind=EventKind.TRANSITION, from_status=PostStatus.PUBLISHING, to_status=PostStatus.PUBLISHED
            ),
        ]
        for minutes_before, event in zip(range(len(events), 0, -1), events, strict=True):
            event.post_id = post_id
            event.occurred_at = published_at - timedelta(minutes=minutes_before)
            event.dedupe_key = f"{run}:{minutes_before}"
            session.add(event)
        session.commit()
        user_id, account_id = id_of(user), id_of(account)
        image_ids = [id_of(image) for image in images]

    with Session(engine) as session:
        stored = session.get_one(Post, post_id)
        assert stored.type is PostType.CAROUSEL
        assert stored.status is PostStatus.PUBLISHED
        assert (stored.owner_id, stored.account_id) == (user_id, account_id)
        assert stored.caption == "Winter drop ❄️ #chronogram @friend"
        assert (stored.first_comment, stored.location_id) == ("#more #tags", "110585832294254")
        assert (stored.ig_container_id, stored.ig_media_id, stored.ig_first_comment_id) == (
            parent,
            media_id,
            comment_id,
        )
        assert stored.permalink == "https://www.instagram.com/p/ABC123/"
        assert stored.user_tags == [] and stored.reel_options is None
        assert stored.publish_at == PUBLISH_AT and stored.publish_at.tzinfo is UTC
        assert stored.published_at == published_at
        assert stored.created_at.tzinfo is UTC and stored.updated_at.tzinfo is UTC

        items = session.exec(
            select(PostMedia).where(PostMedia.post_id == post_id).order_by(col(PostMedia.position))
        ).all()
        assert [item.media_id for item in items] == image_ids
        assert [item.ig_container_id for item in items] == children
        assert items[0].user_tags == [{"username": "friend", "x": 0.25, "y": 0.75}]
        assert [item.alt_text for item in items] == ["slide 0", "slide 1", "slide 2"]

        stored_events = session.exec(
            select(PostEvent)
            .where(PostEvent.post_id == post_id)
            .order_by(col(PostEvent.occurred_at), col(PostEvent.id))
        ).all()
        assert [(e.kind, e.from_status, e.to_status) for e in stored_events] == [
            (EventKind.TRANSITION, None, PostStatus.SCHEDULED),
            (EventKind.TRANSITION, PostStatus.SCHEDULED, PostStatus.PUBLISHING),
            (EventKind.ATTEMPT, None, None),
            (EventKind.ERROR, None, None),
            (EventKind.TRANSITION, PostStatus.PUBLISHING, PostStatus.PUBLISHED),
        ]
        assert stored_events[0].detail == {"message": "scheduled", "publish_at": PUBLISH_AT.isoformat()}
        assert stored_events[2].detail == {"children": children, "parent": parent}
        assert (stored_events[3].error_code, stored_events[3].attempt) == ("4/2207051", 1)
        assert stored_events[3].error_message == "Application request limit reached"
        assert stored_events[-1].occurred_at == published_at - timedelta(minutes=1)
        assert all(event.occurred_at.tzinfo is UTC for event in stored_events)

        account_row = session.get_one(InstagramAccount, account_id)
        assert account_row.access_token(cipher).get_secret_value() == ACCESS_TOKEN
        assert account_row.token_expires_at == datetime(2027, 1, 30, 12, 0, tzinfo=UTC)
        stored_ciphertext = session.scalar(
            text("SELECT access_token_ciphertext FROM instagram_accounts WHERE id = :id"), {"id": account_id}
        )
        assert ACCESS_TOKEN not in stored_ciphertext


def test_reel_options_and_user_tags_round_trip(engine: Engine, cipher: TokenCipher) -> None:
    options = {
        "share_to_feed": True,
        "thumb_offset_ms": 1500,
        "collaborators": ["friend_one", "friend_two"],
        "audio_name": "Original audio",
    }
    with Session(engine) as session:
        account = add_account(session, add_user(session), cipher)
        post = add_post(
            session,
            account,
            PUBLISH_AT,
            PostType.REELS,
            reel_options=options,
            user_tags=[{"username": "friend_one"}],
        )
        session.commit()
        post_id = id_of(post)
    with Session(engine) as session:
        stored = session.get_one(Post, post_id)
        assert stored.reel_options == options
        assert stored.user_tags == [{"username": "friend_one"}]
        assert stored.status is PostStatus.SCHEDULED


def test_keyset_pagination_by_publish_time_then_id(engine: Engine, cipher: TokenCipher) -> None:
    """The order the listing indexes serve; ties on publish_at are broken by id, so no page repeats a row."""
    with Session(engine) as session:
        account = add_account(session, add_user(session), cipher)
        other = add_account(session, add_user(session), cipher)
        times = [PUBLISH_AT + timedelta(hours=h) for h in (3, 1, 1, 2, 1)]
        expected = sorted((t, id_of(add_post(session, account, t))) for t in times)
        add_post(session, other, PUBLISH_AT)
        session.commit()

        pages: list[list[int]] = []
        cursor: tuple[datetime, int] | None = None
        while True:
            query = select(Post).where(Post.account_id == id_of(account))
            if cursor is not None:
                query = query.where(tuple_(col(Post.publish_at), col(Post.id)) > tuple_(*cursor))
            page = session.exec(query.order_by(col(Post.publish_at), col(Post.id)).limit(2)).all()
            if not page:
                break
            pages.append([id_of(post) for post in page])
            cursor = (page[-1].publish_at, id_of(page[-1]))
    assert [post_id for page in pages for post_id in page] == [post_id for _, post_id in expected]
    assert [len(page) for page in pages] == [2, 2, 1]


def test_api_keys_and_idempotency_keys_round_trip(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        user = add_user(session)
        user_id = id_of(user)
        post = add_post(session, add_account(session, user, cipher), PUBLISH_AT)
        session.add(ApiKey(user_id=user_id, name="ci", prefix="cg_live_ab", key_hash="a" * 64))
        session.add(
            IdempotencyKey(user_id=user_id, key="req-1", request_fingerprint="b" * 64, post_id=id_of(post))
        )
        session.add(IdempotencyKey(user_id=user_id, key="req-2", request_fingerprint="c" * 64))
        session.commit()

    with Session(engine) as session:
        key = session.exec(select(ApiKey).where(ApiKey.user_id == user_id)).one()
        assert (key.prefix, key.revoked_at, key.created_at.tzinfo) == ("cg_live_ab", None, UTC)
        assert "a" * 64 not in repr(key)
        pending = session.get_one(IdempotencyKey, (user_id, "req-2"))
        assert pending.post_id is None
        session.add(IdempotencyKey(user_id=user_id, key="req-1", request_fingerprint="d" * 64))
        with pytest.raises(IntegrityError):
            session.commit()


def test_deleting_a_user_deletes_everything_they_own(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        user = add_user(session)
        account = add_account(session, user, cipher)
        image = add_image(session, user)
        post = add_post(session, account, PUBLISH_AT, media=[image])
        user_id, account_id, post_id, image_id = id_of(user), id_of(account), id_of(post), id_of(image)
        session.add(PostEvent(post_id=post_id, kind=EventKind.TRANSITION, to_status=PostStatus.SCHEDULED))
        session.add(ApiKey(user_id=user_id, prefix="cg_abcd", key_hash="e" * 64))
        session.add(IdempotencyKey(user_id=user_id, key="k", request_fingerprint="f" * 64, post_id=post_id))
        session.commit()
        session.delete(user)
        session.commit()
        for model, column, value in (
            (InstagramAccount, InstagramAccount.id, account_id),
            (Post, Post.id, post_id),
            (MediaAsset, MediaAsset.id, image_id),
            (PostMedia, PostMedia.post_id, post_id),
            (PostEvent, PostEvent.post_id, post_id),
            (ApiKey, ApiKey.user_id, user_id),
            (IdempotencyKey, IdempotencyKey.user_id, user_id),
        ):
            count = session.scalar(select(func.count()).select_from(model).where(column == value))
            assert count == 0, model.__name__


def test_an_account_or_asset_in_use_cannot_be_deleted_alone(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        user = add_user(session)
        account = add_account(session, user, cipher)
        image = add_image(session, user)
        add_post(session, account, PUBLISH_AT, media=[image])
        session.commit()
        for row in (account, image):
            session.delete(row)
            with pytest.raises(IntegrityError):
                session.commit()
            session.rollback()


def test_a_post_cannot_use_another_users_account(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        someone_else = add_user(session)
        account = add_account(session, add_user(session), cipher)
        session.add(
            Post(
                owner_id=id_of(someone_else),
                account_id=id_of(account),
                type=PostType.IMAGE,
                publish_at=PUBLISH_AT,
            )
        )
        with pytest.raises(IntegrityError):
            session.commit()


def test_post_events_are_append_only(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        post = add_post(session, add_account(session, add_user(session), cipher), PUBLISH_AT)
        event = PostEvent(post_id=id_of(post), kind=EventKind.ERROR, error_message="boom")
        session.add(event)
        session.commit()
        event.error_message = "nothing happened"
        with pytest.raises(IntegrityError, match="append-only"):
            session.commit()


def test_a_retried_event_is_recorded_once(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        post = add_post(session, add_account(session, add_user(session), cipher), PUBLISH_AT)
        session.commit()
        insert = text(
            "INSERT INTO post_events (post_id, kind, error_message, dedupe_key) "
            "VALUES (:post_id, 'error', 'x', :key) ON CONFLICT (dedupe_key) DO NOTHING"
        )
        key = f"run-{uuid.uuid4().hex}:1"
        for _ in range(2):
            session.execute(insert, {"post_id": id_of(post), "key": key})
        session.commit()
        count = session.scalar(
            select(func.count()).select_from(PostEvent).where(PostEvent.post_id == id_of(post))
        )
        assert count == 1


@pytest.mark.parametrize(
    ("column", "value"),
    [("status", "done"), ("status", "SCHEDULED"), ("type", "VIDEO"), ("type", "image")],
)
def test_the_database_refuses_an_unknown_status_or_type(
    engine: Engine, cipher: TokenCipher, column: str, value: str
) -> None:
    """Raw SQL on purpose: the ORM would refuse these values before the database sees them."""
    with Session(engine) as session:
        account = add_account(session, add_user(session), cipher)
        session.commit()
        row: dict[str, object] = {
            "owner_id": account.owner_id,
            "account_id": id_of(account),
            "type": "IMAGE",
            "status": "scheduled",
        }
        row[column] = value
        insert = text(
            "INSERT INTO posts (owner_id, account_id, type, status, publish_at) "
            "VALUES (:owner_id, :account_id, :type, :status, CURRENT_TIMESTAMP)"
        )
        with pytest.raises(IntegrityError, match=f"posts_{column}_check"):
            session.execute(insert, row)


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        ("UPDATE posts SET caption = :long WHERE id = :id", "posts_caption_check"),
        ("UPDATE posts SET status = 'published' WHERE id = :id", "posts_published_at_check"),
        ("UPDATE posts SET reel_options = '{}' WHERE id = :id", "posts_reel_options_check"),
        (
            "UPDATE instagram_accounts SET access_token_ciphertext = 'IGAA-plain' WHERE id = :account",
            "instagram_accounts_access_token_ciphertext_check",
        ),
        (
            "INSERT INTO post_media (post_id, position, media_id) VALUES (:id, 10, :media)",
            "post_media_position_check",
        ),
        ("INSERT INTO post_events (post_id, kind) VALUES (:id, 'note')", "post_events_kind_check"),
        (
            "INSERT INTO post_events (post_id, kind, error_message, to_status) VALUES (:id, 'error', 'x', 'failed')",
            "post_events_transition_check",
        ),
        ("INSERT INTO post_events (post_id, kind) VALUES (:id, 'error')", "post_events_error_check"),
    ],
)
def test_the_database_refuses_what_instagram_or_the_lifecycle_would(
    engine: Engine, cipher: TokenCipher, statement: str, constraint: str
) -> None:
    with Session(engine) as session:
        user = add_user(session)
        account = add_account(session, user, cipher)
        post = add_post(session, account, PUBLISH_AT)
        media = add_image(session, user)
        session.commit()
        values = {"id": id_of(post), "account": id_of(account), "media": id_of(media), "long": "x" * 2201}
        with pytest.raises(IntegrityError, match=constraint):
            session.execute(text(statement), values)


def test_the_orm_refuses_a_value_outside_the_enum(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        account = add_account(session, add_user(session), cipher)
        bogus: PostType = "VIDEO"  # type: ignore[assignment]
        session.add(
            Post(owner_id=account.owner_id, account_id=id_of(account), type=bogus, publish_at=PUBLISH_AT)
        )
        with pytest.raises(StatementError, match="'VIDEO' is not a valid PostType"):
            session.commit()


def test_repr_never_shows_the_token_or_its_ciphertext(cipher: TokenCipher) -> None:
    account = InstagramAccount(
        owner_id=1, ig_user_id="17841405822304914", username="someone", access_token_ciphertext=""
    )
    account.set_access_token(cipher, ACCESS_TOKEN)
    for rendering in (repr(account), str(account), repr(account.access_token(cipher))):
        assert ACCESS_TOKEN not in rendering
        assert account.access_token_ciphertext not in rendering
    assert account.access_token(cipher).get_secret_value() == ACCESS_TOKEN


def test_user_email_must_be_lower_case(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(User(email="Someone@Example.com"))
        with pytest.raises(IntegrityError, match="users_email_check"):
            session.commit()
