"""The first comment is never posted twice, even when the attempt that finds it is a first attempt: a post whose
earlier run commented and failed before storing the comment's id is run again by a new workflow, whose
``post_first_comment`` starts at attempt 1 on a media that already carries the comment. Calls are counted before
they are sent (posts.first_comment_calls): a post's first call is one request, with no search before it; a post
made before the count is searched like one whose call was sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import Session
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.instagram import InstagramActivities
from chronogram.contracts import FirstCommentResult, MediaRef
from chronogram.crypto import TokenCipher
from chronogram.db import make_engine
from chronogram.enums import PostType
from chronogram.instagram import GraphClient
from chronogram.models import Post
from chronogram.settings import Settings
from chronogram.storage import make_minio
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.engine.test_real_stack import only_published, publish
from tests.support.factories import PostSeed, Seeder
from tests.support.media import Upload

pytestmark = pytest.mark.usefixtures("in_process_worker")


async def _published_with_its_comment(
    client: Client, seeder: Seeder, admin: SandboxAdmin, account: tuple[SandboxAccount, int]
) -> tuple[int, str, dict[str, Any]]:
    """A post published by the real stack, its media id, and the one comment Instagram has on it."""
    seed = PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1080)], datetime.now(UTC) + timedelta(seconds=4))
    post_id, result = await publish(client, seeder, account, seed)
    [comment] = (await only_published(admin, account))["comments"]
    return post_id, result["media_id"], comment


async def test_a_first_comment_is_one_request_counted_before_it_is_sent(
    engine_client: Client,
    engine_settings: Settings,
    seeder: Seeder,
    sandbox_admin: SandboxAdmin,
    ig_account: tuple[SandboxAccount, int],
) -> None:
    post_id, _media_id, comment = await _published_with_its_comment(
        engine_client, seeder, sandbox_admin, ig_account
    )
    ig_user_id = ig_account[0].ig_user_id
    assert len(await sandbox_admin.calls(endpoint="comments_create", ig_user_id=ig_user_id)) == 1
    assert await sandbox_admin.calls(endpoint="comments_list", ig_user_id=ig_user_id) == []
    with Session(make_engine(engine_settings.database_url)) as session:
        post = session.get(Post, post_id)
        assert post is not None and (post.ig_first_comment_id, post.first_comment_calls) == (comment["id"], 1)


async def _comment_again(settings: Settings, post_id: int, media_id: str) -> FirstCommentResult:
    """post_first_comment as a new run's first attempt runs it."""
    async with httpx.AsyncClient(trust_env=False) as http:
        activities = InstagramActivities(
            GraphClient.from_settings(http, settings),
            make_engine(settings.database_url),
            make_minio(settings),
            settings.media_bucket,
            TokenCipher.from_settings(settings),
        )
        environment = ActivityEnvironment()
        assert environment.info.attempt == 1
        return await environment.run(
            activities.post_first_comment, MediaRef(post_id=post_id, media_id=media_id)
        )


@pytest.mark.parametrize("calls_counted", [1, None], ids=["counted", "from-before-the-count"])
async def test_a_comment_left_without_its_id_is_found_not_posted_again(
    calls_counted: int | None,
    engine_client: Client,
    engine_settings: Settings,
    seeder: Seeder,
    sandbox_admin: SandboxAdmin,
    ig_account: tuple[SandboxAccount, int],
) -> None:
    """Its id lost after the call (counted), or by a post made before calls were counted (None)."""
    post_id, media_id, comment = await _published_with_its_comment(
        engine_client, seeder, sandbox_admin, ig_account
    )
    engine = make_engine(engine_settings.database_url)
    with Session(engine) as session:
        session.exec(
            update(Post)
            .where(Post.id == post_id)  # type: ignore[arg-type]
            .values(ig_first_comment_id=None, first_comment_calls=calls_counted)
        )
        session.commit()

    again = await _comment_again(engine_settings, post_id, media_id)

    assert (again.comment_id, again.created) == (comment["id"], False)
    assert len((await only_published(sandbox_admin, ig_account))["comments"]) == 1
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None and post.ig_first_comment_id == comment["id"]
