"""Videos probed at upload, the video rules of each post type, previews and their URLs, and the derived objects'
lifecycle (deleted with their media, swept when orphaned): real MP4 and MOV files made by PyAV, real MinIO."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlmodel import Session

from api.deps import AppServices
from api.media_sweep import sweep_orphans
from chronogram.media_rules import MediaRejected
from chronogram.models import MediaAsset
from chronogram.previews import rendition_key
from chronogram.video_probe import probe_video
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, assert_problem, at, connect, schedule, upload, upload_ok, wait_for
from tests.support.media import broken_video, jpeg, mov, png, video


def _row(services: AppServices, media_id: int) -> MediaAsset:
    with Session(services.engine) as session:
        row = session.get(MediaAsset, media_id)
    assert row is not None
    return row


def _keys(services: AppServices) -> set[str]:
    bucket = services.settings.media_bucket
    return {
        item.object_name for item in services.storage.list_objects(bucket, recursive=True) if item.object_name
    }


async def _upload_video(alice: ApiUser, data: bytes) -> dict[str, Any]:
    response = await upload(alice.client, data, filename="clip.mp4", content_type="video/mp4")
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# ---- probing at upload ----------------------------------------------------------------------------------------


async def test_an_uploaded_video_is_probed(alice: ApiUser, services: AppServices) -> None:
    body = await _upload_video(alice, video(3.5, width=180, height=320, fps=30))
    assert body["kind"] == "VIDEO" and body["content_type"] == "video/mp4"
    measured = {name: body[name] for name in ("duration_ms", "width", "height", "rotation")}
    assert measured == {"duration_ms": 3500, "width": 180, "height": 320, "rotation": 0}
    codecs = {name: body[name] for name in ("video_codec", "audio_codec", "frame_rate", "has_audio")}
    assert codecs == {"video_codec": "h264", "audio_codec": "aac", "frame_rate": 30.0, "has_audio": True}
    row = _row(services, body["id"])
    assert (row.duration_ms, row.video_codec, row.frame_rate, row.has_audio) == (3500, "h264", 30.0, True)


async def test_a_sideways_phone_video_is_measured_as_displayed(alice: ApiUser) -> None:
    body = await _upload_video(alice, mov(3.0, width=320, height=180, rotation=90, audio=False))
    assert body["content_type"] == "video/quicktime"
    assert (body["width"], body["height"], body["rotation"]) == (180, 320, 90)
    assert (body["has_audio"], body["audio_codec"]) == (False, None)


async def test_a_video_that_does_not_decode_is_415_naming_the_accepted_types(
    alice: ApiUser, services: AppServices
) -> None:
    before = _keys(services)
    response = await upload(alice.client, broken_video(), filename="clip.mp4", content_type="video/mp4")
    body = assert_problem(response, 415, "video_undecodable", field="file")
    for accepted in ("MP4", "MOV", "H.264", "HEVC"):
        assert accepted in body["detail"], body["detail"]
    assert _keys(services) == before, "a refused upload left objects behind"


async def test_a_video_too_big_to_decode_safely_is_refused_before_any_frame_is(alice: ApiUser) -> None:
    # A 113 kB file of 6144x6144 frames: 38 megapixels, which would be 57 MB per decoded frame.
    data = video(0.04, width=6144, height=6144, fps=25, audio=False)
    response = await upload(alice.client, data, filename="clip.mp4", content_type="video/mp4")
    body = assert_problem(response, 422, "video_too_many_pixels", field="file")
    assert "6144x6144" in body["detail"]


def test_the_probe_is_bounded_in_time_and_memory() -> None:
    data = video(3.0)
    with pytest.raises(MediaRejected) as slow:
        probe_video(io.BytesIO(data), timeout=0.05)
    assert slow.value.code == "video_probe_timeout"
    with pytest.raises(MediaRejected) as greedy:
        probe_video(io.BytesIO(data), max_memory_bytes=64 * 1024 * 1024)
    assert greedy.value.code == "video_undecodable"
    # The process that asked is unharmed, and the next probe works.
    assert probe_video(io.BytesIO(data)).duration_ms == 3000


# ---- each post type's video rules, when a post is scheduled ---------------------------------------------------


async def _violations(
    alice: ApiUser, account_id: int, post_type: str, media_ids: list[int], **fields: Any
) -> dict[str, str]:
    response = await schedule(alice.client, account_id, media_ids, type=post_type, caption=None, **fields)
    assert response.status_code == 422, response.text
    return {error["field"]: error["code"] for error in response.json()["errors"]}


async def test_reels_rules(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    account = (await connect(alice.client, sandbox))["id"]
    good = await upload_ok(alice.client, video(4.0))
    response = await schedule(
        alice.client, account, [good], type="REELS", reel_options={"thumb_offset_ms": 3900}
    )
    assert response.status_code == 201, response.text

    short = await upload_ok(alice.client, video(2.0))
    assert await _violations(alice, account, "REELS", [short]) == {"media_ids[0]": "video_duration"}
    mpeg4 = await upload_ok(alice.client, video(3.5, codec="mpeg4"))
    assert await _violations(alice, account, "REELS", [mpeg4]) == {"media_ids[0]": "video_codec"}
    choppy = await upload_ok(alice.client, video(3.5, fps=15))
    assert await _violations(alice, account, "REELS", [choppy]) == {"media_ids[0]": "video_frame_rate"}
    hevc = await upload_ok(alice.client, video(3.5, codec="libx265"))
    assert (await schedule(alice.client, account, [hevc], type="REELS")).status_code == 201

    beyond = await _violations(alice, account, "REELS", [good], reel_options={"thumb_offset_ms": 4000})
    assert beyond == {"reel_options.thumb_offset_ms": "thumb_offset_beyond_duration"}


async def test_a_response_names_every_broken_video_rule(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    account = (await connect(alice.client, sandbox))["id"]
    bad = await upload_ok(alice.client, video(2.0, codec="mpeg4", fps=20))
    response = await schedule(alice.client, account, [bad], type="REELS", caption=None)
    body = assert_problem(response, 422, "validation_error")
    codes = sorted(error["code"] for error in body["errors"])
    assert codes == ["video_codec", "video_duration", "video_frame_rate"]
    detail = {error["code"]: error["message"] for error in body["errors"]}
    assert "2.0 s" in detail["video_duration"] and "3 to 900 s" in detail["video_duration"]
    assert "mpeg4" in detail["video_codec"] and "H.264 or HEVC" in detail["video_codec"]
    assert "20 frames per second" in detail["video_frame_rate"]


async def test_stories_take_videos_up_to_a_minute(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    account = (await connect(alice.client, sandbox))["id"]
    minute = await upload_ok(alice.client, video(60.0, width=32, height=56, fps=24, audio=False))
    assert (await schedule(alice.client, account, [minute], type="STORIES", caption=None)).status_code == 201
    longer = await upload_ok(alice.client, video(61.0, width=32, height=56, fps=24, audio=False))
    assert await _violations(alice, account, "STORIES", [longer]) == {"media_ids[0]": "video_duration"}


async def test_carousel_videos_follow_the_feed_video_rules(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    account = (await connect(alice.client, sandbox))["id"]
    image = await upload_ok(alice.client, jpeg(1080, 1080))
    square = await upload_ok(alice.client, video(4.0, width=240, height=240))
    response = await schedule(alice.client, account, [image, square], type="CAROUSEL")
    assert response.status_code == 201, response.text
    # 9:16 is a fine reel but too tall for a carousel (4:5 to 16:9).
    tall = await upload_ok(alice.client, video(4.0, width=180, height=320))
    assert await _violations(alice, account, "CAROUSEL", [image, tall]) == {
        "media_ids[1]": "video_aspect_ratio"
    }
    assert (await schedule(alice.client, account, [tall], type="REELS")).status_code == 201


# ---- previews, URLs, deletion and the sweep -------------------------------------------------------------------


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url)


async def test_get_media_gives_short_lived_urls_of_the_original_and_the_thumbnail(
    alice: ApiUser, services: AppServices
) -> None:
    data = video(3.0, width=180, height=320)
    media_id = (await _upload_video(alice, data))["id"]
    response = await alice.client.get(f"/v1/media/{media_id}")
    assert response.status_code == 200, response.text
    urls = response.json()["urls"]
    assert "X-Amz-Expires=900" in urls["original"]
    assert (await _get(urls["original"])).content == data
    assert (await _get(urls["rendition"])).content == data  # a video is sent as uploaded
    thumbnail = Image.open(io.BytesIO((await _get(urls["thumbnail"])).content))
    assert thumbnail.format == "JPEG" and thumbnail.size == (180, 320)
    red, green, blue = thumbnail.convert("RGB").getpixel((90, 160))  # type: ignore[misc]
    assert red > 180 and 100 < green < 180 and blue < 70  # the video's colour: a real frame

    row = _row(services, media_id)
    assert row.preview_key is not None and row.preview_key.endswith(".preview.jpg")
    assert row.preview_key.rsplit(".preview.jpg", 1)[0] == row.object_key.rsplit(".", 1)[0]


def _bar_column(picture: Image.Image) -> int:
    """Where the test videos' moving white bar is: the brightest column."""
    grey = picture.convert("L")
    sums = [sum(grey.getpixel((x, y)) for y in range(grey.height)) for x in range(grey.width)]  # type: ignore[misc]
    return max(range(grey.width), key=lambda x: sums[x])


async def test_a_reels_thumbnail_is_its_frame_at_thumb_offset(alice: ApiUser, services: AppServices) -> None:
    media_id = (await _upload_video(alice, video(4.0, width=180, height=320, audio=False)))["id"]
    first = (await alice.client.get(f"/v1/media/{media_id}")).json()["urls"]["thumbnail"]
    assert _bar_column(Image.open(io.BytesIO((await _get(first)).content))) == 0  # frame 0

    response = await alice.client.get(f"/v1/media/{media_id}", params={"thumb_offset_ms": 2500})
    assert response.status_code == 200, response.text
    frame = Image.open(io.BytesIO((await _get(response.json()["urls"]["thumbnail"])).content))
    assert frame.size == (180, 320) and _bar_column(frame) == 75  # 2.5 s at 30 fps: frame 75
    row = _row(services, media_id)
    key = row.object_key.rsplit(".", 1)[0] + ".frame-2500.jpg"
    assert key in _keys(services)
    again = await alice.client.get(f"/v1/media/{media_id}", params={"thumb_offset_ms": 2500})
    assert (await _get(again.json()["urls"]["thumbnail"])).content == (
        await _get(response.json()["urls"]["thumbnail"])
    ).content

    beyond = await alice.client.get(f"/v1/media/{media_id}", params={"thumb_offset_ms": 4000})
    assert_problem(beyond, 422, "thumb_offset_beyond_duration", field="thumb_offset_ms")
    image_id = await upload_ok(alice.client, jpeg())
    on_image = await alice.client.get(f"/v1/media/{image_id}", params={"thumb_offset_ms": 10})
    assert_problem(on_image, 422, "not_a_video", field="thumb_offset_ms")

    assert (await alice.client.delete(f"/v1/media/{media_id}")).status_code == 204
    assert not {row.object_key, row.preview_key, key} & _keys(services)


async def test_an_image_has_a_small_preview_and_its_rendition_once_made(
    alice: ApiUser, services: AppServices
) -> None:
    media_id = await upload_ok(alice.client, png(2000, 1000, mode="RGB", color=(10, 20, 250)))
    urls = (await alice.client.get(f"/v1/media/{media_id}")).json()["urls"]
    preview = Image.open(io.BytesIO((await _get(urls["thumbnail"])).content))
    assert preview.format == "JPEG" and preview.size == (320, 160)
    assert urls["rendition"] is None  # no post has prepared it yet

    row = _row(services, media_id)
    rendition = jpeg(1080, 540)
    bucket = services.settings.media_bucket
    services.storage.put_object(bucket, rendition_key(row), io.BytesIO(rendition), len(rendition))
    urls = (await alice.client.get(f"/v1/media/{media_id}")).json()["urls"]
    assert (await _get(urls["rendition"])).content == rendition


async def test_another_users_media_urls_are_404(alice: ApiUser, bob: ApiUser) -> None:
    media_id = await upload_ok(alice.client, jpeg())
    assert_problem(await bob.client.get(f"/v1/media/{media_id}"), 404, "media_not_found")


async def test_deleting_a_media_deletes_its_derived_objects(alice: ApiUser, services: AppServices) -> None:
    data = jpeg(1080, 1080, color=(uuid.uuid4().int % 250, 3, 4))
    first, twin = await upload_ok(alice.client, data), await upload_ok(alice.client, data)
    row, twin_row = _row(services, first), _row(services, twin)
    bucket = services.settings.media_bucket
    rendition = jpeg(1080, 1080)
    services.storage.put_object(bucket, rendition_key(row), io.BytesIO(rendition), len(rendition))
    assert {row.object_key, row.preview_key, rendition_key(row)} <= _keys(services)

    assert (await alice.client.delete(f"/v1/media/{first}")).status_code == 204
    keys = _keys(services)
    assert row.object_key not in keys and row.preview_key not in keys
    assert rendition_key(row) in keys, "the twin with the same content still needs the shared rendition"
    assert (await alice.client.delete(f"/v1/media/{twin}")).status_code == 204
    keys = _keys(services)
    assert not {twin_row.object_key, twin_row.preview_key, rendition_key(twin_row)} & keys


async def test_the_sweep_removes_orphans_and_keeps_what_media_use(
    alice: ApiUser, services: AppServices
) -> None:
    # A bucket of its own: the suite's bucket has other tests' uploads in flight, which a zero grace would take.
    bucket = f"sweep-{uuid.uuid4().hex[:12]}"
    services.storage.make_bucket(bucket)
    live = _row(services, await upload_ok(alice.client, jpeg(1080, 1080, color=(9, 9, 9))))
    assert live.preview_key is not None
    clip = _row(
        services, await upload_ok(alice.client, video(3.0), filename="c.mp4", content_type="video/mp4")
    )
    assert clip.preview_key is not None
    clip_frame = clip.object_key.rsplit(".", 1)[0] + ".frame-1000.jpg"
    orphans = [
        f"uploads/{alice.user_id}/gone.jpg",
        f"uploads/{alice.user_id}/gone.preview.jpg",
        f"uploads/{alice.user_id}/gone.frame-1000.jpg",
        "renditions/0.jpg",
    ]
    kept = [
        live.object_key,
        live.preview_key,
        rendition_key(live),
        clip.object_key,
        clip.preview_key,
        clip_frame,
    ]
    for key in orphans + kept:
        services.storage.put_object(bucket, key, io.BytesIO(b"x"), 1)

    spared = sweep_orphans(services.storage, bucket, services.engine, grace=timedelta(hours=1))
    assert spared.removed == [] and spared.examined == 0  # all younger than the grace

    result = sweep_orphans(services.storage, bucket, services.engine, grace=timedelta(0))
    assert sorted(result.removed) == sorted(orphans) and result.examined == 10
    remaining = {item.object_name for item in services.storage.list_objects(bucket, recursive=True)}
    assert remaining == set(kept)


# ---- a video Instagram cannot process -------------------------------------------------------------------------


async def test_a_video_instagram_cannot_process_fails_its_post_with_a_clear_message(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    """A file that passed our probe but that Instagram's processing refuses (here: damaged in storage after the
    upload) fails the post before its time, saying why; it is never published."""
    account = await connect(alice.client, sandbox)
    media_id = await upload_ok(alice.client, video(4.0), filename="clip.mp4", content_type="video/mp4")
    row = _row(services, media_id)
    damaged = broken_video()
    services.storage.put_object(
        services.settings.media_bucket, row.object_key, io.BytesIO(damaged), len(damaged)
    )

    response = await schedule(alice.client, account["id"], [media_id], type="REELS", publish_at=at(0))
    assert response.status_code == 201, response.text
    failed = await wait_for(alice.client, response.json()["id"], "failed", within=60)
    error = failed["error"]
    assert error["code"] == "InvalidMediaError", error
    assert "2207026" in error["message"], error
    assert "Instagram could not process this video" in error["message"], error
    assert "H.264 or HEVC" in error["message"], error
    assert await sandbox.published(account["ig_user_id"]) == []
