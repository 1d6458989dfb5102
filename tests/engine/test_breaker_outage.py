"""The production worker's circuit breaker on the real stack: during a Graph API outage the worker stops sending
calls after a few failures and only probes, and once the sandbox answers again every post publishes, once."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client

from chronogram.enums import PostStatus, PostType
from chronogram.settings import Settings
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.engine.conftest import start_seeded
from tests.support.factories import PostSeed, Seeder
from tests.support.media import Upload
from tests.support.stack import background_worker

POSTS = 6
OUTAGE = 12.0


async def test_an_outage_stops_the_workers_calls_and_its_posts_publish_after_recovery(
    engine_client: Client,
    seeder: Seeder,
    ig_account: tuple[SandboxAccount, int],
    sandbox_admin: SandboxAdmin,
    engine_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chronogram.instagram.breaker")
    settings = engine_settings.model_copy(
        update={
            "graph_breaker_failure_threshold": 3,
            "graph_breaker_open_seconds": 5.0,
            "graph_breaker_max_open_seconds": 10.0,
        }
    )
    ig_user_id = ig_account[0].ig_user_id
    outage = await sandbox_admin.start_outage("unavailable", seconds=3600, ig_user_id=ig_user_id)
    async with background_worker(settings, settle=0.5):
        publish_at = datetime.now(UTC) + timedelta(seconds=3)
        handles = [
            (
                await start_seeded(
                    engine_client,
                    seeder,
                    ig_account,
                    PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1080)], publish_at),
                )
            )[1]
            for _ in range(POSTS)
        ]
        started = time.monotonic()
        while time.monotonic() - started < OUTAGE:
            await asyncio.sleep(0.5)
        hits = len(await sandbox_admin.calls(outage=outage["id"]))
        await sandbox_admin.end_outage(outage["id"])
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=90)

    # Every post tried and was refused for 12 s. Without the breaker each one's container creation alone is sent
    # at 0, 2 and 6 s (18 calls); with it, the first wave (at most one call per post) and one probe per open
    # period (5 s, then 10 s).
    assert 3 <= hits <= POSTS + 2, f"{hits} calls reached the sandbox during the outage"
    assert [r.status for r in results] == [PostStatus.PUBLISHED] * POSTS
    published = await sandbox_admin.published(ig_user_id)
    assert sorted(m["id"] for m in published) == sorted(str(r.media_id) for r in results)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "chronogram.instagram.breaker"]
    host = settings.graph_api_base_url.removeprefix("http://")
    assert (logging.WARNING, True) in {(level, f"breaker for {host} open" in text) for level, text in lines}
    assert lines[-1][0] == logging.INFO and f"breaker for {host} closed" in lines[-1][1]
    assert not any(ig_account[0].access_token in text for _, text in lines)
