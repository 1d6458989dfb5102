"""max_lateness_seconds on posts and accounts: how late outages may make a post (issue 12). Validated, stored,
shown, and read into the post's plan (post, else account, else the default)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from activities.store import PostStore
from api.deps import AppServices
from api.schemas.post_responses import LiveState
from chronogram.contracts import PostRef, PostState, PublishDelay, PublishStep, Service
from chronogram.enums import PostStatus
from tests.api.helpers import ApiUser, assert_problem, schedule, schedule_ok


@pytest.mark.parametrize("value", [-1, 30 * 24 * 3600 + 1, "soon", 1.5])
async def test_a_post_refuses_a_max_lateness_out_of_range(
    alice: ApiUser, ready: dict[str, Any], value: object
) -> None:
    response = await schedule(
        alice.client, ready["account"]["id"], [ready["media"]], max_lateness_seconds=value
    )
    assert_problem(response, 422, "validation_error", field="max_lateness_seconds")


async def test_a_posts_max_lateness_is_stored_shown_and_changed(
    alice: ApiUser, ready: dict[str, Any]
) -> None:
    post = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]], max_lateness_seconds=0)
    assert post["max_lateness_seconds"] == 0
    response = await alice.client.patch(f"/v1/posts/{post['id']}", json={"max_lateness_seconds": 7200})
    assert response.status_code == 200, response.text
    assert response.json()["max_lateness_seconds"] == 7200
    response = await alice.client.patch(f"/v1/posts/{post['id']}", json={"max_lateness_seconds": -5})
    assert_problem(response, 422, "validation_error", field="max_lateness_seconds")


async def test_an_accounts_max_lateness_is_set_cleared_and_validated(
    alice: ApiUser, ready: dict[str, Any]
) -> None:
    account_id = ready["account"]["id"]
    assert ready["account"]["max_lateness_seconds"] is None
    response = await alice.client.patch(f"/v1/accounts/{account_id}", json={"max_lateness_seconds": 3600})
    assert response.status_code == 200, response.text
    assert response.json()["max_lateness_seconds"] == 3600
    assert (await alice.client.get(f"/v1/accounts/{account_id}")).json()["max_lateness_seconds"] == 3600
    assert_problem(
        await alice.client.patch(f"/v1/accounts/{account_id}", json={"max_lateness_seconds": -1}),
        422,
        "validation_error",
        field="max_lateness_seconds",
    )
    assert_problem(await alice.client.patch(f"/v1/accounts/{account_id}", json={}), 422, "empty_update")
    response = await alice.client.patch(f"/v1/accounts/{account_id}", json={"max_lateness_seconds": None})
    assert response.json()["max_lateness_seconds"] is None


async def test_the_plan_takes_the_posts_lateness_else_the_accounts_else_the_default(
    alice: ApiUser, ready: dict[str, Any], services: AppServices
) -> None:
    account_id = ready["account"]["id"]
    own = await schedule_ok(alice.client, account_id, [ready["media"]], max_lateness_seconds=600)
    inherits = await schedule_ok(alice.client, account_id, [ready["media"]])
    store = PostStore(services.engine, default_max_lateness_seconds=86400)
    assert store.load_plan(PostRef(own["id"])).max_lateness_seconds == 600
    assert store.load_plan(PostRef(inherits["id"])).max_lateness_seconds == 86400
    await alice.client.patch(f"/v1/accounts/{account_id}", json={"max_lateness_seconds": 0})
    assert store.load_plan(PostRef(inherits["id"])).max_lateness_seconds == 0
    assert store.load_plan(PostRef(own["id"])).max_lateness_seconds == 600


def test_the_live_state_of_a_delayed_post_says_why_and_since_when() -> None:
    since = datetime(2026, 12, 2, 9, 2, 30, tzinfo=UTC)
    state = PostState(
        post_id=1,
        status=PostStatus.PUBLISHING,
        publish_at=since,
        step=PublishStep.DELAYED,
        last_error="GraphTransientError: Instagram is temporarily unavailable.",
        delay=PublishDelay(service=Service.INSTAGRAM, since=since, last_error="GraphTransientError: ..."),
        deadline=since + timedelta(hours=24),
    )
    live = LiveState.from_state(state)
    assert live.step == "delayed: Instagram unavailable since 09:02 UTC"
    assert live.delayed_since == since and live.deadline == since + timedelta(hours=24)
    assert live.last_error and "temporarily unavailable" in live.last_error
