"""/v1/posts: the lifecycle through the API, against the real worker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus

from api.deps import AppServices
from chronogram.contracts import ACCOUNT_ID, POST_STATUS, POST_TYPE, PUBLISH_AT, post_workflow_id
from chronogram.enums import PostStatus
from chronogram.models import Post
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import (
    ApiUser,
    assert_problem,
    at,
    connect,
    schedule_ok,
    upload_ok,
    wait_for,
    workflow_runs,
)
from tests.support.graph_sandbox import refuse_next_container
from tests.support.media import jpeg


@pytest_asyncio.fixture
async def account(alice: ApiUser, sandbox: SandboxAdmin) -> dict[str, Any]:
    return await connect(alice.client, sandbox)


@pytest_asyncio.fixture
async def media_id(alice: ApiUser) -> int:
    return await upload_ok(alice.client, jpeg(1080, 1080))


def _set_status(services: AppServices, post_id: int, status: PostStatus) -> None:
    with Session(services.engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        post.status = status
        post.published_at = datetime.now(UTC) if status is PostStatus.PUBLISHED else None
        session.add(post)
        session.commit()


async def _until(check: Any, within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def test_create_starts_the_workflow(
    alice: ApiUser, account: dict[str, Any], media_id: int, services: AppServices
) -> None:
    post = await schedule_ok(
        alice.client, account["id"], [media_id], caption="Hi #there", first_comment="first!"
    )
    assert (
        post["status"] == "scheduled" and post["caption"] == "Hi #there" and post["first_comment"] == "first!"
    )
    assert post["media"] == [{"media_id": media_id, "position": 0, "alt_text": None, "user_tags": []}]
    assert post["ig_media_id"] is None and post["error"] is None

    description = await services.temporal.get_workflow_handle(post_workflow_id(post["id"])).describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    attributes = description.typed_search_attributes
    assert attributes.get(POST_STATUS) == "scheduled" and attributes.get(POST_TYPE) == "IMAGE"
    assert attributes.get(ACCOUNT_ID) == str(account["id"])
    # Nothing a reschedule makes stale: the time is in PublishAt and the current details.
    assert await description.static_summary() == f"IMAGE to @{account['username']} (post {post['id']})"


async def test_get_shows_live_state_and_history(
    alice: ApiUser, account: dict[str, Any], media_id: int
) -> None:
    post = await schedule_ok(alice.client, account["id"], [media_id])
    detail = (await alice.client.get(f"/v1/posts/{post['id']}")).json()
    assert detail["live"]["status"] == "scheduled" and detail["live"]["step"] == "waiting to prepare"
    assert detail["live"]["publish_at"] == detail["publish_at"] == post["publish_at"]
    assert [(e["kind"], e["to_status"], e["message"]) for e in detail["events"]] == [
        ("transition", "scheduled", "created"),
        ("transition", None, "workflow started"),
    ]


async def test_list_orders_by_publish_time_with_cursor_and_filters(
    alice: ApiUser, sandbox: SandboxAdmin, account: dict[str, Any], media_id: int, services: AppServices
) -> None:
    other = await connect(alice.client, sandbox)
    base = datetime.now(UTC) + timedelta(days=3)
    # Created out of order, and two at the same instant: the id breaks the tie.
    offsets = [5, 1, 3, 3, 2, 4]
    ids: dict[int, int] = {}
    for index, hours in enumerate(offsets):
        target = account if index != 5 else other
        post = await schedule_ok(
            alice.client, target["id"], [media_id], publish_at=(base + timedelta(hours=hours)).isoformat()
        )
        ids[index] = post["id"]
    expected = [ids[1], ids[4], ids[2], ids[3], ids[5], ids[0]]

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (
            await alice.client.get(f"/v1/posts?{query}&from={base.isoformat().replace('+00:00', 'Z')}")
        ).json()
        seen += [item["id"] for item in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and pages == 3

    by_account = (await alice.client.get(f"/v1/posts?account_id={other['id']}")).json()["data"]
    assert [item["id"] for item in by_account] == [ids[5]]
    window = {
        "from": (base + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        "to": (base + timedelta(hours=4)).isoformat().replace("+00:00", "Z"),
    }
    ranged = (await alice.client.get("/v1/posts", params=window)).json()["data"]
    assert [item["id"] for item in ranged] == [ids[4], ids[2], ids[3]]

    _set_status(services, ids[2], PostStatus.FAILED)
    failed = (await alice.client.get("/v1/posts?status=failed")).json()["data"]
    assert [item["id"] for item in failed] == [ids[2]]
    scheduled = (await alice.client.get(f"/v1/posts?status=scheduled&account_id={account['id']}")).json()[
        "data"
    ]
    assert ids[2] not in [item["id"] for item in scheduled] and ids[0] in [item["id"] for item in scheduled]


async def test_edit_content_while_scheduled(alice: ApiUser, account: dict[str, Any], media_id: int) -> None:
    post = await schedule_ok(alice.client, account["id"], [media_id], first_comment="old")
    response = await alice.client.patch(
        f"/v1/posts/{post['id']}",
        json={
            "caption": "New caption #fresh",
            "first_comment": None,
            "user_tags": [{"username": "a", "x": 0, "y": 1}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["caption"] == "New caption #fresh" and body["first_comment"] is None
    assert body["user_tags"] == [{"username": "a", "x": 0, "y": 1}]
    assert body["publish_at"] == post["publish_at"]
    assert body["events"][-1]["message"].startswith("edited ")
    assert set(body["events"][-1]["message"][len("edited ") :].split(", ")) == {
        "caption",
        "first_comment",
        "user_tags",
    }


async def test_reschedule_signals_the_workflow(
    alice: ApiUser, account: dict[str, Any], media_id: int
) -> None:
    post = await schedule_ok(alice.client, account["id"], [media_id])
    later = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    response = await alice.client.patch(f"/v1/posts/{post['id']}", json={"publish_at": later.isoformat()})
    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.json()["publish_at"]) == later
    assert datetime.fromisoformat(response.json()["live"]["publish_at"]) == later

    async def row_updated() -> dict[str, Any] | None:
        detail = (await alice.client.get(f"/v1/posts/{post['id']}")).json()
        return (
            detail if any((e["message"] or "").startswith("rescheduled") for e in detail["events"]) else None
        )

    detail = await _until(row_updated)
    assert datetime.fromisoformat(detail["publish_at"]) == later


async def test_bad_edits(alice: ApiUser, account: dict[str, Any], media_id: int) -> None:
    post = await schedule_ok(alice.client, account["id"], [media_id])
    url = f"/v1/posts/{post['id']}"
    assert_problem(await alice.client.patch(url, json={}), 422, "empty_update")
    assert_problem(
        await alice.client.patch(url, json={"publish_at": None}), 422, "validation_error", field="publish_at"
    )
    assert_problem(await alice.client.patch(url, json={"publish_at": at(-600)}), 422, "publish_at_in_past")
    assert_problem(
        await alice.client.patch(url, json={"publish_at": at(200 * 86400)}), 422, "publish_at_too_far"
    )
    assert_problem(
        await alice.client.patch(url, json={"caption": "#a " * 31}), 422, "too_many_hashtags", field="caption"
    )
    assert_problem(
        await alice.client.patch(url, json={"media_ids": [1]}), 422, "validation_error", field="media_ids"
    )
    assert_problem(
        await alice.client.patch(url, json={"user_tags": [{"username": "x"}]}),
        422,
        "user_tag_position_required",
        field="user_tags[0]",
    )
    assert_problem(
        await alice.client.patch(url, json={"items": [{}]}), 422, "not_allowed_for_type", field="items"
    )
    story = await schedule_ok(alice.client, account["id"], [media_id], type="STORIES", caption=None)
    assert_problem(
        await alice.client.patch(f"/v1/posts/{story['id']}", json={"caption": "hi"}),
        422,
        "not_allowed_for_type",
        field="caption",
    )
    unchanged = (await alice.client.get(url)).json()
    assert unchanged["caption"] == post["caption"] and unchanged["publish_at"] == post["publish_at"]


async def test_content_is_locked_once_containers_are_prepared(
    alice: ApiUser, account: dict[str, Any], media_id: int
) -> None:
    # Within 10 minutes of its time the workflow creates the Instagram containers, with the content as it is.
    post = await schedule_ok(alice.client, account["id"], [media_id], publish_at=at(300))

    async def prepared() -> bool:
        live = (await alice.client.get(f"/v1/posts/{post['id']}")).json()["live"]
        return bool(live and live["step"] == "ready; waiting for publish time")

    await _until(prepared)
    body = assert_problem(
        await alice.client.patch(f"/v1/posts/{post['id']}", json={"caption": "too late"}),
        409,
        "post_content_locked",
    )
    assert body["current_status"] == "scheduled"
    # Its time can still change.
    later = await alice.client.patch(f"/v1/posts/{post['id']}", json={"publish_at": at(3600)})
    assert later.status_code == 200, later.text
    cancelled = await alice.client.post(f"/v1/posts/{post['id']}/cancel")
    assert cancelled.status_code == 202


async def test_cancel(alice: ApiUser, account: dict[str, Any], media_id: int, services: AppServices) -> None:
    post = await schedule_ok(alice.client, account["id"], [media_id])
    response = await alice.client.post(f"/v1/posts/{post['id']}/cancel", json={"reason": "changed my mind"})
    assert response.status_code == 202, response.text
    assert response.json()["status"] in ("scheduled", "cancelled")
    done = await wait_for(alice.client, post["id"], "cancelled")
    assert done["live"] is None
    assert done["events"][-1]["to_status"] == "cancelled"
    result = await services.temporal.get_workflow_handle(post_workflow_id(post["id"])).result()
    assert result["status"] == "cancelled"

    for action in ("cancel", "publish-now"):
        body = assert_problem(
            await alice.client.post(f"/v1/posts/{post['id']}/{action}"), 409, "post_not_scheduled"
        )
        assert body["current_status"] == "cancelled"
    body = assert_problem(
        await alice.client.patch(f"/v1/posts/{post['id']}", json={"caption": "x"}), 409, "post_not_scheduled"
    )
    assert body["current_status"] == "cancelled"


async def test_changes_once_publishing_began_are_409_with_the_status(
    alice: ApiUser, account: dict[str, Any], media_id: int, services: AppServices
) -> None:
    post = await schedule_ok(alice.client, account["id"], [media_id])
    _set_status(services, post["id"], PostStatus.PUBLISHING)
    for method, path, body in [
        ("PATCH", "", {"caption": "x"}),
        ("PATCH", "", {"publish_at": at(7200)}),
        ("POST", "/cancel", None),
        ("POST", "/publish-now", None),
        ("POST", "/retry", None),
    ]:
        response = await alice.client.request(method, f"/v1/posts/{post['id']}{path}", json=body)
        assert response.status_code == 409, (path, response.text)
        assert response.json()["current_status"] == "publishing"
        assert response.json()["code"] in ("post_not_scheduled", "post_not_failed")


async def test_a_signal_the_workflow_refuses_is_409(
    alice: ApiUser, sandbox: SandboxAdmin, account: dict[str, Any], media_id: int, services: AppServices
) -> None:
    # media_publish is slow, so the post stays "publishing" for a while; the row is then put back to "scheduled"
    # to stand for a row that has not caught up yet: only the workflow knows publishing began.
    slow = await sandbox.add_fault(
        "latency", endpoint="media_publish", ig_user_id=account["ig_user_id"], seconds=3, count=1
    )
    post = await schedule_ok(alice.client, account["id"], [media_id], publish_at=at(0))

    async def publishing() -> bool:
        # media_publish has reached Instagram (the slow answer is on its way): until then the held call could
        # still be withdrawn, and a cancel would be accepted.
        live = (await alice.client.get(f"/v1/posts/{post['id']}")).json()["live"]
        called = any(fault["id"] == slow["id"] and fault["hits"] for fault in await sandbox.faults())
        return bool(live and live["status"] == "publishing" and called)

    await _until(publishing)
    _set_status(services, post["id"], PostStatus.SCHEDULED)
    body = assert_problem(
        await alice.client.post(f"/v1/posts/{post['id']}/cancel"), 409, "post_not_scheduled"
    )
    assert body["current_status"] == "publishing"
    # The row catches up (the lifecycle publishes only a post whose row says publishing).
    _set_status(services, post["id"], PostStatus.PUBLISHING)
    done = await wait_for(alice.client, post["id"], "published")
    assert any("cancel refused" in (event["message"] or "") for event in done["events"])
    assert len(await sandbox.published(account["ig_user_id"])) == 1


async def test_retry_a_failed_post(
    alice: ApiUser, sandbox: SandboxAdmin, account: dict[str, Any], media_id: int, services: AppServices
) -> None:
    # Instagram refusing the request fails the post for good: a retry publishes it once that is fixed.
    await refuse_next_container(sandbox, account["ig_user_id"])
    post = await schedule_ok(alice.client, account["id"], [media_id], publish_at=at(0))
    failed = await wait_for(alice.client, post["id"], "failed")
    assert failed["error"]["code"] == "GraphInvalidRequestError"
    body = assert_problem(
        await alice.client.post(f"/v1/posts/{post['id']}/cancel"), 409, "post_not_scheduled"
    )
    assert body["current_status"] == "failed"

    response = await alice.client.post(f"/v1/posts/{post['id']}/retry")
    assert response.status_code == 202, response.text
    assert response.json()["error"] is None
    published = await wait_for(alice.client, post["id"], "published")
    assert published["permalink"]
    transitions = [(e["from_status"], e["to_status"]) for e in published["events"] if e["to_status"]]
    assert ("failed", "scheduled") in transitions and transitions[-1] == ("publishing", "published")
    # The row is written just before the run ends.
    await services.temporal.get_workflow_handle(post_workflow_id(post["id"])).result()
    assert await workflow_runs(services, post["id"]) == [
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.COMPLETED,
    ]

    body = assert_problem(await alice.client.post(f"/v1/posts/{post['id']}/retry"), 409, "post_not_failed")
    assert body["current_status"] == "published"


async def test_a_retry_for_a_later_time_waits_for_it(
    alice: ApiUser, sandbox: SandboxAdmin, account: dict[str, Any], media_id: int, services: AppServices
) -> None:
    """The fresh run is started for the time the retry asked for, not the failed run's (which had passed: the post
    would have gone out at once)."""
    await refuse_next_container(sandbox, account["ig_user_id"])
    post = await schedule_ok(alice.client, account["id"], [media_id], publish_at=at(0))
    await wait_for(alice.client, post["id"], "failed")
    later = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
    response = await alice.client.post(
        f"/v1/posts/{post['id']}/retry", json={"publish_at": later.isoformat()}
    )
    assert response.status_code == 202, response.text
    assert datetime.fromisoformat(response.json()["publish_at"]) == later
    handle = services.temporal.get_workflow_handle(post_workflow_id(post["id"]))
    description = await handle.describe()
    assert description.typed_search_attributes.get(PUBLISH_AT) == later
    published = await wait_for(alice.client, post["id"], "published", within=60)
    assert datetime.fromisoformat(published["published_at"]) >= later


async def test_nothing_changes_a_post_once_it_is_cancelled(
    alice: ApiUser, account: dict[str, Any], media_id: int
) -> None:
    post = await schedule_ok(alice.client, account["id"], [media_id])
    assert (await alice.client.post(f"/v1/posts/{post['id']}/cancel")).status_code == 202
    # At once, while the cancellation may still be being recorded: refused either way.
    for action in ("publish-now", "cancel"):
        response = await alice.client.post(f"/v1/posts/{post['id']}/{action}")
        assert response.status_code == 409, response.text
        assert response.json()["code"] in ("post_being_cancelled", "post_not_scheduled")
    done = await wait_for(alice.client, post["id"], "cancelled")
    assert done["ig_media_id"] is None


async def test_a_signal_typed_by_hand_without_input_is_refused_shown_and_the_post_publishes(
    alice: ApiUser, sandbox: SandboxAdmin, account: dict[str, Any], media_id: int, services: AppServices
) -> None:
    """`temporal workflow signal --name cancel` with no input: the post says why it refused it, and goes on."""
    post = await schedule_ok(alice.client, account["id"], [media_id], publish_at=at(8))
    handle = services.temporal.get_workflow_handle(post_workflow_id(post["id"]))
    await handle.signal("cancel")
    detail = (await alice.client.get(f"/v1/posts/{post['id']}")).json()
    assert [(r["signal"], r["reason"]) for r in detail["live"]["refused_signals"]] == [
        ("cancel", "malformed_input")
    ]
    done = await wait_for(alice.client, post["id"], "published")
    assert "cancel refused: its input is not a CancelRequest" in [
        event["message"] for event in done["events"]
    ]
    assert len(await sandbox.published(account["ig_user_id"])) == 1
