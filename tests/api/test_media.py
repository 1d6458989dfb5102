"""/v1/media: uploads judged by their content, limits enforced while streaming, deletion guarded by posts."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image
from sqlmodel import Session

from api.deps import AppServices
from chronogram.enums import PostStatus
from chronogram.models import MediaAsset, Post
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, assert_problem, connect, schedule_ok, upload, upload_ok
from tests.support.media import jpeg, mov, png, video


def _read_object(services: AppServices, key: str) -> bytes:
    response = services.storage.get_object(services.settings.media_bucket, key)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


async def test_upload_an_image(alice: ApiUser, services: AppServices) -> None:
    data = jpeg(1080, 1350)
    # The declared type and name are ignored: the content says JPEG.
    response = await upload(alice.client, data, filename="notes.txt", content_type="text/plain")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "IMAGE" and body["content_type"] == "image/jpeg"
    assert (body["width"], body["height"]) == (1080, 1350)
    assert body["size_bytes"] == len(data) and body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["duration_ms"] is None

    with Session(services.engine) as session:
        row = session.get(MediaAsset, body["id"])
    assert row is not None and row.owner_id == alice.user_id
    assert row.object_key.startswith(f"uploads/{alice.user_id}/") and row.object_key.endswith(".jpg")
    assert _read_object(services, row.object_key) == data


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(png(), "image/png"), (None, "image/webp"), (video(), "video/mp4")],
    ids=["png", "webp", "mp4"],
)
async def test_other_accepted_formats(alice: ApiUser, data: bytes | None, content_type: str) -> None:
    if data is None:
        out = io.BytesIO()
        Image.new("RGB", (800, 800), "red").save(out, format="WEBP")
        data = out.getvalue()
    response = await upload(
        alice.client, data, filename="upload.bin", content_type="application/octet-stream"
    )
    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == content_type
    if content_type.startswith("video/"):
        assert response.json()["kind"] == "VIDEO" and response.json()["duration_ms"] == 4000


async def test_a_rotated_photo_is_measured_as_displayed(alice: ApiUser) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    body = (await upload(alice.client, jpeg(1350, 1080, exif=exif.tobytes()))).json()
    assert (body["width"], body["height"]) == (1080, 1350)


async def test_quicktime_is_recognised(alice: ApiUser) -> None:
    data = mov()
    assert data[8:12] == b"qt  "
    response = await upload(alice.client, data, filename="clip.mov", content_type="video/quicktime")
    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == "video/quicktime"


async def test_unsupported_content_is_415(alice: ApiUser) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (400, 400)).save(gif, format="GIF")
    assert_problem(await upload(alice.client, gif.getvalue()), 415, "unsupported_image_format", field="file")
    text = b"%PDF-1.7 this is a document, not a picture" * 10
    assert_problem(
        await upload(alice.client, text, content_type="image/jpeg"), 415, "unsupported_media", field="file"
    )


async def test_a_fake_video_is_415_naming_every_accepted_type(alice: ApiUser) -> None:
    text = b"this is a text file that calls itself a video\n" * 10
    response = await upload(alice.client, text, filename="clip.mp4", content_type="video/mp4")
    body = assert_problem(response, 415, "unsupported_media", field="file")
    for accepted in ("JPEG", "PNG", "WebP", "MP4", "MOV"):
        assert accepted in body["detail"], body["detail"]
    assert "video" in body["detail"]


async def test_a_truncated_image_is_refused_now(alice: ApiUser) -> None:
    data = jpeg(1080, 1080, color=(1, 2, 3))
    assert_problem(await upload(alice.client, data[: len(data) // 2]), 422, "image_corrupt", field="file")


@pytest.mark.parametrize("size", [(10_000, 6_000), (20_000, 20_000)], ids=["over-our-cap", "pillow-bomb"])
async def test_decompression_bombs_are_refused(alice: ApiUser, size: tuple[int, int]) -> None:
    data = png(*size, mode="1", color=0)  # a few kB of file, hundreds of megapixels
    assert len(data) < 1024 * 1024
    assert_problem(await upload(alice.client, data), 422, "image_too_many_pixels", field="file")


async def test_an_image_over_the_limit_is_cut_off_while_streaming(alice: ApiUser) -> None:
    sent = 0
    boundary = "chronogram-test-boundary"

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        yield jpeg(64, 64)[:20]
        for _ in range(200):  # 12.5 MiB, over the 8 MiB image limit
            sent += 1
            yield b"\x00" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await alice.client.post(
        "/v1/media", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    body_json = assert_problem(response, 413, "media_too_large", field="file")
    assert "8 MB" in body_json["detail"]
    assert sent < 200, "the upload was read to its end instead of being cut off at the limit"


async def test_a_declared_length_over_any_limit_is_refused_unread(alice: ApiUser) -> None:
    response = await alice.client.post(
        "/v1/media",
        content=b"x" * 10,
        headers={"content-type": "multipart/form-data; boundary=x", "content-length": str(2 * 1024**3)},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_malformed_uploads(alice: ApiUser) -> None:
    assert_problem(await alice.client.post("/v1/media", json={"file": "x"}), 415, "unsupported_content_type")
    empty = await alice.client.post("/v1/media", files={"file": ("a.jpg", b"", "image/jpeg")})
    assert_problem(empty, 422, "empty_file", field="file")
    missing = await alice.client.post("/v1/media", files={"photo": ("a.jpg", jpeg(), "image/jpeg")})
    assert_problem(missing, 422, "validation_error", field="file")
    two = await alice.client.post(
        "/v1/media",
        files=[("file", ("a.jpg", jpeg(), "image/jpeg")), ("file", ("b.jpg", jpeg(), "image/jpeg"))],
    )
    assert_problem(two, 422, "too_many_files", field="file")
    no_boundary = await alice.client.post(
        "/v1/media", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert_problem(no_boundary, 400, "malformed_multipart")
    broken = await alice.client.post(
        "/v1/media",
        content=b"--b\r\nno headers end",
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert_problem(broken, 400, "malformed_multipart")


async def test_list_newest_first_with_cursor(alice: ApiUser) -> None:
    ids = [await upload_ok(alice.client, jpeg(400 + i, 400)) for i in range(5)]
    first = (await alice.client.get("/v1/media?limit=2")).json()
    assert [item["id"] for item in first["data"]] == ids[::-1][:2]
    second = (await alice.client.get(f"/v1/media?limit=2&cursor={first['next_cursor']}")).json()
    third = (await alice.client.get(f"/v1/media?limit=2&cursor={second['next_cursor']}")).json()
    assert [item["id"] for item in second["data"] + third["data"]] == ids[::-1][2:]
    assert third["next_cursor"] is None

    one = await alice.client.get(f"/v1/media/{ids[0]}")
    assert one.status_code == 200 and one.json()["width"] == 400


async def test_delete(alice: ApiUser, services: AppServices) -> None:
    media_id = await upload_ok(alice.client)
    with Session(services.engine) as session:
        row = session.get(MediaAsset, media_id)
        assert row is not None
        key = row.object_key
    assert (await alice.client.delete(f"/v1/media/{media_id}")).status_code == 204
    assert_problem(await alice.client.get(f"/v1/media/{media_id}"), 404, "media_not_found")
    with pytest.raises(Exception, match="NoSuchKey|does not exist"):
        _read_object(services, key)
    assert_problem(await alice.client.delete(f"/v1/media/{media_id}"), 404, "media_not_found")


async def test_media_of_a_scheduled_post_cannot_be_deleted(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await connect(alice.client, sandbox)
    media_id = await upload_ok(alice.client)
    post = await schedule_ok(alice.client, account["id"], [media_id])
    body = assert_problem(await alice.client.delete(f"/v1/media/{media_id}"), 409, "media_in_use")
    assert f"post {post['id']} (scheduled)" in body["detail"]

    for pinning in (PostStatus.FAILED, PostStatus.PUBLISHING):
        _set_status(services, post["id"], pinning)
        assert_problem(await alice.client.delete(f"/v1/media/{media_id}"), 409, "media_in_use")
    _set_status(services, post["id"], PostStatus.CANCELLED)
    assert (await alice.client.delete(f"/v1/media/{media_id}")).status_code == 204
    # The cancelled post keeps its record, without the media.
    assert (await alice.client.get(f"/v1/posts/{post['id']}")).json()["media"] == []


def _set_status(services: AppServices, post_id: int, status: PostStatus) -> None:
    with Session(services.engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        post.status = status
        session.add(post)
        session.commit()


async def test_storage_down_is_503_and_leaves_no_row(
    alice: ApiUser, services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("MinIO is down")

    monkeypatch.setattr(services.storage, "put_object", unreachable)
    assert_problem(await upload(alice.client, jpeg()), 503, "storage_unavailable")
    assert (await alice.client.get("/v1/media")).json()["data"] == []
