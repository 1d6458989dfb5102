"""What every Instagram activity reads first (the post with its account's id, name and decrypted token, in one
query) and the single-column writes after a Graph call, on a real SQLite database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from minio import Minio
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.exceptions import ApplicationError

from activities.instagram import InstagramActivities
from activities.publish_records import Column, PublishRecords
from chronogram.contracts import ErrorType
from chronogram.crypto import TokenCipher
from chronogram.enums import PostStatus, PostType
from chronogram.instagram import GraphClient
from chronogram.models import Post
from tests.support.factories import PostSeed, Seeder

TOKEN = "EAAB-not-a-real-token"


@pytest.fixture
def seeded(sqlite_engine: Engine, cipher: TokenCipher) -> tuple[InstagramActivities, Seeder, int]:
    # Neither object storage nor the Graph API is reached by what these tests call.
    storage = Minio("127.0.0.1:9", secure=False)
    seeder = Seeder(engine=sqlite_engine, storage=storage, bucket="unused", cipher=cipher)
    account_id = seeder.account(ig_user_id="17841400000000042", username="context_shop", token=TOKEN)
    activities = InstagramActivities(cast(GraphClient, None), sqlite_engine, storage, "unused", cipher)
    return activities, seeder, account_id


def test_reads_the_post_and_its_account_together(seeded: tuple[InstagramActivities, Seeder, int]) -> None:
    activities, seeder, account_id = seeded
    publish_at = datetime.now(UTC) + timedelta(hours=1)
    post_id = seeder.post(
        account_id, PostSeed(PostType.IMAGE, [], publish_at, caption="hello", first_comment="hi")
    )

    context = activities._load_context(post_id, with_media=False)

    assert (context.post.id, context.post.caption, context.post.first_comment) == (post_id, "hello", "hi")
    assert context.post.status is PostStatus.SCHEDULED and context.post.type is PostType.IMAGE
    assert (context.ig_user_id, context.username) == ("17841400000000042", "context_shop")
    assert context.token.get_secret_value() == TOKEN and TOKEN not in repr(context)
    assert context.items == []


def test_a_deleted_post_is_not_found_and_not_retried(seeded: tuple[InstagramActivities, Seeder, int]) -> None:
    activities, _seeder, _account_id = seeded
    with pytest.raises(ApplicationError) as raised:
        activities._load_context(987654, with_media=False)
    assert raised.value.type == ErrorType.POST_NOT_FOUND and raised.value.non_retryable


async def test_the_records_of_a_publish_change_only_their_columns_together(
    seeded: tuple[InstagramActivities, Seeder, int],
) -> None:
    """Calls about to be sent and what Instagram answered, from many activities at once, are committed by group
    commit: each caller returns once its own record is in; a call for a post that is gone is refused."""
    _activities, seeder, account_id = seeded
    publish_at = datetime.now(UTC) + timedelta(hours=1)
    post_id = seeder.post(account_id, PostSeed(PostType.IMAGE, [], publish_at, caption="kept"))
    other_id = seeder.post(account_id, PostSeed(PostType.IMAGE, [], publish_at, caption="other"))
    burst = [seeder.post(account_id, PostSeed(PostType.IMAGE, [], publish_at)) for _ in range(20)]
    records = PublishRecords(seeder.engine)

    await asyncio.gather(
        records.published(post_id, Column.MEDIA_ID, "18000000000000001"),
        records.published(post_id, Column.PERMALINK, "https://instagram.test/p/abc/"),
        *(records.call_about_to_be_sent(each, f"run-{each}/1") for each in burst),
    )
    with pytest.raises(ApplicationError) as gone:
        await records.call_about_to_be_sent(987654, "run-x/1")
    assert gone.value.type == ErrorType.POST_NOT_FOUND

    with Session(seeder.engine) as session:
        post, other = session.get(Post, post_id), session.get(Post, other_id)
        assert post is not None and other is not None
        assert (post.ig_media_id, post.permalink) == ("18000000000000001", "https://instagram.test/p/abc/")
        assert post.caption == "kept" and post.status is PostStatus.SCHEDULED
        assert (other.ig_media_id, other.permalink, other.last_publish_call) == (None, None, None)
        calls = {each: session.get(Post, each).last_publish_call for each in burst}  # type: ignore[union-attr]
    assert calls == {each: f"run-{each}/1" for each in burst}
