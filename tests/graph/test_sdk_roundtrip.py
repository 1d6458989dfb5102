"""An independent check of the sandbox's wire format: Meta's own Python SDK (facebook-business) drives it.

The SDK builds its own URLs, sends form bodies with the token in the query string, JSON-encodes lists and
bools its own way, and parses Meta's responses and error envelope with its own code. If it round-trips, the
sandbox speaks Meta's dialect rather than just the one our client happens to use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from facebook_business.adobjects.igmedia import IGMedia
from facebook_business.adobjects.iguser import IGUser
from facebook_business.adobjects.shadowigmediabuilder import ShadowIGMediaBuilder
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.support.media_server import StandardMedia


@pytest.fixture
def sdk_api(sandbox_url: str, account: SandboxAccount) -> Iterator[FacebookAdsApi]:
    session = FacebookSession(access_token=account.access_token, timeout=10)
    # GRAPH is the SDK's host setting (a class attribute); overriding it per session points it here.
    session.GRAPH = sandbox_url
    yield FacebookAdsApi(session, api_version="v25.0")
    session.requests.close()


def create_finish_publish(api: FacebookAdsApi, ig_user_id: str, params: dict[str, Any]) -> tuple[str, str]:
    user = IGUser(ig_user_id, api=api)
    container = user.create_media(params=params)
    container_id = container["id"]
    builder = ShadowIGMediaBuilder(container_id, api=api)
    deadline = time.monotonic() + 5
    while True:
        builder.api_get(fields=[ShadowIGMediaBuilder.Field.status_code, ShadowIGMediaBuilder.Field.status])
        if builder[ShadowIGMediaBuilder.Field.status_code] == "FINISHED":
            break
        assert time.monotonic() < deadline, builder[ShadowIGMediaBuilder.Field.status]
        time.sleep(0.02)
    published = user.create_media_publish(params={"creation_id": int(container_id)})
    return container_id, published["id"]


def run_image_round_trip(api: FacebookAdsApi, account: SandboxAccount, image_url: str) -> dict[str, Any]:
    params = {
        "image_url": image_url,
        "caption": "Published by Meta's SDK #sdk",
        "user_tags": [{"username": "sdk_friend", "x": 0.1, "y": 0.9}],
        "alt_text": "SDK alt text",
    }
    container_id, media_id = create_finish_publish(api, account.ig_user_id, params)
    media = IGMedia(media_id, api=api)
    media.api_get(
        fields=[
            IGMedia.Field.id,
            IGMedia.Field.permalink,
            IGMedia.Field.media_type,
            IGMedia.Field.media_product_type,
            IGMedia.Field.timestamp,
            IGMedia.Field.caption,
        ]
    )
    limit = list(
        IGUser(account.ig_user_id, api=api).get_content_publishing_limit(fields=["quota_usage", "config"])
    )
    listed = list(IGUser(account.ig_user_id, api=api).get_media(fields=["id", "caption"]))
    return {
        "container_id": container_id,
        "media": media.export_all_data(),
        "limit": limit[0].export_all_data(),
        "listed": [item.export_all_data() for item in listed],
    }


async def test_sdk_creates_waits_publishes_and_reads_back(
    sdk_api: FacebookAdsApi, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    # The SDK is synchronous (requests); the sandbox runs on its own thread, so a worker thread is enough.
    result = await asyncio.to_thread(run_image_round_trip, sdk_api, account, media.portrait)

    read = result["media"]
    assert read["media_type"] == "IMAGE"
    assert read["media_product_type"] == "FEED"
    assert read["caption"] == "Published by Meta's SDK #sdk"
    assert read["permalink"].startswith("https://www.instagram.com/p/")
    assert read["timestamp"].endswith("+0000")
    assert result["limit"] == {"quota_usage": 1, "config": {"quota_total": 100, "quota_duration": 86400}}
    assert [item["id"] for item in result["listed"]] == [read["id"]]

    [truth] = await admin.published(account.ig_user_id)
    assert truth["id"] == read["id"]
    assert truth["container_id"] == result["container_id"]
    assert truth["user_tags"] == [{"username": "sdk_friend", "x": 0.1, "y": 0.9}]
    assert truth["alt_text"] == "SDK alt text"
    # The SDK put the token in the query string; the call log must still never show it.
    assert all(account.access_token not in str(call) for call in await admin.calls())


def publish_too_early(api: FacebookAdsApi, ig_user_id: str, image_url: str) -> FacebookRequestError:
    user = IGUser(ig_user_id, api=api)
    container_id = user.create_media(params={"image_url": image_url})["id"]
    try:
        user.create_media_publish(params={"creation_id": int(container_id)})
    except FacebookRequestError as error:
        return error
    raise AssertionError("publishing an IN_PROGRESS container succeeded")


async def test_sdk_parses_the_sandbox_error_envelope(
    sandbox_url: str, admin: SandboxAdmin, media: StandardMedia
) -> None:
    account = await admin.create_account("sdk_slow", image_processing_seconds=60)
    session = FacebookSession(access_token=account.access_token, timeout=10)
    session.GRAPH = sandbox_url
    api = FacebookAdsApi(session, api_version="v25.0")
    error = await asyncio.to_thread(publish_too_early, api, account.ig_user_id, media.square)
    assert error.http_status() == 400
    assert error.api_error_code() == 9007
    assert error.api_error_subcode() == 2207027
    assert error.api_error_type() == "OAuthException"
    assert error.api_error_message() == "Media ID is not available"
    assert error.api_transient_error() is False
    session.requests.close()
