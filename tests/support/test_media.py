"""The media makers make what they say: files that decode to the size and colour asked for, and MP4 that the API
and the sandbox recognise."""

from __future__ import annotations

import io

from PIL import Image

from chronogram.media_rules import sniff_video
from sandbox.media import sniff
from tests.support.media import Upload, jpeg, mp4, png


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
    video = Upload.mp4(duration_ms=12_000)
    assert (video.content_type, video.width, video.duration_ms, video.data) == (
        "video/mp4",
        None,
        12_000,
        mp4(),
    )
