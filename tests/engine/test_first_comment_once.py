"""The first comment is never posted twice, even when the attempt that finds it is a first attempt: a post whose
earlier run commented and failed before storing the comment's id is run again by a new workflow, whose
``post_first_comment`` starts at attempt 1 on a media that already carries the comment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import Session
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.instagram import InstagramActivities
from chronogram.contracts import MediaRef
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


async def test_a_new_run_finds_the_comment_an_earlier_run_left(
    engine_client: Client,
    engine_settings: Settings,
    seeder: Seeder,
    sandbox_admin: SandboxAdmin,
    ig_account: tuple[SandboxAccount, int],
) -> None:
    seed = PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1080)], datetime.now(UTC) + timedelta(seconds=4))
    post_id, result = await publish(engine_client, seeder, ig_account, seed)
    [comment] = (await only_published(sandbox_admin, ig_account))["comments"]

    # What the earlier run left behind: the comment on Instagram, its id not stored.
    engine = make_engine(engine_settings.database_url)
    with Session(engine) as session:
        session.exec(update(Post).where(Post.id == post_id).values(ig_first_comment_id=None))  # type: ignore[arg-type]
        session.commit()

    async with httpx.AsyncClient(trust_env=False) as http:
        activities = InstagramActivities(
            GraphClient.from_settings(http, engine_settings),
            engine,
            make_minio(engine_settings),
            engine_settings.media_bucket,
            TokenCipher.from_settings(engine_settings),
        )
        environment = ActivityEnvironment()
        assert environment.info.attempt == 1
        again = await environment.run(
            activities.post_first_comment, MediaRef(post_id=post_id, media_id=result["media_id"])
        )

    assert (again.comment_id, again.created) == (comment["id"], False)
    assert len((await only_published(sandbox_admin, ig_account))["comments"]) == 1
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None and post.ig_first_comment_id == comment["id"]
