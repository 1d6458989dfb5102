"""A burst of events to one endpoint, on a notifications worker of its own (CHRONOGRAM_WORKER_ROLES), with the worker
SIGKILLed in the middle of a delivery: every event arrives, each post's events in the order of their sequence
numbers (a receiver dropping duplicates by webhook-id), a duplicate with the same webhook-id and body. Then events
whose deliveries appear while the endpoint's pump is still looking go out without any wake-up of its workflow
(no trip through Temporal per event: the notification latency)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TextIO

import pytest_asyncio
from sqlalchemy import Engine, insert, select, update
from sqlmodel import Session

from api.crud.webhooks import create_endpoint
from chronogram.crypto import TokenCipher
from chronogram.db import make_engine
from chronogram.enums import DeliveryChannel, NotificationType, PostStatus
from chronogram.lifecycle import StatusChange, Transition
from chronogram.models import InstagramAccount, NotificationDelivery, NotificationEvent, table_of
from chronogram.notifications import outbox
from chronogram.settings import Settings, WorkerRole
from sandbox.admin_client import SandboxAccount
from tests.engine.conftest import engine_env
from tests.engine.test_webhook_crash import WEBHOOK_ENV
from tests.support.factories import add_post, id_of
from tests.support.receiver import WebhookReceiver, webhook_receiver
from tests.support.workers import Workers

POSTS = 30
# Each post's events, in order: 3 per post, 90 in the burst.
STEPS = [
    (Transition.SCHEDULE, None, PostStatus.SCHEDULED),
    (Transition.BEGIN_PUBLISHING, PostStatus.SCHEDULED, PostStatus.PUBLISHING),
    (Transition.PUBLISH, PostStatus.PUBLISHING, PostStatus.PUBLISHED),
]
TYPES = [NotificationType.POST_SCHEDULED, NotificationType.POST_PUBLISHING, NotificationType.POST_PUBLISHED]
_EVENTS = table_of(NotificationEvent)
_DELIVERIES = table_of(NotificationDelivery)


@pytest_asyncio.fixture
async def workers(engine_settings: Settings, server_log: TextIO) -> AsyncIterator[Workers]:
    roles = {"CHRONOGRAM_WORKER_ROLES": json.dumps([WorkerRole.NOTIFICATIONS.value])}
    pool = Workers({**engine_env(engine_settings), **WEBHOOK_ENV, **roles}, server_log)
    yield pool
    pool.stop_all()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as running:
        yield running


def _emit(engine: Engine, post_ids: list[int], steps: list[int]) -> None:
    """The events of these steps of every post, in one transaction, a post's in order."""
    with engine.begin() as connection:
        for step in steps:
            transition, before, after = STEPS[step]
            for post_id in post_ids:
                change = StatusChange(post_id, transition, before, after, datetime.now(UTC), "test")
                outbox.on_status_change(connection, change)


def _undispatched_wave(engine: Engine, post_ids: list[int], endpoint_id: int) -> list[str]:
    """A post.published of each post with its delivery made here, as the dispatcher would, but no wake-up."""
    with engine.begin() as connection:
        for post_id in post_ids:
            change = StatusChange(
                post_id,
                Transition.PUBLISH,
                PostStatus.PUBLISHING,
                PostStatus.PUBLISHED,
                datetime.now(UTC),
                "again",
            )
            outbox.on_status_change(connection, change)
        rows = connection.execute(
            select(_EVENTS.c.id, _EVENTS.c.event_id).where(
                _EVENTS.c.dispatched_at.is_(None), _EVENTS.c.post_id.in_(post_ids)
            )
        ).all()
        connection.execute(
            update(_EVENTS)
            .where(_EVENTS.c.id.in_([row.id for row in rows]))
            .values(dispatched_at=datetime.now(UTC))
        )
        connection.execute(
            insert(_DELIVERIES),
            [
                {"event_id": row.id, "channel": DeliveryChannel.WEBHOOK, "endpoint_id": endpoint_id}
                for row in rows
            ],
        )
    return [row.event_id for row in rows]


async def test_a_burst_to_one_endpoint_keeps_each_posts_order_through_a_killed_worker_and_needs_no_wake(
    workers: Workers,
    engine_settings: Settings,
    ig_account: tuple[SandboxAccount, int],
    receiver: WebhookReceiver,
) -> None:
    engine = make_engine(engine_settings.database_url)

    def seed() -> tuple[int, list[int]]:
        with Session(engine) as session:
            account = session.get(InstagramAccount, ig_account[1])
            assert account is not None
            posts = [
                id_of(add_post(session, account, datetime.now(UTC) + timedelta(days=1), caption=f"burst {n}"))
                for n in range(POSTS)
            ]
            session.commit()
            row, secret = create_endpoint(
                session,
                owner_id=account.owner_id,
                url=receiver.url,
                event_types=TYPES,
                description=None,
                enabled=True,
                cipher=TokenCipher.from_settings(engine_settings),
            )
            receiver.secrets.append(secret.get_secret_value())
            assert row.id is not None
            return row.id, posts

    endpoint_id, post_ids = await asyncio.to_thread(seed)
    mine = set(post_ids)

    def unique_of_mine() -> dict[int, list[tuple[int, str]]]:
        """Each post's events as a receiver that drops duplicates sees them: (sequence, type), in arrival order."""
        seen: set[str] = set()
        by_post: dict[int, list[tuple[int, str]]] = {}
        for received in receiver.accepted():
            data = received.payload["data"]
            if data.get("post_id") in mine and received.webhook_id not in seen:
                seen.add(received.webhook_id)
                by_post.setdefault(data["post_id"], []).append((data["sequence"], received.payload["type"]))
        return by_post

    first = workers.start()
    receiver.hold = 1  # the burst's first request hangs: the worker is killed while it is out
    await asyncio.to_thread(_emit, engine, post_ids, [0, 1, 2])
    await receiver.wait_for(lambda r: len(r.held) == 1, within=60)
    first.kill()
    receiver.release.set()
    workers.start()
    await receiver.wait_for(lambda r: sum(map(len, unique_of_mine().values())) == 3 * POSTS, within=120)

    by_post = unique_of_mine()
    for post_id in post_ids:
        assert by_post[post_id] == [(1, "post.scheduled"), (2, "post.publishing"), (3, "post.published")]
    mine_received = [r for r in receiver.accepted() if r.payload["data"].get("post_id") in mine]
    assert receiver.held[0] in {r.webhook_id for r in mine_received}
    for webhook_id in {r.webhook_id for r in mine_received}:
        assert len({r.body for r in mine_received if r.webhook_id == webhook_id}) == 1  # a resend is the same

    # Deliveries that appear while the pump still looks (it lingers seconds after its last event) go out with no
    # wake-up of the endpoint's workflow: before the pump, they waited for one (or the workflow's idle minute).
    wave = await asyncio.to_thread(_undispatched_wave, engine, post_ids, endpoint_id)
    assert len(wave) == POSTS
    await receiver.wait_for(lambda r: set(wave) <= {x.webhook_id for x in r.accepted()}, within=3)
    assert all(unique_of_mine()[post_id][-1][0] == 4 for post_id in post_ids)
    engine.dispose()
