"""Posting schedules and queues through the API, against the real worker: slots across daylight-saving changes in
Europe/Paris and America/New_York, queue: true taking the next free slot, reflow through the workflows, field-level
422s and isolation."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from tests.api.helpers import ApiUser, assert_problem, schedule_ok, upload_ok, wait_for

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


async def _put_schedule(user: ApiUser, account_id: int, zone: str, *groups: dict[str, Any]) -> dict[str, Any]:
    response = await user.client.put(
        f"/v1/accounts/{account_id}/schedule", json={"time_zone": zone, "slots": list(groups)}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_slots_keep_their_wall_clock_time_across_dst(alice: ApiUser, ready: dict[str, Any]) -> None:
    account_id = ready["account"]["id"]
    for zone, summer in (("Europe/Paris", "+02:00"), ("America/New_York", "-04:00")):
        schedule = await _put_schedule(alice, account_id, zone, {"days": ["mon"], "times": ["09:00"]})
        assert schedule["slots"] == [{"day": "mon", "time": "09:00"}]
        queue = (await alice.client.get(f"/v1/accounts/{account_id}/queue", params={"limit": 100})).json()
        local_times = [slot["local_time"] for slot in queue["slots"]]
        # Half a year of Mondays: some on each side of the spring change, every one at 09:00 on the local clock.
        assert len(local_times) >= 20
        assert all(datetime.fromisoformat(t).strftime("%a %H:%M") == "Mon 09:00" for t in local_times)
        offsets = {t[-6:] for t in local_times}
        assert summer in offsets and len(offsets) == 2, offsets
        utc_hours = {datetime.fromisoformat(slot["at"]).hour for slot in queue["slots"]}
        assert len(utc_hours) == 2  # the instant moves with the clocks


async def test_queue_true_takes_the_next_free_slots_and_the_queue_lists_them(
    alice: ApiUser, ready: dict[str, Any]
) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    await _put_schedule(
        alice, account_id, "America/New_York", {"days": WEEKDAYS, "times": ["09:00", "17:30"]}
    )
    slots = (await alice.client.get(f"/v1/accounts/{account_id}/queue", params={"limit": 4})).json()["slots"]
    assert all(slot["posts"] == [] for slot in slots)

    # A post at the second slot by publish_at: the queue skips it.
    by_hand = await schedule_ok(alice.client, account_id, [media_id], publish_at=slots[1]["at"])
    first = await schedule_ok(alice.client, account_id, [media_id], queue=True, publish_at=None)
    second = await schedule_ok(alice.client, account_id, [media_id], queue=True, publish_at=None)
    assert [_z(first["publish_at"]), _z(second["publish_at"])] == [_z(slots[0]["at"]), _z(slots[2]["at"])]
    local = datetime.fromisoformat(slots[0]["local_time"])
    assert local.strftime("%H:%M") in {"09:00", "17:30"}

    listed = (await alice.client.get(f"/v1/accounts/{account_id}/queue", params={"limit": 4})).json()["slots"]
    assert [[post["id"] for post in slot["posts"]] for slot in listed] == [
        [first["id"]],
        [by_hand["id"]],
        [second["id"]],
        [],
    ]

    # A cancelled post frees its slot for the next one.
    cancelled = await alice.client.post(f"/v1/posts/{first['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    await wait_for(alice.client, first["id"], "cancelled")
    third = await schedule_ok(alice.client, account_id, [media_id], queue=True, publish_at=None)
    assert _z(third["publish_at"]) == _z(slots[0]["at"])


async def test_a_batch_fills_the_queue_in_order(alice: ApiUser, ready: dict[str, Any]) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    await _put_schedule(alice, account_id, "Europe/Paris", {"days": WEEKDAYS, "times": ["08:15"]})
    slots = (await alice.client.get(f"/v1/accounts/{account_id}/queue", params={"limit": 3})).json()["slots"]
    items = [
        {
            "account_id": account_id,
            "type": "IMAGE",
            "media_ids": [media_id],
            "caption": f"queued {n}",
            "queue": True,
        }
        | {"idempotency_key": f"batch-queue-{n}"}
        for n in range(3)
    ]
    response = await alice.client.post("/v1/posts/batch", json={"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["status"] for result in results] == [201, 201, 201]
    assert [_z(result["post"]["publish_at"]) for result in results] == [_z(slot["at"]) for slot in slots]


async def test_reflow_moves_queued_posts_into_the_new_slots(alice: ApiUser, ready: dict[str, Any]) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    await _put_schedule(alice, account_id, "Europe/Paris", {"days": ["mon"], "times": ["09:00"]})
    queued = [
        await schedule_ok(alice.client, account_id, [media_id], queue=True, publish_at=None) for _ in range(2)
    ]
    # A new schedule moves nothing by itself.
    await _put_schedule(alice, account_id, "Europe/Paris", {"days": ["tue"], "times": ["10:15"]})
    for post in queued:
        assert (await alice.client.get(f"/v1/posts/{post['id']}")).json()["publish_at"] == post["publish_at"]

    response = await alice.client.post(f"/v1/accounts/{account_id}/queue/reflow")
    assert response.status_code == 200, response.text
    reflow = response.json()
    assert [move["post_id"] for move in reflow["moved"]] == [post["id"] for post in queued]
    assert reflow["refused"] == [] and reflow["unchanged"] == []
    assert [_z(move["previous_publish_at"]) for move in reflow["moved"]] == [
        _z(post["publish_at"]) for post in queued
    ]
    new_times = [move["publish_at"] for move in reflow["moved"]]
    slots = (await alice.client.get(f"/v1/accounts/{account_id}/queue", params={"limit": 2})).json()["slots"]
    assert [_z(slot["at"]) for slot in slots] == [_z(t) for t in new_times]
    for slot in slots:
        assert datetime.fromisoformat(slot["local_time"]).strftime("%a %H:%M") == "Tue 10:15"
    # Through the workflows: each post's own time follows (the reschedule signal's activity writes it).
    for post, new_time in zip(queued, new_times, strict=True):
        await _wait_publish_at(alice, post["id"], _z(new_time))
    again = (await alice.client.post(f"/v1/accounts/{account_id}/queue/reflow")).json()
    assert again["moved"] == [] and again["unchanged"] == [post["id"] for post in queued]


async def test_bad_schedules_and_queue_requests_get_field_level_422s(
    alice: ApiUser, ready: dict[str, Any]
) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    url = f"/v1/accounts/{account_id}/schedule"
    zone = await alice.client.put(
        url, json={"time_zone": "Mars/Olympus", "slots": [{"days": ["mon"], "times": ["09:00"]}]}
    )
    assert_problem(zone, 422, "validation_error")
    assert zone.json()["field"] == "time_zone"
    bad_time = await alice.client.put(
        url, json={"time_zone": "UTC", "slots": [{"days": ["mon"], "times": ["24:00"]}]}
    )
    assert_problem(bad_time, 422, "validation_error")
    assert bad_time.json()["field"] == "slots[0].times[0]"
    bad_day = await alice.client.put(
        url, json={"time_zone": "UTC", "slots": [{"days": ["someday"], "times": ["09:00"]}]}
    )
    assert bad_day.json()["field"] == "slots[0].days[0]"

    no_schedule = await alice.client.post(
        "/v1/posts", json={"account_id": account_id, "type": "IMAGE", "media_ids": [media_id], "queue": True}
    )
    assert_problem(no_schedule, 422, "no_posting_schedule")
    assert no_schedule.json()["field"] == "queue"
    await _put_schedule(alice, account_id, "UTC", {"days": WEEKDAYS, "times": ["09:00"]})
    both = await alice.client.post(
        "/v1/posts",
        json={
            "account_id": account_id,
            "type": "IMAGE",
            "media_ids": [media_id],
            "queue": True,
            "publish_at": "2030-01-01T00:00:00Z",
        },
    )
    assert_problem(both, 422, "queue_with_publish_at")
    # The post's own rules still apply to a queued post, all at once.
    carousel = await alice.client.post(
        "/v1/posts",
        json={"account_id": account_id, "type": "CAROUSEL", "media_ids": [media_id], "queue": True},
    )
    assert_problem(carousel, 422, "media_count")


async def test_other_users_schedules_and_queues_are_not_found(
    alice: ApiUser, bob: ApiUser, ready: dict[str, Any]
) -> None:
    account_id, media_id = ready["account"]["id"], ready["media"]
    await _put_schedule(alice, account_id, "UTC", {"days": WEEKDAYS, "times": ["09:00"]})
    base = f"/v1/accounts/{account_id}"
    for response in await asyncio.gather(
        bob.client.get(f"{base}/schedule"),
        bob.client.put(
            f"{base}/schedule", json={"time_zone": "UTC", "slots": [{"days": ["mon"], "times": ["09:00"]}]}
        ),
        bob.client.delete(f"{base}/schedule"),
        bob.client.get(f"{base}/queue"),
        bob.client.post(f"{base}/queue/reflow"),
    ):
        assert_problem(response, 404, "account_not_found")
    bob_media = await upload_ok(bob.client)
    refused = await bob.client.post(
        "/v1/posts", json={"account_id": account_id, "type": "IMAGE", "media_ids": [bob_media], "queue": True}
    )
    assert_problem(refused, 422, "unknown_account", field="account_id")
    assert (await alice.client.get(f"{base}/schedule")).status_code == 200
    assert media_id != bob_media


async def _wait_publish_at(user: ApiUser, post_id: int, expected: str, within: float = 20.0) -> None:
    """Until the post's stored time is ``expected``: the list reads the rows (a reflow plans from them), while a
    post's own page shows its workflow's time as soon as the signal lands, before the row follows."""
    deadline = time.monotonic() + within
    current = ""
    while time.monotonic() < deadline:
        page = (await user.client.get("/v1/posts", params={"limit": 100})).json()["data"]
        current = next((_z(item["publish_at"]) for item in page if item["id"] == post_id), "")
        if current == expected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"post {post_id} is stored at {current or 'nothing'}, not {expected}")


def _z(value: str) -> str:
    """An instant as one spelling, for comparing the API's answers."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
