"""The media makers make what they say: files that decode to the size and colour asked for, and MP4 that the API
and the sandbox recognise."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image

from chronogram.media_rules import MediaRejected, sniff_video
from chronogram.video_probe import probe_video
from sandbox.media import sniff
from tests.support.media import Upload, broken_video, jpeg, mov, mp4, png, video


def test_jpeg_is_the_size_and_colour_asked_for() -> None:
    image = Image.open(io.BytesIO(jpeg(64, 48, (200, 10, 10))))
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (64, 48))
    red, green, blue = image.getpixel((32, 24))  # type: ignore[misc]
    assert red > 190 and green < 20 and blue < 20


def test_jpeg_carries_the_exif_given() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    assert Image.open(io.BytesIO(jpeg(64, 48, exif=exif.tobytes()))).getexif()[0x0112] == 6
    assert not Image.open(io.BytesIO(jpeg(64, 48))).getexif()


def test_png_is_in_the_mode_asked_for() -> None:
    assert Image.open(io.BytesIO(png(30, 20))).mode == "RGBA"
    bilevel = Image.open(io.BytesIO(png(30, 20, mode="1", color=0)))
    assert (bilevel.format, bilevel.mode, bilevel.size) == ("PNG", "1", (30, 20))


def test_mp4_is_recognised_as_mp4_or_quicktime() -> None:
    for data in (mp4(), mp4(compatible=b"isomiso2avc1mp41", duration_ms=5000)):
        assert sniff(data) == "mp4" and sniff_video(data) == "video/mp4"
    assert sniff(mp4(brand=b"qt  ")) == "mov" and sniff_video(mp4(brand=b"qt  ")) == "video/quicktime"


def test_mp4_declares_its_duration_only_when_asked() -> None:
    assert len(mp4(100)) == len(mp4()) - 3996
    assert b"mvhd" not in mp4()
    header = mp4(duration_ms=12_000)
    at = header.index(b"mvhd") + 4
    timescale, duration = header[at + 12 : at + 16], header[at + 16 : at + 20]
    assert (int.from_bytes(timescale, "big"), int.from_bytes(duration, "big")) == (1000, 12_000)


def test_an_upload_is_what_the_api_measured() -> None:
    image = Upload.jpeg(1080, 1350)
    assert (image.content_type, image.width, image.height, image.duration_ms) == (
        "image/jpeg",
        1080,
        1350,
        None,
    )
    assert image.data == jpeg(1080, 1350)
    clip = Upload.mp4(duration_ms=12_000)
    assert (clip.content_type, clip.width, clip.height, clip.duration_ms) == ("video/mp4", 240, 240, 12_000)
    assert clip.data == video(12.0, width=240, height=240)
    assert probe_video(io.BytesIO(clip.data)).duration_ms == 12_000


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        (lambda: video(3.5), ("mp4", "h264", "aac", 30.0, 180, 320, 0)),
        (lambda: mov(3.0, fps=24, audio=False), ("mov", "h264", None, 24.0, 180, 320, 0)),
        (
            lambda: video(3.0, codec="libx265", width=320, height=240),
            ("mp4", "hevc", "aac", 30.0, 320, 240, 0),
        ),
        (lambda: video(3.0, codec="mpeg4", fps=25), ("mp4", "mpeg4", "aac", 25.0, 180, 320, 0)),
        (lambda: video(3.0, rotation=90), ("mp4", "h264", "aac", 30.0, 320, 180, 90)),
    ],
    ids=["mp4", "mov", "hevc", "mpeg4", "rotated"],
)
def test_videos_are_what_was_asked_for(made: Callable[[], bytes], expected: tuple[object, ...]) -> None:
    data = made()
    container, codec, audio, fps, width, height, rotation = expected
    assert sniff(data) == container
    probe = probe_video(io.BytesIO(data))
    assert (
        probe.video_codec,
        probe.audio_codec,
        probe.frame_rate,
        probe.width,
        probe.height,
        probe.rotation,
    ) == (
        codec,
        audio,
        fps,
        width,
        height,
        rotation,
    )
    assert probe.has_audio is (audio is not None)


def test_a_broken_video_looks_like_one_and_decodes_to_nothing() -> None:
    data = broken_video()
    assert sniff(data) == "mp4" and sniff_video(data) == "video/mp4"
    with pytest.raises(MediaRejected) as refused:
        probe_video(io.BytesIO(data))
    assert refused.value.code == "video_undecodable"
