"""The sandbox over raw HTTP: state machine, media validation, quotas, parameter encodings, Meta's envelope.

Nothing here uses GraphClient, so these tests pin the sandbox's wire behaviour on their own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox.admin_client import SandboxAccount, SandboxAdmin
from sandbox.config import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID
from tests.graph.conftest import API_VERSION
from tests.support.media import broken_video, video
from tests.support.media_server import MediaServer, StandardMedia


class Graph:
    """Raw Graph calls as a test would write them with curl."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, token: str) -> None:
        self.http, self.base, self.token = http, f"{base_url}/{API_VERSION}", token

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(f"{self.base}/{path}", params=params, headers=self.auth())

    async def post(self, path: str, **data: Any) -> httpx.Response:
        return await self.http.post(f"{self.base}/{path}", data=data, headers=self.auth())

    async def create(self, user: str, **data: Any) -> str:
        response = await self.post(f"{user}/media", **data)
        assert response.status_code == 200, response.text
        container_id: str = response.json()["id"]
        return container_id

    async def status(self, container_id: str) -> str:
        response = await self.get(container_id, fields="status_code")
        code: str = response.json()["status_code"]
        return code

    async def wait(self, container_id: str, expected: str) -> str:
        for _ in range(250):
            status = await self.status(container_id)
            if status == expected:
                return status
            await asyncio.sleep(0.02)
        raise AssertionError(f"{container_id} stayed {status}")


def error_of(response: httpx.Response) -> tuple[int, int | None]:
    error = response.json()["error"]
    return error["code"], error.get("error_subcode")


@pytest.fixture
def raw(http: httpx.AsyncClient, sandbox_url: str, account: SandboxAccount) -> Graph:
    return Graph(http, sandbox_url, account.access_token)


# Container state machine


async def test_state_machine_on_the_sandbox_clock(
    admin: SandboxAdmin, http: httpx.AsyncClient, sandbox_url: str, media: StandardMedia
) -> None:
    await admin.freeze_clock()
    account = await admin.create_account("clockwork", image_processing_seconds=10)
    graph = Graph(http, sandbox_url, account.access_token)
    published = await graph.create(account.ig_user_id, image_url=media.square)
    abandoned = await graph.create(account.ig_user_id, image_url=media.square)
    assert await graph.status(published) == "IN_PROGRESS"
    response = await graph.post(f"{account.ig_user_id}/media_publish", creation_id=published)
    assert (response.status_code, error_of(response)) == (400, (9007, 2207027))
    assert response.json()["error"]["message"] == "Media ID is not available"

    await admin.advance_clock(10)
    assert await graph.status(published) == "FINISHED"
    response = await graph.post(f"{account.ig_user_id}/media_publish", creation_id=published)
    assert response.status_code == 200
    assert await graph.status(published) == "PUBLISHED"

    await admin.advance_clock(24 * 3600)
    assert await graph.status(abandoned) == "EXPIRED"
    assert await graph.status(published) == "PUBLISHED"
    response = await graph.post(f"{account.ig_user_id}/media_publish", creation_id=abandoned)
    assert error_of(response) == (24, 2207008)


async def test_container_status_wording(raw: Graph, account: SandboxAccount, media: StandardMedia) -> None:
    container_id = await raw.create(account.ig_user_id, image_url=media.square)
    body = (await raw.get(container_id, fields="id,status_code,status")).json()
    assert body == {
        "id": container_id,
        "status_code": "FINISHED",
        "status": "Finished: Media has been uploaded and it is ready to be published.",
    }
    await raw.post(f"{account.ig_user_id}/media_publish", creation_id=container_id)
    body = (await raw.get(container_id, fields="status_code,status")).json()
    assert body["status"] == "Published: Media has been successfully published."
    # Meta returns the id even when it was not asked for, and only the id by default.
    assert set(body) == {"id", "status_code", "status"}
    assert (await raw.get(container_id)).json() == {"id": container_id}


async def test_videos_are_processed_after_creation(
    admin: SandboxAdmin, raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    good = await raw.create(account.ig_user_id, media_type="REELS", video_url=media.mov)
    not_video = await raw.create(account.ig_user_id, media_type="REELS", video_url=media.html)
    missing = await raw.create(account.ig_user_id, media_type="REELS", video_url=media.missing)
    await raw.wait(good, "FINISHED")
    await raw.wait(not_video, "ERROR")
    await raw.wait(missing, "ERROR")
    status = (await raw.get(not_video, fields="status")).json()["status"]
    assert status == "Error: Media upload has failed with error code 2207026"
    assert (await admin.container(missing))["error_subcode"] == 2207077
    assert (await admin.container(good))["media_info"]["format"] == "MOV"

    await admin.configure(max_reel_bytes=1000)
    too_big = await raw.create(account.ig_user_id, media_type="REELS", video_url=media.video)
    await raw.wait(too_big, "ERROR")
    assert (await admin.container(too_big))["error_subcode"] == 2207085


async def test_video_processing_delay_applies_after_the_download(
    admin: SandboxAdmin, http: httpx.AsyncClient, sandbox_url: str, media: StandardMedia
) -> None:
    await admin.freeze_clock()
    account = await admin.create_account("video_delay", video_processing_seconds=60)
    graph = Graph(http, sandbox_url, account.access_token)
    container = await graph.create(account.ig_user_id, media_type="REELS", video_url=media.video)
    for _ in range(250):
        if (await admin.container(container))["processing"] is False:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the video download never finished")
    assert await graph.status(container) == "IN_PROGRESS"
    await admin.advance_clock(60)
    assert await graph.status(container) == "FINISHED"


# Media validation


IMAGE_CASES = [
    ("square", None),
    ("portrait", None),
    ("landscape", None),
    ("tiny", None),
    ("huge_width", None),
    ("tall", (36003, 2207009)),
    ("wide", (36003, 2207009)),
    ("png", (36001, 2207005)),
    ("video", (36001, 2207005)),
    ("oversized", (36000, 2207004)),
    ("html", (9004, 2207052)),
    ("missing", (9004, 2207052)),
]


@pytest.mark.parametrize(("name", "error"), IMAGE_CASES, ids=[name for name, _ in IMAGE_CASES])
async def test_feed_image_rules(
    raw: Graph, account: SandboxAccount, media: StandardMedia, name: str, error: tuple[int, int] | None
) -> None:
    response = await raw.post(f"{account.ig_user_id}/media", image_url=getattr(media, name), caption="x")
    if error is None:
        assert response.status_code == 200, response.text
    else:
        assert (response.status_code, error_of(response)) == (400, error)
        assert response.json()["error"]["error_user_msg"]


async def test_image_width_is_scaled_not_refused(
    admin: SandboxAdmin, raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    tiny = await raw.create(account.ig_user_id, image_url=media.tiny)
    huge = await raw.create(account.ig_user_id, image_url=media.huge_width)
    assert (await admin.container(tiny))["media_info"]["stored_width"] == 320
    assert (await admin.container(huge))["media_info"]["stored_width"] == 1440


async def test_png_can_be_allowed(
    admin: SandboxAdmin, raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    await admin.configure(accept_png=True)
    await raw.create(account.ig_user_id, image_url=media.png)


async def test_stories_have_no_aspect_ratio_rule(
    raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    await raw.create(account.ig_user_id, media_type="STORIES", image_url=media.tall)


async def test_slow_media_hosts_time_out(
    admin: SandboxAdmin, raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    await admin.configure(download_timeout_seconds=0.2)
    response = await raw.post(f"{account.ig_user_id}/media", image_url=media.slow_image)
    assert error_of(response) == (-2, 2207003)


CREATE_CASES: list[tuple[dict[str, Any], tuple[int, int | None]]] = [
    ({"caption": "x" * 2201}, (36004, 2207010)),
    ({"caption": " ".join(f"#t{i}" for i in range(31))}, (36004, 2207010)),
    ({"caption": " ".join(f"@u{i}" for i in range(21))}, (100, 2207040)),
    ({"media_type": "GIF"}, (100, 2207023)),
    ({"media_type": "VIDEO", "video_url": "VIDEO"}, (100, 2207023)),
    ({"media_type": "CAROUSEL", "children": "1"}, (100, 2207028)),
    ({"media_type": "CAROUSEL", "children": ",".join(["1"] * 11)}, (100, 2207028)),
    ({"media_type": "CAROUSEL", "children": "1,2"}, (24, 2207008)),
    ({"media_type": "REELS", "video_url": "VIDEO", "thumb_offset": "-1"}, (1, 2207057)),
    ({"media_type": "REELS"}, (100, None)),
    ({"location_id": "Paris"}, (100, None)),
    ({"user_tags": json.dumps([{"username": "bob"}])}, (100, None)),
    ({"user_tags": json.dumps([{"username": "bob", "x": 1.5, "y": 0.5}])}, (100, None)),
    ({"collaborators": json.dumps(["a", "b", "c", "d"])}, (100, None)),
    ({"alt_text": "a" * 1001}, (100, None)),
    ({"upload_type": "resumable", "media_type": "REELS"}, (100, None)),
    ({"is_carousel_item": "true", "caption": "not on items"}, (100, None)),
]


@pytest.mark.parametrize(
    ("params", "error"), CREATE_CASES, ids=[f"{i}-{e[0]}/{e[1]}" for i, (_, e) in enumerate(CREATE_CASES)]
)
async def test_creation_rules(
    raw: Graph,
    account: SandboxAccount,
    media: StandardMedia,
    params: dict[str, Any],
    error: tuple[int, int | None],
) -> None:
    data = {"image_url": media.square, **params}
    if data.get("video_url") == "VIDEO":
        data["video_url"] = media.video
    response = await raw.post(f"{account.ig_user_id}/media", **data)
    assert (response.status_code, error_of(response)) == (400, error)


async def test_carousel_children_rules(
    raw: Graph, account: SandboxAccount, media: StandardMedia, admin: SandboxAdmin
) -> None:
    user = account.ig_user_id
    item = await raw.create(user, image_url=media.square, is_carousel_item="true")
    not_item = await raw.create(user, image_url=media.square)
    response = await raw.post(f"{user}/media", media_type="CAROUSEL", children=f"{item},{not_item}")
    assert error_of(response) == (24, 2207008)
    # Children may be sent as a comma list, JSON, or (JSON body) a real array.
    second = await raw.create(user, image_url=media.square, is_carousel_item="true")
    parent = await raw.create(user, media_type="CAROUSEL", children=json.dumps([item, second]))
    assert (await admin.container(parent))["children"] == [item, second]
    publish = await raw.post(f"{user}/media_publish", creation_id=item)
    assert error_of(publish)[0] == 100


# Quotas


async def test_publishing_quota_is_a_rolling_window(
    admin: SandboxAdmin, http: httpx.AsyncClient, sandbox_url: str, media: StandardMedia
) -> None:
    await admin.freeze_clock()
    account = await admin.create_account("rolling", quota_total=2)
    graph = Graph(http, sandbox_url, account.access_token)
    user = account.ig_user_id

    async def publish() -> httpx.Response:
        return await graph.post(
            f"{user}/media_publish", creation_id=await graph.create(user, image_url=media.square)
        )

    assert (await publish()).status_code == 200
    await admin.advance_clock(12 * 3600)
    assert (await publish()).status_code == 200
    refused = await publish()
    assert error_of(refused) == (9, 2207042)
    limit = (await graph.get(f"{user}/content_publishing_limit", fields="quota_usage,config")).json()
    assert limit == {"data": [{"quota_usage": 2, "config": {"quota_total": 2, "quota_duration": 86400}}]}
    # Without fields Meta answers quota_usage only.
    assert (await graph.get(f"{user}/content_publishing_limit")).json() == {"data": [{"quota_usage": 2}]}
    # The first publish ages out 24 h after it happened, not at midnight.
    await admin.advance_clock(12 * 3600)
    assert (await publish()).status_code == 200
    since = int((await admin.freeze_clock()).timestamp()) - 3600
    recent = await graph.get(f"{user}/content_publishing_limit", since=since)
    assert recent.json()["data"][0]["quota_usage"] == 1


async def test_container_creation_cap(
    admin: SandboxAdmin, raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    await admin.configure(container_cap=2)
    await raw.create(account.ig_user_id, image_url=media.square)
    await raw.create(account.ig_user_id, image_url=media.square)
    response = await raw.post(f"{account.ig_user_id}/media", image_url=media.square)
    assert error_of(response) == (4, None)


async def test_errored_container_publish_modes(
    admin: SandboxAdmin, raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    broken = await raw.create(account.ig_user_id, media_type="REELS", video_url=media.html)
    await raw.wait(broken, "ERROR")
    assert error_of(await raw.post(f"{account.ig_user_id}/media_publish", creation_id=broken)) == (
        9007,
        2207027,
    )
    await admin.configure(errored_publish_mode="expired")
    assert error_of(await raw.post(f"{account.ig_user_id}/media_publish", creation_id=broken)) == (
        24,
        2207008,
    )


# Parameters, tokens and accounts


async def test_parameter_encodings(
    http: httpx.AsyncClient,
    sandbox_url: str,
    admin: SandboxAdmin,
    account: SandboxAccount,
    media: StandardMedia,
) -> None:
    user, token = account.ig_user_id, account.access_token
    base = f"{sandbox_url}/{API_VERSION}/{user}/media"
    # Meta's documented relaxed syntax, all in the query string, token included.
    relaxed = await http.post(
        base,
        params={
            "image_url": media.square,
            "user_tags": "[{username:'bob',x:0.5,y:0.25}]",
            "access_token": token,
        },
    )
    as_json = await http.post(
        base,
        json={
            "image_url": media.square,
            "user_tags": [{"username": "bob", "x": 0.5, "y": 0.25}],
            "caption": "#json",
        },
        headers={"Authorization": f"OAuth {token}"},
    )
    multipart = await http.post(
        base,
        files={"image_url": (None, media.square), "caption": (None, "multi")},
        headers={"Authorization": f"Bearer {token}"},
    )
    unversioned = await http.post(
        f"{sandbox_url}/{user}/media", data={"image_url": media.square, "access_token": token}
    )
    for response in (relaxed, as_json, multipart, unversioned):
        assert response.status_code == 200, response.text
    tags = [(await admin.container(r.json()["id"]))["options"].get("user_tags") for r in (relaxed, as_json)]
    assert tags == [[{"username": "bob", "x": 0.5, "y": 0.25}]] * 2
    assert (await admin.container(multipart.json()["id"]))["options"]["caption"] == "multi"
    assert unversioned.headers["facebook-api-version"] == "v25.0"
    calls = await admin.calls()
    assert all(token not in json.dumps(call) for call in calls)


async def test_meta_envelope_and_headers(http: httpx.AsyncClient, sandbox_url: str) -> None:
    response = await http.get(f"{sandbox_url}/v26.0/me", params={"access_token": "garbage-token"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.headers["facebook-api-version"] == "v26.0"
    assert response.headers["www-authenticate"].startswith('OAuth "Facebook Platform" "invalid_token"')
    error = response.json()["error"]
    assert error == {
        "message": "Invalid OAuth access token - Cannot parse access token",
        "type": "OAuthException",
        "code": 190,
        "is_transient": False,
        "fbtrace_id": response.headers["x-fb-trace-id"],
    }
    missing = await http.get(f"{sandbox_url}/v25.0/me")
    assert error_of(missing) == (104, None)


async def test_injected_server_errors_look_like_metas(
    http: httpx.AsyncClient, sandbox_url: str, admin: SandboxAdmin
) -> None:
    await admin.add_fault("error", code=2)
    await admin.add_fault("html_502")
    first = await http.get(f"{sandbox_url}/v25.0/me", params={"access_token": DEMO_ACCESS_TOKEN})
    assert first.status_code == 500
    assert first.json()["error"]["is_transient"] is True
    assert "unknown_error" in first.headers["www-authenticate"]
    second = await http.get(f"{sandbox_url}/v25.0/me", params={"access_token": DEMO_ACCESS_TOKEN})
    assert (second.status_code, second.headers["content-type"].split(";")[0]) == (502, "text/html")
    third = await http.get(f"{sandbox_url}/v25.0/me", params={"access_token": DEMO_ACCESS_TOKEN})
    assert third.status_code == 200


async def test_unknown_fields_paths_and_foreign_objects(
    raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    container_id = await raw.create(account.ig_user_id, image_url=media.square)
    bad_field = await raw.get(container_id, fields="id,likes")
    assert error_of(bad_field) == (100, None)
    assert "nonexisting field (likes)" in bad_field.json()["error"]["message"]
    assert error_of(await raw.get(f"{account.ig_user_id}/insights_and_more")) == (2500, None)
    foreign = Graph(raw.http, raw.base.rsplit("/", 1)[0], DEMO_ACCESS_TOKEN)
    assert error_of(await foreign.get(container_id, fields="status_code")) == (100, 33)
    assert error_of(await foreign.post(f"{account.ig_user_id}/media", image_url=media.square)) == (100, 33)
    publish = await foreign.post(f"{DEMO_IG_USER_ID}/media_publish", creation_id=container_id)
    assert error_of(publish) == (24, 2207008)


async def test_media_fields_and_nested_children(
    raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    user = account.ig_user_id
    items = [await raw.create(user, image_url=media.square, is_carousel_item="true") for _ in range(2)]
    parent = await raw.create(user, media_type="CAROUSEL", children=",".join(items), caption="album")
    media_id = (await raw.post(f"{user}/media_publish", creation_id=parent)).json()["id"]
    body = (
        await raw.get(
            media_id,
            fields="id,media_type,children{id,media_type,media_url,permalink},owner{id},comments_count",
        )
    ).json()
    assert body["media_type"] == "CAROUSEL_ALBUM"
    assert body["owner"] == {"id": user}
    assert body["comments_count"] == 0
    children = body["children"]["data"]
    assert [c["media_type"] for c in children] == ["IMAGE", "IMAGE"]
    # Carousel children have no permalink of their own, so the key is absent rather than null.
    assert all("permalink" not in c and c["media_url"] == media.square for c in children)


async def test_media_list_pages_with_cursors(
    raw: Graph, account: SandboxAccount, media: StandardMedia
) -> None:
    user = account.ig_user_id
    for _ in range(3):
        await raw.post(f"{user}/media_publish", creation_id=await raw.create(user, image_url=media.square))
    first = (await raw.get(f"{user}/media", limit=2)).json()
    assert len(first["data"]) == 2 and "next" in first["paging"]
    assert "access_token" not in first["paging"]["next"]
    second = (await raw.get(f"{user}/media", limit=2, after=first["paging"]["cursors"]["after"])).json()
    assert len(second["data"]) == 1 and "next" not in second["paging"]
    ids = [m["id"] for m in first["data"] + second["data"]]
    assert ids == sorted(ids, reverse=True)


async def test_usage_headers_and_call_budget(
    raw: Graph, admin: SandboxAdmin, account: SandboxAccount
) -> None:
    await admin.configure(buc_calls_per_hour=4)
    usages = []
    for _ in range(4):
        response = await raw.get("me", fields="id")
        buc = json.loads(response.headers["x-business-use-case-usage"])
        usages.append(buc[account.ig_user_id][0]["call_count"])
        assert json.loads(response.headers["x-app-usage"])["call_count"] == usages[-1]
    assert usages == [25, 50, 75, 100]
    throttled = await raw.get("me", fields="id")
    assert error_of(throttled) == (80002, None)
    regain = json.loads(throttled.headers["x-business-use-case-usage"])[account.ig_user_id][0]
    assert regain["estimated_time_to_regain_access"] >= 1
    await admin.advance_clock(3600)
    assert (await raw.get("me", fields="id")).status_code == 200


async def test_call_log_is_ordered_and_filterable(raw: Graph, admin: SandboxAdmin) -> None:
    await admin.add_fault("error", endpoint="user_read", code=17)
    await raw.get("me")
    await raw.get("me")
    calls = await admin.calls(endpoint="user_read")
    assert [(c["status"], c["error_code"], c["fault"]) for c in calls] == [
        (400, 17, "error"),
        (200, None, None),
    ]
    assert calls[0]["seq"] < calls[1]["seq"]
    assert calls[0]["started_at"] <= calls[0]["finished_at"]
    later = await admin.calls(since=calls[0]["seq"])
    assert [c["seq"] for c in later] == [calls[1]["seq"]]


async def test_a_fault_with_a_probability_hits_that_share_of_calls_the_same_ones_after_a_reset(
    raw: Graph, admin: SandboxAdmin
) -> None:
    async def hits() -> list[bool]:
        await admin.add_fault(
            "error", endpoint="user_read", code=2, http_status=500, count=None, probability=0.25
        )
        return [(await raw.get("me")).status_code == 500 for _ in range(200)]

    first = await hits()
    assert 30 <= sum(first) <= 70
    await admin.clear_faults()
    assert await hits() == first
    faults = await admin.faults()
    assert faults[0]["hits"] == sum(first) and faults[0]["probability"] == 0.25


async def test_fault_specs_are_validated(http: httpx.AsyncClient, sandbox_url: str) -> None:
    url = f"{sandbox_url}/_sandbox/faults"
    for body in (
        {"action": "error"},
        {"action": "error", "code": 2, "endpoint": "no_such_endpoint"},
        {"action": "container_error", "endpoint": "media_publish", "error_subcode": 1},
        {"action": "explode"},
        {"action": "drop", "probability": 0},
        {"action": "drop", "probability": 1.5},
    ):
        assert (await http.post(url, json=body)).status_code == 422, body


async def test_reset_forgets_everything(admin: SandboxAdmin, raw: Graph) -> None:
    await admin.configure(quota_total=1)
    await admin.add_fault("error", code=2, count=None)
    await admin.reset()
    assert error_of(await raw.get("me")) == (190, None)
    assert (await admin.configure())["quota_total"] == 100
    assert await admin.faults() == []
    assert [c["endpoint"] for c in await admin.calls()] == ["user_read"]


async def test_token_exchange_for_facebook_login(
    http: httpx.AsyncClient, sandbox_url: str, admin: SandboxAdmin
) -> None:
    config = await admin.configure()
    params = {
        "grant_type": "fb_exchange_token",
        "client_id": config["app_id"],
        "client_secret": config["app_secret"],
        "fb_exchange_token": DEMO_ACCESS_TOKEN,
    }
    response = await http.get(f"{sandbox_url}/v25.0/oauth/access_token", params=params)
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 60 * 86400
    wrong = await http.get(
        f"{sandbox_url}/v25.0/oauth/access_token", params=params | {"client_secret": "nope"}
    )
    assert error_of(wrong) == (1, None)
    assert all(
        "nope" not in json.dumps(c) and DEMO_ACCESS_TOKEN not in json.dumps(c) for c in await admin.calls()
    )


async def test_delete_and_stories_edge(
    raw: Graph, admin: SandboxAdmin, account: SandboxAccount, media: StandardMedia
) -> None:
    user = account.ig_user_id
    post = (
        await raw.post(f"{user}/media_publish", creation_id=await raw.create(user, image_url=media.square))
    ).json()["id"]
    story_container = await raw.create(user, media_type="STORIES", image_url=media.tall)
    story = (await raw.post(f"{user}/media_publish", creation_id=story_container)).json()["id"]
    assert [s["id"] for s in (await raw.get(f"{user}/stories")).json()["data"]] == [story]
    deleted = await raw.http.delete(f"{raw.base}/{post}", headers=raw.auth())
    assert deleted.json() == {"success": True}
    assert (await raw.get(f"{user}/media")).json()["data"] == []
    [truth, _] = await admin.published(user)
    assert truth["id"] == post and truth["deleted_at"] is not None


@pytest.mark.parametrize(
    ("media_type", "made", "options", "subcode"),
    [
        ("REELS", lambda: broken_video(), {}, 2207026),
        ("REELS", lambda: video(2.0), {}, 2207026),
        ("REELS", lambda: video(3.5, codec="mpeg4"), {}, 2207026),
        ("REELS", lambda: video(3.5, fps=15), {}, 2207026),
        ("STORIES", lambda: video(61.0, width=32, height=56, fps=24, audio=False), {}, 2207026),
        ("REELS", lambda: video(4.0), {"thumb_offset": "4000"}, 2207057),
    ],
    ids=["undecodable", "too-short", "mpeg4", "15-fps", "story-over-a-minute", "thumb-offset-past-the-end"],
)
async def test_a_video_meta_cannot_process_turns_its_container_to_error(
    raw: Graph,
    account: SandboxAccount,
    media_server: MediaServer,
    media_type: str,
    made: Callable[[], bytes],
    options: dict[str, str],
    subcode: int,
) -> None:
    url = media_server.put(f"{uuid.uuid4().hex}.mp4", made(), "video/mp4")
    container = await raw.create(account.ig_user_id, media_type=media_type, video_url=url, **options)
    await raw.wait(container, "ERROR")
    status = (await raw.get(container, fields="status")).json()["status"]
    assert status == f"Error: Media upload has failed with error code {subcode}"
    response = await raw.post(f"{account.ig_user_id}/media_publish", creation_id=container)
    assert response.status_code == 400


async def test_a_video_within_the_specs_is_decoded_and_measured(
    admin: SandboxAdmin, raw: Graph, account: SandboxAccount, media_server: MediaServer
) -> None:
    url = media_server.put(
        f"{uuid.uuid4().hex}.mov", video(4.0, container="mov", codec="libx265"), "video/quicktime"
    )
    container = await raw.create(account.ig_user_id, media_type="REELS", video_url=url, thumb_offset="3999")
    await raw.wait(container, "FINISHED")
    info = (await admin.container(container))["media_info"]
    assert (info["format"], info["duration_ms"], info["video_codec"], info["frame_rate"]) == (
        "MOV",
        4000,
        "hevc",
        30.0,
    )
    assert (info["width"], info["height"]) == (180, 320)


async def test_an_idle_connection_outlives_a_clients_keep_alive_expiry(sandbox_url: str) -> None:
    """httpx lets an idle connection go after 5 s; were the sandbox to close it at the same moment (uvicorn's
    default), a request sent in that instant would meet a reset. The sandbox keeps it open well beyond."""
    host, port = sandbox_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    idle = (httpx.Limits().keepalive_expiry or 5.0) + 1.0

    async def health() -> None:
        writer.write(f"GET /_sandbox/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(
            int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
        )
        await reader.readexactly(length)

    try:
        await health()
        await asyncio.sleep(idle)
        await health()  # on the same connection: uvicorn's default would have closed it after 5 s
    finally:
        writer.close()
