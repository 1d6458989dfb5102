"""Drafts on the real stack: saved without a workflow, listed with status draft, edited, scheduled later (every
rule checked then, one draft -> scheduled event, idempotent) and published, or deleted; isolation."""

from __future__ import annotations

from typing import Any

from api.deps import AppServices
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import (
    ApiUser,
    assert_problem,
    at,
    schedule,
    schedule_ok,
    upload_ok,
    wait_for,
    workflow_runs,
)


async def _draft(user: ApiUser, ready: dict[str, Any], **fields: Any) -> dict[str, Any]:
    fields.setdefault("publish_at", None)
    response = await schedule(user.client, ready["account"]["id"], [ready["media"]], draft=True, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "draft"
    return body


async def test_a_draft_has_no_workflow_and_is_listed_as_a_draft(
    alice: ApiUser, ready: dict[str, Any], services: AppServices
) -> None:
    draft = await _draft(alice, ready, caption="Not yet")
    assert await workflow_runs(services, draft["id"]) == []
    detail = (await alice.client.get(f"/v1/posts/{draft['id']}")).json()
    assert detail["status"] == "draft" and detail["live"] is None
    assert [(e["from_status"], e["to_status"]) for e in detail["events"]] == [(None, "draft")]
    scheduled = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])

    drafts = (await alice.client.get("/v1/posts", params={"status": "draft"})).json()["data"]
    assert [p["id"] for p in drafts] == [draft["id"]]
    everything = (await alice.client.get("/v1/posts")).json()["data"]
    assert {p["id"] for p in everything} == {draft["id"], scheduled["id"]}

    # Cancelling or publishing a draft now is refused: it has no workflow.
    refused = await alice.client.post(f"/v1/posts/{draft['id']}/publish-now")
    assert_problem(refused, 409, "post_not_scheduled")
    assert refused.json()["current_status"] == "draft"


async def test_a_draft_may_lack_media_count_and_time_but_nothing_else(
    alice: ApiUser, ready: dict[str, Any]
) -> None:
    account, media = ready["account"]["id"], ready["media"]
    # A carousel of one media so far, planned for a time already past: fine as a draft.
    draft = await schedule(
        alice.client, account, [media], type="CAROUSEL", draft=True, publish_at="2020-01-01T00:00:00Z"
    )
    assert draft.status_code == 201, draft.text
    # But not an unknown media or a caption Instagram refuses.
    bad = await schedule(alice.client, account, [media, 999999], draft=True)
    assert_problem(bad, 422, "unknown_media", field="media_ids[1]")
    tags = await schedule(
        alice.client, account, [media], draft=True, caption=" ".join(f"#t{i}" for i in range(31))
    )
    assert_problem(tags, 422, "too_many_hashtags", field="caption")

    # Scheduling it runs every rule.
    scheduled = await alice.client.post(f"/v1/posts/{draft.json()['id']}/schedule")
    assert_problem(scheduled, 422, "media_count", field="media_ids")
    still = (await alice.client.get(f"/v1/posts/{draft.json()['id']}")).json()
    assert still["status"] == "draft"


async def test_a_draft_edited_then_scheduled_is_published(
    alice: ApiUser, ready: dict[str, Any], sandbox: SandboxAdmin, services: AppServices
) -> None:
    draft = await _draft(alice, ready, caption="First idea")
    edited = await alice.client.patch(
        f"/v1/posts/{draft['id']}", json={"caption": "Second idea #bakery", "publish_at": at(3600)}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["status"] == "draft" and edited.json()["caption"] == "Second idea #bakery"
    too_long = await alice.client.patch(f"/v1/posts/{draft['id']}", json={"caption": "x" * 2201})
    assert_problem(too_long, 422, "validation_error", field="caption")
    assert await workflow_runs(services, draft["id"]) == []

    scheduled = await alice.client.post(f"/v1/posts/{draft['id']}/schedule", json={"publish_at": at(3)})
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] in ("scheduled", "publishing", "published")
    again = await alice.client.post(f"/v1/posts/{draft['id']}/schedule")
    assert again.status_code == 200, again.text

    published = await wait_for(alice.client, draft["id"], "published", within=25)
    assert [(e["from_status"], e["to_status"]) for e in published["events"] if e["to_status"]] == [
        (None, "draft"),
        ("draft", "scheduled"),
        ("scheduled", "publishing"),
        ("publishing", "published"),
    ]
    assert [e["message"] for e in published["events"]].count("workflow started") == 1
    truth = [
        m
        for m in await sandbox.published(ready["account"]["ig_user_id"])
        if m["id"] == published["ig_media_id"]
    ]
    assert truth[0]["caption"] == "Second idea #bakery"
    # Once it has been scheduled, it is no longer a draft.
    assert_problem(await alice.client.delete(f"/v1/posts/{draft['id']}"), 409, "post_not_draft")


async def test_a_draft_without_a_time_is_scheduled_for_now(alice: ApiUser, ready: dict[str, Any]) -> None:
    draft = await _draft(alice, ready, caption="Whenever")
    scheduled = await alice.client.post(f"/v1/posts/{draft['id']}/schedule")
    assert scheduled.status_code == 200, scheduled.text
    await wait_for(alice.client, draft["id"], "published", within=25)


async def test_deleting_a_draft_and_isolation(alice: ApiUser, bob: ApiUser, ready: dict[str, Any]) -> None:
    draft = await _draft(alice, ready, caption="Maybe")
    url = f"/v1/posts/{draft['id']}"
    assert_problem(await bob.client.delete(url), 404, "post_not_found")
    assert_problem(await bob.client.post(f"{url}/schedule"), 404, "post_not_found")
    assert_problem(await bob.client.patch(url, json={"caption": "mine"}), 404, "post_not_found")
    assert (await bob.client.get("/v1/posts", params={"status": "draft"})).json()["data"] == []

    media = await upload_ok(alice.client)
    other = await _draft(alice, {**ready, "media": media}, caption="Keep")
    # The media of a draft is in use: it cannot be deleted under it.
    assert_problem(await alice.client.delete(f"/v1/media/{media}"), 409, "media_in_use")

    assert (await alice.client.delete(url)).status_code == 204
    assert_problem(await alice.client.get(url), 404, "post_not_found")
    assert (await alice.client.get(f"/v1/posts/{other['id']}")).json()["status"] == "draft"
    scheduled = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])
    refused = await alice.client.delete(f"/v1/posts/{scheduled['id']}")
    assert_problem(refused, 409, "post_not_draft")
    assert refused.json()["current_status"] == "scheduled"
    never = await alice.client.post(f"/v1/posts/{scheduled['id']}/schedule")
    assert_problem(never, 409, "post_not_draft")
