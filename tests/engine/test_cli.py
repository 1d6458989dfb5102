"""The schedule command puts a post on the real stack that publishes, as a newcomer would use it."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client

from chronogram.contracts import ScheduledPostResult, post_workflow_id
from chronogram.enums import PostStatus
from chronogram.settings import Settings
from sandbox.admin_client import SandboxAdmin
from scripts import schedule_post
from tests.engine.seed import jpeg


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
    photo.write_bytes(jpeg(1080, 1080).data)
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


def test_rejects_a_naive_time() -> None:
    with pytest.raises(SystemExit, match="timezone"):
        schedule_post.parse_when("2026-12-01T09:00:00", None)
