"""A worker SIGKILLed in the middle of a webhook delivery loses nothing: another worker delivers the event again,
with the same webhook-id and the same body, and the post's other events follow in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TextIO

import pytest_asyncio
from sqlmodel import Session, col, select
from temporalio.client import Client

from api.crud.webhooks import create_endpoint
from chronogram.crypto import TokenCipher
from chronogram.db import make_engine
from chronogram.enums import DeliveryStatus, NotificationType, PostType
from chronogram.models import InstagramAccount, NotificationDelivery
from chronogram.notifications import outbox
from chronogram.settings import Settings
from sandbox.admin_client import SandboxAccount
from tests.engine.conftest import engine_env, start_seeded
from tests.support.factories import PostSeed, Seeder
from tests.support.media import Upload
from tests.support.receiver import WebhookReceiver, webhook_receiver
from tests.support.workers import Workers

WEBHOOK_ENV = {
    "CHRONOGRAM_WEBHOOK_ALLOW_HTTP_LOCALHOST": "true",
    "CHRONOGRAM_WEBHOOK_ALLOWED_NETWORKS": json.dumps(["127.0.0.0/8"]),
    # The killed attempt is given up on after the request timeout and ten seconds.
    "CHRONOGRAM_WEBHOOK_REQUEST_TIMEOUT_SECONDS": "2",
    "CHRONOGRAM_WEBHOOK_RETRY_INITIAL_SECONDS": "0.2",
    "CHRONOGRAM_WEBHOOK_RETRY_MAX_INTERVAL_SECONDS": "1",
    "CHRONOGRAM_NOTIFICATIONS_POLL_INTERVAL_SECONDS": "0.1",
}


@pytest_asyncio.fixture
async def workers(engine_settings: Settings, server_log: TextIO) -> AsyncIterator[Workers]:
    pool = Workers({**engine_env(engine_settings), **WEBHOOK_ENV}, server_log)
    yield pool
    pool.stop_all()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as running:
        yield running


async def test_worker_killed_during_a_delivery_still_delivers(
    workers: Workers,
    engine_client: Client,
    engine_settings: Settings,
    seeder: Seeder,
    ig_account: tuple[SandboxAccount, int],
    receiver: WebhookReceiver,
) -> None:
    outbox.install()
    engine = make_engine(engine_settings.database_url)

    def subscribe() -> int:
        with Session(engine) as session:
            account = session.get(InstagramAccount, ig_account[1])
            assert account is not None
            row, secret = create_endpoint(
                session,
                owner_id=account.owner_id,
                url=receiver.url,
                event_types=[NotificationType.POST_PUBLISHING, NotificationType.POST_PUBLISHED],
                description=None,
                enabled=True,
                cipher=TokenCipher.from_settings(engine_settings),
            )
            receiver.secrets.append(secret.get_secret_value())
            assert row.id is not None
            return row.id

    endpoint_id = await asyncio.to_thread(subscribe)
    first = workers.start()
    seed = PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1080)], datetime.now(UTC) + timedelta(seconds=3))
    post_id, handle = await start_seeded(engine_client, seeder, ig_account, seed)

    def this_posts_publishing(body: bytes) -> bool:
        payload = json.loads(body)
        return bool(payload["type"] == "post.publishing" and payload["data"]["post_id"] == post_id)

    # Its first delivery hangs: the worker is killed inside it. (Other tests' posts on the account are let through.)
    receiver.hold_only = this_posts_publishing
    receiver.hold = 1
    await receiver.wait_for(lambda r: len(r.held) == 1, within=30)
    first.kill()
    receiver.release.set()
    workers.start()

    await handle.result()
    await receiver.wait_for(
        lambda r: r.types(post_id, unique=True) == ["post.publishing", "post.published"], within=90
    )
    # The held request (answered after its worker died) and at least one attempt by the next worker.
    publishing = [
        r
        for r in receiver.received
        if r.payload["type"] == "post.publishing" and r.payload["data"]["post_id"] == post_id
    ]
    assert len(publishing) >= 2, "the killed attempt was not sent again"
    assert len({r.webhook_id for r in publishing}) == 1 and len({r.body for r in publishing}) == 1
    assert receiver.held[0] == publishing[0].webhook_id

    def statuses() -> list[DeliveryStatus]:
        with Session(engine) as session:
            rows = session.exec(
                select(NotificationDelivery.status)
                .where(NotificationDelivery.endpoint_id == endpoint_id)
                .order_by(col(NotificationDelivery.id))
            ).all()
            return [DeliveryStatus(status) for status in rows]

    # This post's two, and any of other tests' posts on the shared account: all delivered, none left pending. (The
    # receiver has an event before its attempt is recorded: the record follows the answer.)
    deadline = asyncio.get_running_loop().time() + 30
    while (delivered := await asyncio.to_thread(statuses)) and set(delivered) != {DeliveryStatus.DELIVERED}:
        assert asyncio.get_running_loop().time() < deadline, delivered
        await asyncio.sleep(0.2)
    assert len(delivered) >= 2, delivered
    engine.dispose()
