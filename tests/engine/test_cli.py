"""The schedule command puts a post on the real stack that publishes, as a newcomer would use it."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest
from sqlmodel import Session, func, select
from temporalio.client import Client

from chronogram.contracts import ScheduledPostResult, post_workflow_id
from chronogram.db import make_engine
from chronogram.enums import PostStatus
from chronogram.models import MediaAsset, Post, PostEvent
from chronogram.settings import Settings
from chronogram.storage import make_minio
from sandbox.admin_client import SandboxAdmin
from scripts import schedule_post
from tests.support.media import jpeg


@pytest.mark.usefixtures("in_process_worker")
async def test_schedule_command_publishes(
    engine_settings: Settings,
    engine_client: Client,
    sandbox_admin: SandboxAdmin,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    account = await sandbox_admin.create_account("cli_shop")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg(1080, 1080))
    parser_args = argparse.Namespace(
        files=[str(photo)], type=None, caption="From the command line", first_comment="first!", location_id=None,
        at=None, delay="3s", ig_user_id=account.ig_user_id, token=account.access_token,
    )  # fmt: skip
    assert await schedule_post.run(parser_args, engine_settings) == 0
    output = capsys.readouterr().out
    assert output.startswith("Scheduled post ") and "IMAGE to @cli_shop" in output
    assert account.access_token not in output
    post_id = int(output.split()[2].rstrip(":"))

    handle = engine_client.get_workflow_handle(post_workflow_id(post_id), result_type=ScheduledPostResult)
    result = await asyncio.wait_for(handle.result(), timeout=60)
    assert result.status is PostStatus.PUBLISHED
    published = await sandbox_admin.published(account.ig_user_id)
    assert [(p["caption"], [c["text"] for c in p["comments"]]) for p in published] == [
        ("From the command line", ["first!"])
    ]


def _recorded(settings: Settings) -> tuple[int, int, int, int]:
    """How many posts, post events, media rows and stored objects there are."""
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        counts = [
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Post, PostEvent, MediaAsset)
        ]
    engine.dispose()
    objects = list(
        make_minio(settings).list_objects(settings.media_bucket, prefix="uploads/", recursive=True)
    )
    return counts[0], counts[1], counts[2], len(objects)


@pytest.mark.parametrize(
    ("post_type", "caption", "field", "code"),
    [
        ("CAROUSEL", "One photo is no carousel", "media_ids", "media_count"),  # chronogram.post_rules
        (None, "x" * 2201, "caption", "string_too_long"),  # the request schema, as the API checks it
    ],
)
async def test_a_post_the_api_would_refuse_is_refused_and_not_recorded(
    engine_settings: Settings,
    sandbox_admin: SandboxAdmin,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    post_type: str | None,
    caption: str,
    field: str,
    code: str,
) -> None:
    account = await sandbox_admin.create_account("cli_refused")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg(1080, 1080))
    parser_args = argparse.Namespace(
        files=[str(photo)], type=post_type, caption=caption, first_comment=None, location_id=None,
        at=None, delay="1h", ig_user_id=account.ig_user_id, token=account.access_token,
    )  # fmt: skip
    before = _recorded(engine_settings)
    assert await schedule_post.run(parser_args, engine_settings) != 0
    output = capsys.readouterr()
    assert output.out == ""
    assert output.err.startswith("The post was refused:")
    assert f"  {field}: " in output.err and f"({code})" in output.err
    assert _recorded(engine_settings) == before


def test_rejects_a_naive_time() -> None:
    with pytest.raises(SystemExit, match="timezone"):
        schedule_post.parse_when("2026-12-01T09:00:00", None)
