"""The persistence layer on PostgreSQL (production's database), not only on SQLite: the same queries, the same
answers. Small data; the scale test runs on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from api.crud import accounts as account_crud
from api.crud import keys as key_crud
from api.crud import media as media_crud
from api.crud import posts as crud
from api.crud import workflow_starts
from api.crud.users import authenticate, create_user
from chronogram import lifecycle
from chronogram.crypto import TokenCipher
from chronogram.enums import PostStatus, PostType
from chronogram.models import ApiKey, Post
from tests.support.db import NewDatabase, schema_engine

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg(new_pg_database: NewDatabase) -> Iterator[Engine]:
    with schema_engine(new_pg_database()) as engine:
        yield engine


def test_the_api_persistence_on_postgresql(pg: Engine) -> None:
    cipher = TokenCipher([TokenCipher.generate_key()])
    with Session(pg, expire_on_commit=False) as session:
        user, key = create_user(session, name="pg@example.com")
        assert authenticate(session, key=key) == user
        first = account_crud.connect_account(
            session,
            owner_id=user.user_id,
            ig_user_id="1234",
            username="pg_shop",
            token=account_crud.ConnectedToken(cipher.encrypt("t"), None),
        )
        account = first.account
        assert first.created and account.id is not None
        second = account_crud.connect_account(
            session,
            owner_id=user.user_id,
            ig_user_id="1234",
            username="pg_shop2",
            token=account_crud.ConnectedToken(cipher.encrypt("u"), None),
        )
        again = second.account
        assert not second.created and again.id == account.id
        media = media_crud.add_media(
            session,
            owner_id=user.user_id,
            object_key=f"uploads/{user.user_id}/a.jpg",
            content_type="image/jpeg",
            size_bytes=10,
            sha256="a" * 64,
            width=1080,
            height=1080,
        )
        assert media.id is not None

        base = datetime(2027, 1, 1, tzinfo=UTC)
        ids = []
        for index in range(12):
            new = crud.NewPost(
                owner_id=user.user_id,
                account_id=account.id,
                account_username="pg_shop2",
                post_type=PostType.CAROUSEL if index == 0 else PostType.IMAGE,
                media_ids=[media.id, media.id] if index == 0 else [media.id],
                publish_at=base + timedelta(hours=index % 4),
                caption=f"post {index}",
                user_tags=[{"username": "a", "x": 0.5, "y": 0.5}],
                items=[{"alt_text": "one", "user_tags": []}, {"alt_text": None, "user_tags": []}]
                if index == 0
                else None,
            )
            created_post = crud.create_post(
                session, new=new, idempotency_key=f"k{index}", fingerprint="f" * 64
            )
            ids.append(created_post.post_id)
        replay = crud.create_post(session, new=new, idempotency_key="k11", fingerprint="f" * 64)
        assert (replay.post_id, replay.replayed) == (ids[-1], True)
        with pytest.raises(crud.IdempotencyKeyReused):
            crud.create_post(session, new=new, idempotency_key="k11", fingerprint="e" * 64)

        session.execute(update(Post).where(col(Post.id).in_(ids[:3])).values(status=PostStatus.CANCELLED))
        session.commit()
        expected = sorted(ids, key=lambda post_id: (base + timedelta(hours=ids.index(post_id) % 4), post_id))
        for filters in ({}, {"account_id": account.id}):
            seen: list[int] = []
            after = None
            while True:
                page = crud.list_posts(session, owner_id=user.user_id, limit=5, after=after, **filters)  # type: ignore[arg-type]
                # The API's page reads the same statement as plain rows: the same posts, with the same values.
                rows = crud.list_post_rows(session, owner_id=user.user_id, limit=5, after=after, **filters)  # type: ignore[arg-type]
                assert [(row.id, row.publish_at, row.status, row.user_tags) for row in rows] == [
                    (post.id, post.publish_at, post.status, post.user_tags) for post in page
                ]
                seen += [post.id or 0 for post in page]
                if len(page) < 5:
                    break
                after = (page[-1].publish_at, page[-1].id or 0)
            assert seen == expected, filters
        cancelled = crud.list_posts(session, owner_id=user.user_id, limit=50, status=PostStatus.CANCELLED)
        assert sorted(post.id or 0 for post in cancelled) == sorted(ids[:3])

        pending = workflow_starts.posts_awaiting_workflow(
            session, updated_before=datetime.now(UTC), limit=100
        )
        assert {item.post_id for item in pending} == set(ids[3:])
        intents = {item.post_id: item.intent_id for item in pending}
        started = [
            workflow_starts.StartedRun(
                post_id=post_id, run_id="run-1", intent_id=intents[post_id], started_at=datetime.now(UTC)
            )
            for post_id in (ids[3], ids[3], ids[6])
        ]
        workflow_starts.record_workflow_starts(session, started)
        workflow_starts.record_workflow_starts(session, started[:1])
        pending = workflow_starts.posts_awaiting_workflow(
            session, updated_before=datetime.now(UTC), limit=100
        )
        assert {ids[3], ids[6]}.isdisjoint(item.post_id for item in pending)

        assert crud.update_content(session, post_id=ids[4], values={"caption": "edited"}, items=None)
        assert not crud.update_content(session, post_id=ids[0], values={"caption": "x"}, items=None)
        # A container recorded since the route checked: its content is fixed, and the edit writes nothing.
        for post_id, position in ((ids[7], None), (ids[8], 0)):
            lifecycle.record_container(
                session.connection(), post_id=post_id, position=position, container_id=f"c{post_id}"
            )
            session.commit()
            assert not crud.update_content(session, post_id=post_id, values={"caption": "late"}, items=None)
            assert session.get(Post, post_id, populate_existing=True).caption != "late"  # type: ignore[union-attr]
        session.execute(update(Post).where(col(Post.id) == ids[5]).values(status=PostStatus.FAILED))
        session.commit()
        assert crud.begin_retry(session, post_id=ids[5], publish_at=base)
        assert not crud.begin_retry(session, post_id=ids[5], publish_at=base)
        assert ids[5] in {
            item.post_id
            for item in workflow_starts.posts_awaiting_workflow(
                session, updated_before=datetime.now(UTC), limit=100
            )
        }
        # A record that waited while a retry scheduled the post again does not vouch for the retry's run.
        stale = workflow_starts.StartedRun(
            post_id=ids[5], run_id="run-1", intent_id=intents[ids[5]], started_at=datetime.now(UTC)
        )
        workflow_starts.record_workflow_starts(session, [stale])
        assert ids[5] in {
            item.post_id
            for item in workflow_starts.posts_awaiting_workflow(
                session, updated_before=datetime.now(UTC), limit=100
            )
        }
        assert [item.media_id for item in crud.media_of(session, post_ids=[ids[0]])[ids[0]]] == [
            media.id,
            media.id,
        ]
        assert [
            (row.media_id, row.position, row.alt_text)
            for row in crud.media_rows_of(session, post_ids=[ids[0]])[ids[0]]
        ] == [(media.id, 0, "one"), (media.id, 1, None)]
        assert [e.detail["message"] for e in crud.events_of(session, post_id=ids[3]) if e.detail] == [
            "created",
            "workflow started",
        ]

        assert [post_id for post_id, _status in media_crud.delete_media(session, media_id=media.id)]
        assert account_crud.delete_account(session, account_id=account.id)  # scheduled posts keep it
        session.execute(
            update(Post).where(col(Post.account_id) == account.id).values(status=PostStatus.CANCELLED)
        )
        session.commit()
        assert media_crud.delete_media(session, media_id=media.id) == []
        assert account_crud.delete_account(session, account_id=account.id) == []
        assert account_crud.list_accounts(session, owner_id=user.user_id) == []


def test_api_keys_on_postgresql(pg: Engine) -> None:
    with Session(pg, expire_on_commit=False) as session:
        user, key = create_user(session, name="pg-keys@example.com")
        other, _ = create_user(session, name="pg-keys-other@example.com")
        [own] = key_crud.list_keys(session, user_id=user.user_id)
        assert own.last_used_at is None
        assert authenticate(session, key=key) == user
        used = session.exec(select(ApiKey.last_used_at).where(ApiKey.id == own.id)).one()
        assert used is not None
        assert authenticate(session, key=key) == user  # within the minute: not written again
        assert session.exec(select(ApiKey.last_used_at).where(ApiKey.id == own.id)).one() == used
        session.commit()

    def create(index: int) -> bool:
        with Session(pg) as own_session:
            try:
                key_crud.create_key(own_session, user_id=user.user_id, name=f"key {index}", max_active=5)
            except key_crud.KeyLimitReached:
                return False
            return True

    # Concurrent creations take turns on the user's row: one key exists, so four more fit under five.
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(create, range(12))) == [False] * 8 + [True] * 4

    with Session(pg, expire_on_commit=False) as session:
        keys = key_crud.list_keys(session, user_id=user.user_id)
        assert [row.id for row in keys] == sorted(row.id or 0 for row in keys) and len(keys) == 5
        assert key_crud.revoke_key(session, key_id=own.id or 0, user_id=other.user_id) is None
        revoked = key_crud.revoke_key(session, key_id=own.id or 0, user_id=user.user_id)
        assert revoked is not None and revoked.revoked_at is not None
        assert authenticate(session, key=key) is None
        again = key_crud.revoke_key(session, key_id=own.id or 0, user_id=None)
        assert again is not None and again.revoked_at == revoked.revoked_at
        row, _new = key_crud.create_key(session, user_id=user.user_id, name="after a revoke", max_active=5)
        assert row.id is not None and row.name == "after a revoke"


def test_a_disconnection_waits_for_a_post_being_recorded_on_postgresql(pg: Engine) -> None:
    # READ COMMITTED: without the locks, a post recorded while the disconnection begins would be seen by neither
    # side. The post holds the account (key-share) until it commits; the disconnection's lock waits for it, and a
    # post recorded after the mark sees the mark.
    cipher = TokenCipher([TokenCipher.generate_key()])
    with Session(pg, expire_on_commit=False) as setup:
        user, _key = create_user(setup, name="pg-disconnect@example.com")
        account = account_crud.connect_account(
            setup,
            owner_id=user.user_id,
            ig_user_id="98765",
            username="pg_disconnect",
            token=account_crud.ConnectedToken(cipher.encrypt("t"), None),
        ).account
    assert account.id is not None
    account_id = account.id
    with Session(pg) as recording, ThreadPoolExecutor(max_workers=1) as pool:
        assert not account_crud.is_disconnecting(recording, account_id=account_id)  # holds the account
        begun = pool.submit(
            lambda: account_crud.begin_disconnect(Session(pg), account_id=account_id, now=datetime.now(UTC))
        )
        with pytest.raises(TimeoutError):
            begun.result(timeout=0.5)  # waits for the post being recorded
        recording.commit()
        assert begun.result(timeout=10) == account_crud.DisconnectBegun(publishing_post_id=None)
    with Session(pg) as later:
        assert account_crud.is_disconnecting(later, account_id=account_id)
        later.commit()
        assert account_crud.begin_disconnect(later, account_id=account_id, now=datetime.now(UTC)).resumed
