"""/v1/series against the real worker: the series' workflow creates its occurrences as posts 30 days ahead, an edit
re-creates the scheduled ones from the new series, a cancellation cancels them; field-level 422s; isolation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.api.helpers import ApiUser, assert_problem, upload_ok, wait_for

NEW_YORK = ZoneInfo("America/New_York")


def _tomorrow_local() -> str:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone(NEW_YORK)
    return f"{tomorrow.date().isoformat()}T09:00"


def _body(account_id: int, media_id: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account_id": account_id,
        "type": "IMAGE",
        "media_ids": [media_id],
        "caption": "Weekly special #bakery",
        "rule": "FREQ=WEEKLY;BYDAY=MO,TH",
        "starts_at": _tomorrow_local(),
        "time_zone": "America/New_York",
    }
    body.update(fields)
    return body


async def _until(
    user: ApiUser, series_id: int, done: Callable[[dict[str, Any]], bool], within: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await user.client.get(f"/v1/series/{series_id}")
        assert response.status_code == 200, response.text
        detail = response.json()
        if done(detail):
            return detail
        await asyncio.sleep(0.3)
    raise AssertionError(f"series {series_id} never got there: {detail}")


def _scheduled(detail: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in detail["occurrences"] if o["status"] == "scheduled"]


async def test_occurrences_become_posts_at_their_local_time(alice: ApiUser, ready: dict[str, Any]) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    response = await alice.client.post("/v1/series", json=_body(account_id, media_id))
    assert response.status_code == 201, response.text
    series = response.json()
    assert series["status"] == "active" and series["rule"] == "FREQ=WEEKLY;BYDAY=MO,TH"

    # Two a week, 30 days ahead: 8 or 9 posts, created by the series' workflow.
    detail = await _until(alice, series["id"], lambda d: len(_scheduled(d)) >= 8)
    occurrences = _scheduled(detail)
    assert all(o["problem"] is None for o in detail["occurrences"])
    for occurrence in occurrences:
        local = datetime.fromisoformat(occurrence["publish_at"].replace("Z", "+00:00")).astimezone(NEW_YORK)
        assert local.strftime("%H:%M") == "09:00" and local.strftime("%a") in {"Mon", "Thu"}
        assert occurrence["local_time"] == local.strftime("%Y-%m-%dT%H:%M")
    post = (await alice.client.get(f"/v1/posts/{occurrences[0]['post_id']}")).json()
    assert post["caption"] == "Weekly special #bakery" and post["status"] == "scheduled"
    assert [event["to_status"] for event in post["events"] if event["kind"] == "transition"][:1] == [
        "scheduled"
    ]
    assert detail["upcoming"] and detail["upcoming"][0]["local_time"] > occurrences[-1]["local_time"]
    listed = (await alice.client.get("/v1/series")).json()["data"]
    assert [s["id"] for s in listed] == [series["id"]]


async def test_an_edit_recreates_the_scheduled_occurrences_and_a_cancel_cancels_them(
    alice: ApiUser, ready: dict[str, Any]
) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    series = (await alice.client.post("/v1/series", json=_body(account_id, media_id))).json()
    before = await _until(alice, series["id"], lambda d: len(_scheduled(d)) >= 8)
    old_posts = [o["post_id"] for o in _scheduled(before)]

    edited = await alice.client.patch(
        f"/v1/series/{series['id']}", json={"caption": "New special", "rule": "FREQ=WEEKLY;BYDAY=TU"}
    )
    assert edited.status_code == 200, edited.text
    for post_id in old_posts:
        await wait_for(alice.client, post_id, "cancelled")
    after = await _until(
        alice,
        series["id"],
        lambda d: len(_scheduled(d)) >= 4 and all(o["post_id"] not in old_posts for o in _scheduled(d)),
    )
    for occurrence in _scheduled(after):
        local = datetime.fromisoformat(occurrence["publish_at"].replace("Z", "+00:00")).astimezone(NEW_YORK)
        assert local.strftime("%a %H:%M") == "Tue 09:00"
        post = (await alice.client.get(f"/v1/posts/{occurrence['post_id']}")).json()
        assert post["caption"] == "New special"

    cancelled = await alice.client.delete(f"/v1/series/{series['id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["upcoming"] == []
    for occurrence in _scheduled(after):
        await wait_for(alice.client, occurrence["post_id"], "cancelled")
    await asyncio.sleep(1.0)  # the workflow has ended: nothing more is created
    final = (await alice.client.get(f"/v1/series/{series['id']}")).json()
    assert _scheduled(final) == []
    again = await alice.client.patch(f"/v1/series/{series['id']}", json={"caption": "too late"})
    assert_problem(again, 409, "series_cancelled")


async def test_bad_series_get_field_level_422s(alice: ApiUser, ready: dict[str, Any]) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"rule": "FREQ=MINUTELY"}, "rule", "rrule_too_frequent"),
        ({"rule": "FREQ=HOURLY;BYMINUTE=0,30"}, "rule", "rrule_too_frequent"),
        ({"rule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "rule", "rrule_never_occurs"),
        ({"rule": "FREQ=DAILY;COUNT=1", "starts_at": "2020-01-01T09:00"}, "rule", "rrule_never_occurs"),
        ({"rule": "FREQ=DAILY;BYSETPOS=1"}, "rule", "rrule_part_not_supported"),
        ({"rule": "nonsense"}, "rule", "invalid_rrule"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "unknown_time_zone"),
        ({"media_ids": [999999]}, "media_ids[0]", "unknown_media"),
        ({"type": "CAROUSEL"}, "media_ids", "media_count"),
        ({"starts_at": "2027-01-01T09:00:00+01:00"}, "starts_at", "validation_error"),
        ({"starts_at": "2090-01-01T09:00"}, "starts_at", "starts_at_out_of_range"),
    ]
    for fields, field, code in cases:
        response = await alice.client.post("/v1/series", json=_body(account_id, media_id, **fields))
        assert response.status_code == 422, (fields, response.text)
        body = response.json()
        codes = {(error["field"], error["code"]) for error in body.get("errors") or []} | {
            (body.get("field"), body["code"])
        }
        assert (field, code) in codes or (code == "validation_error" and body.get("field") == field), (
            fields,
            body,
        )
    assert (await alice.client.get("/v1/series")).json()["data"] == []


async def test_other_users_series_are_not_found(alice: ApiUser, bob: ApiUser, ready: dict[str, Any]) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    series = (await alice.client.post("/v1/series", json=_body(account_id, media_id))).json()
    url = f"/v1/series/{series['id']}"
    for response in await asyncio.gather(
        bob.client.get(url), bob.client.patch(url, json={"caption": "mine"}), bob.client.delete(url)
    ):
        assert_problem(response, 404, "series_not_found")
    assert (await bob.client.get("/v1/series")).json()["data"] == []
    bob_media = await upload_ok(bob.client)
    refused = await bob.client.post("/v1/series", json=_body(account_id, bob_media))
    assert_problem(refused, 422, "unknown_account", field="account_id")
    assert (await alice.client.get(url)).json()["status"] == "active"
    await alice.client.delete(url)


async def test_disconnecting_the_account_takes_its_series_and_schedule_with_it(
    alice: ApiUser, ready: dict[str, Any]
) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    series = (await alice.client.post("/v1/series", json=_body(account_id, media_id))).json()
    await _until(alice, series["id"], lambda d: len(_scheduled(d)) >= 8)
    schedule = {"time_zone": "UTC", "slots": [{"days": ["mon"], "times": ["09:00"]}]}
    assert (await alice.client.put(f"/v1/accounts/{account_id}/schedule", json=schedule)).status_code == 200
    queued = await alice.client.post(
        "/v1/posts", json={"account_id": account_id, "type": "IMAGE", "media_ids": [media_id], "queue": True}
    )
    assert queued.status_code == 201, queued.text

    gone = await alice.client.delete(f"/v1/accounts/{account_id}")
    assert gone.status_code in (202, 204), gone.text
    deadline = time.monotonic() + 30
    while (await alice.client.get(f"/v1/accounts/{account_id}")).status_code != 404:
        assert time.monotonic() < deadline, "the account was never deleted"
        await asyncio.sleep(0.3)
    assert_problem(await alice.client.get(f"/v1/series/{series['id']}"), 404, "series_not_found")
    assert_problem(await alice.client.get(f"/v1/accounts/{account_id}/schedule"), 404, "account_not_found")
