"""GET /v1/posts/{id}/metrics and GET /v1/accounts/{id}/optimal-times against the real stack: a published post
starts its metrics workflow; best times recover the slots planted in synthetic history (the sandbox's own
engagement model) and, with no history, in the audience's online hours read from the sandbox; other users' posts
and accounts are 404."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from api.deps import AppServices
from chronogram.contracts import INSIGHTS_TASK_QUEUE, post_metrics_workflow_id
from chronogram.enums import MetricsCheckpoint, PostStatus, PostType
from chronogram.models import Post, PostMetrics
from sandbox.admin_client import SandboxAdmin
from sandbox.audience import AudienceProfile, Peak, media_engagement
from tests.api.helpers import ApiUser, assert_problem, connect, schedule_ok, upload_ok, wait_for

ZONE = "America/New_York"
# (weekday, hour, weight), local to ZONE: the right answer, best first.
PLANTED = [(2, 19, 6.0), (4, 18, 5.0), (0, 9, 4.0), (6, 11, 3.2), (1, 13, 2.6)]
HOURS = (8, 9, 11, 13, 15, 18, 19, 21)


def _seed_history(services: AppServices, owner_id: int, account_id: int, profile: AudienceProfile) -> int:
    """Three weeks of published posts at every weekday and each of HOURS (local), with +24 h readings from the
    sandbox's engagement model; returns how many."""
    zone = ZoneInfo(ZONE)
    start = datetime.now(zone).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    count = 0
    with Session(services.engine) as session:
        for day in range(21):
            date = start + timedelta(days=day)
            for hour in HOURS:
                local = datetime(date.year, date.month, date.day, hour, 5, tzinfo=zone)
                published_at = local.astimezone(UTC)
                media_id = str(17_990_000_000_000_000 + uuid.uuid4().int % 10**15)
                post = Post(
                    owner_id=owner_id,
                    account_id=account_id,
                    type=PostType.IMAGE,
                    publish_at=published_at,
                    status=PostStatus.PUBLISHED,
                    published_at=published_at,
                    ig_media_id=media_id,
                )
                session.add(post)
                session.flush()
                assert post.id is not None
                numbers = media_engagement(
                    profile,
                    media_id=media_id,
                    product_type="FEED",
                    published_at=published_at,
                    now=published_at + timedelta(hours=24),
                )
                session.add(
                    PostMetrics(
                        post_id=post.id,
                        checkpoint=MetricsCheckpoint.DAY,
                        captured_at=published_at + timedelta(hours=24),
                        reach=numbers.reach,
                        likes=numbers.likes,
                        comments=numbers.comments,
                        saved=numbers.saved,
                        shares=numbers.shares,
                        views=numbers.views,
                        total_interactions=numbers.total_interactions("FEED"),
                    )
                )
                count += 1
        session.commit()
    return count


def _slots(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [(slot["weekday"], slot["hour"]) for slot in body["slots"]]


_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


async def test_best_times_recover_the_planted_slots_from_history(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await connect(alice.client, sandbox)
    profile = AudienceProfile(
        timezone=ZONE, followers=8000, lag_seconds=0, peaks=[Peak(d, h, w) for d, h, w in PLANTED]
    )
    seeded = await asyncio.to_thread(_seed_history, services, alice.user_id, account["id"], profile)

    response = await alice.client.get(
        f"/v1/accounts/{account['id']}/optimal-times", params={"time_zone": ZONE}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "history"
    assert body["posts_analyzed"] == seeded
    assert body["time_zone"] == ZONE
    assert _slots(body) == [(_DAYS[d], h) for d, h, _ in PLANTED]
    assert all(slot["posts"] == 3 and slot["score"] > 1 for slot in body["slots"])
    assert all(0 < slot["confidence"] < 1 for slot in body["slots"])
    scores = [slot["score"] for slot in body["slots"]]
    assert scores == sorted(scores, reverse=True)

    # The same history seen from UTC: the same instants, other local hours.
    in_utc = (await alice.client.get(f"/v1/accounts/{account['id']}/optimal-times")).json()
    assert in_utc["time_zone"] == "UTC"
    assert _slots(in_utc) != _slots(body) and len(in_utc["slots"]) == 5


async def test_with_no_history_best_times_come_from_the_audience_online_hours(
    alice: ApiUser, sandbox: SandboxAdmin
) -> None:
    account = await connect(alice.client, sandbox)
    planted = [(1, 20, 5.0), (3, 7, 4.5), (5, 12, 4.0), (0, 22, 3.5), (6, 16, 3.0)]
    await sandbox.set_audience(
        account["ig_user_id"],
        timezone="Asia/Tokyo",
        followers=5000,
        peaks=[{"weekday": d, "hour": h, "weight": w} for d, h, w in planted],
    )
    response = await alice.client.get(
        f"/v1/accounts/{account['id']}/optimal-times", params={"time_zone": "Asia/Tokyo"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "audience" and body["posts_analyzed"] == 0
    assert _slots(body) == [(_DAYS[d], h) for d, h, _ in planted]
    assert all(slot["posts"] == 0 and 0 < slot["confidence"] <= 0.5 for slot in body["slots"])


async def test_below_100_followers_there_is_no_audience_data(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    account = await connect(alice.client, sandbox)
    await sandbox.set_audience(account["ig_user_id"], followers=60)
    body = (await alice.client.get(f"/v1/accounts/{account['id']}/optimal-times")).json()
    assert body["source"] == "none" and body["slots"] == []


async def test_the_posting_schedule_is_filled_from_the_best_times_in_one_call(
    alice: ApiUser, sandbox: SandboxAdmin
) -> None:
    account = await connect(alice.client, sandbox)
    planted = [(1, 20, 5.0), (3, 7, 4.5), (5, 12, 4.0), (0, 22, 3.5), (6, 16, 3.0)]
    await sandbox.set_audience(
        account["ig_user_id"],
        timezone="Europe/Paris",
        followers=5000,
        peaks=[{"weekday": d, "hour": h, "weight": w} for d, h, w in planted],
    )
    response = await alice.client.post(
        f"/v1/accounts/{account['id']}/schedule/from-optimal-times", params={"time_zone": "Europe/Paris"}
    )
    assert response.status_code == 200, response.text
    schedule = (await alice.client.get(f"/v1/accounts/{account['id']}/schedule")).json()
    assert schedule["time_zone"] == "Europe/Paris"
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert sorted((slot["day"], slot["time"]) for slot in schedule["slots"]) == sorted(
        (days[d], f"{h:02d}:00") for d, h, _ in planted
    )
    queued = await alice.client.get(f"/v1/accounts/{account['id']}/queue", params={"limit": 5})
    assert {slot["local_time"][11:16] for slot in queued.json()["slots"]} == {
        f"{h:02d}:00" for _, h, _ in planted
    }


async def test_without_best_times_the_schedule_is_not_filled(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    account = await connect(alice.client, sandbox)
    await sandbox.set_audience(account["ig_user_id"], followers=60)
    response = await alice.client.post(f"/v1/accounts/{account['id']}/schedule/from-optimal-times")
    assert_problem(response, 409, "no_optimal_times")
    assert (await alice.client.get(f"/v1/accounts/{account['id']}/schedule")).status_code == 404


async def test_an_unknown_time_zone_is_a_422(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    account = await connect(alice.client, sandbox)
    response = await alice.client.get(
        f"/v1/accounts/{account['id']}/optimal-times", params={"time_zone": "Mars/Olympus_Mons"}
    )
    assert_problem(response, 422, "invalid_time_zone", field="time_zone")


async def test_a_published_post_starts_its_metrics_workflow(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await connect(alice.client, sandbox)
    media = await upload_ok(alice.client)
    post = await schedule_ok(alice.client, account["id"], [media])

    before = (await alice.client.get(f"/v1/posts/{post['id']}/metrics")).json()
    assert before["readings"] == [] and before["next_reading_at"] is None

    await alice.client.post(f"/v1/posts/{post['id']}/publish-now")
    published = await wait_for(alice.client, post["id"], "published")
    handle = services.temporal.get_workflow_handle(post_metrics_workflow_id(post["id"]))
    for _ in range(50):
        try:
            description = await handle.describe()
            break
        except RPCError:  # not started yet
            await asyncio.sleep(0.2)
    assert description.status is WorkflowExecutionStatus.RUNNING
    # On the insights' queue: their own worker and cache, never the posts'.
    assert description.task_queue == INSIGHTS_TASK_QUEUE

    body = (await alice.client.get(f"/v1/posts/{post['id']}/metrics")).json()
    assert body["status"] == "published" and body["readings"] == []
    due = datetime.fromisoformat(body["next_reading_at"])
    assert due == datetime.fromisoformat(published["published_at"]) + timedelta(hours=1)
    # Its first task waits until a minute before that reading: nothing for its worker to run meanwhile.
    assert description.execution_time is not None
    assert abs(description.execution_time - (due - timedelta(minutes=1))) < timedelta(seconds=10)
    history = await handle.fetch_history()
    assert [event.event_type for event in history.events] == [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED]
    await handle.terminate("test over")


async def test_readings_are_listed_oldest_first(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await connect(alice.client, sandbox)
    profile = AudienceProfile(timezone=ZONE, lag_seconds=0)
    await asyncio.to_thread(_seed_history, services, alice.user_id, account["id"], profile)
    with Session(services.engine) as session:
        post = session.exec(select(Post).where(Post.account_id == account["id"])).first()
        assert post is not None and post.id is not None
        session.add(
            PostMetrics(
                post_id=post.id,
                checkpoint=MetricsCheckpoint.HOUR,
                captured_at=datetime.now(UTC),
                error_code="insights_unavailable",
                error_message="Instagram had no insights for this post at this time",
            )
        )
        session.commit()
        post_id = post.id
    body = (await alice.client.get(f"/v1/posts/{post_id}/metrics")).json()
    assert [reading["checkpoint"] for reading in body["readings"]] == ["1h", "24h"]
    assert body["readings"][0]["error_code"] == "insights_unavailable"
    assert body["readings"][0]["reach"] is None
    assert body["readings"][1]["total_interactions"] > 0
    assert body["next_reading_at"] is None  # published 40 days ago: every checkpoint is past


async def test_other_users_posts_and_accounts_are_404(
    alice: ApiUser, bob: ApiUser, sandbox: SandboxAdmin
) -> None:
    account = await connect(alice.client, sandbox)
    media = await upload_ok(alice.client)
    post = await schedule_ok(alice.client, account["id"], [media])
    assert_problem(await bob.client.get(f"/v1/posts/{post['id']}/metrics"), 404, "post_not_found")
    assert_problem(
        await bob.client.get(f"/v1/accounts/{account['id']}/optimal-times"), 404, "account_not_found"
    )
    assert_problem(
        await bob.client.post(f"/v1/accounts/{account['id']}/schedule/from-optimal-times"),
        404,
        "account_not_found",
    )
    assert_problem(await alice.client.get("/v1/posts/999999999/metrics"), 404, "post_not_found")
