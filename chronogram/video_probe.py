"""What a video file is, read with PyAV (FFmpeg's demuxers and decoders): duration, size, rotation, codecs, frame
rate, audio, and a JPEG thumbnail of one frame.

A video comes from anyone, and FFmpeg parses it: a hostile file can make a decoder loop, allocate gigabytes or
crash. So the probe never runs in the calling process. ``probe_video`` runs this module as a child process
(``python -m chronogram.video_probe``) that reads the file from its standard input, limits its own address space
and CPU time before it imports FFmpeg, decodes one frame with one thread, and prints one JSON line; the parent
kills it past a wall-clock limit. It gets none of the parent's environment (whose settings hold secrets) and none
of its open files but the video. Whatever the child does, the caller gets a ``VideoProbe`` or a ``MediaRejected``.

Blocking (it waits for the child): call it in a thread.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from typing import IO, Any

from chronogram.media_rules import MediaRejected

# The probe's bounds. The child costs about 0.2 s to start (interpreter and FFmpeg's libraries); the probe itself
# reads the headers and decodes a frame or two.
PROBE_TIMEOUT_SECONDS = 20.0
PROBE_MAX_MEMORY_BYTES = 1024 * 1024 * 1024
PROBE_MAX_CPU_SECONDS = 30
# Decoding is refused above this many pixels per frame, before any frame is decoded (8K UHD is 33 megapixels).
MAX_VIDEO_PIXELS = 36_000_000
# The demuxer FFmpeg names for MP4 and QuickTime files: the only containers Instagram takes.
_MP4_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"
# Frames decoded at most to reach the thumbnail's instant after a seek (a key frame every 10 s at 60 fps).
_MAX_FRAMES_TO_THUMB = 600
THUMBNAIL_MAX_SIDE = 320
_EXIT_REJECTED = 3
# Probes running at once in this process; more wait, up to PROBE_QUEUE_SECONDS, then ProbeBusy.
PROBE_CONCURRENCY = 4
PROBE_QUEUE_SECONDS = 60.0
_running = threading.BoundedSemaphore(PROBE_CONCURRENCY)

ACCEPTED_VIDEOS = "an MP4 or MOV video (H.264 or HEVC)"


class ProbeBusy(RuntimeError):
    """Every probe slot stayed taken for PROBE_QUEUE_SECONDS: the file was not judged; try again later."""


@dataclass(frozen=True)
class VideoProbe:
    """Width and height are as displayed: a video recorded sideways (rotation 90 or 270) has them swapped."""

    duration_ms: int
    width: int
    height: int
    rotation: int
    video_codec: str
    audio_codec: str | None
    frame_rate: float
    has_audio: bool
    thumbnail: bytes  # JPEG, at most THUMBNAIL_MAX_SIDE on its longer side

    def facts(self) -> dict[str, Any]:
        """The measured values, without the thumbnail."""
        values = asdict(self)
        del values["thumbnail"]
        return values


def probe_video(
    source: IO[bytes],
    *,
    thumb_offset_ms: int = 0,
    timeout: float = PROBE_TIMEOUT_SECONDS,
    max_memory_bytes: int = PROBE_MAX_MEMORY_BYTES,
) -> VideoProbe:
    """Probe the video in ``source`` (read from its start) in a child process; its thumbnail is the frame at
    ``thumb_offset_ms`` (the last frame if the video is shorter). Raises MediaRejected for a file that is not a
    video FFmpeg decodes, or that takes longer than ``timeout`` or more than ``max_memory_bytes``; ProbeBusy when
    PROBE_CONCURRENCY probes stay running for PROBE_QUEUE_SECONDS."""
    if not _running.acquire(timeout=PROBE_QUEUE_SECONDS):
        raise ProbeBusy(f"{PROBE_CONCURRENCY} videos are being probed; try again shortly")
    try:
        source.fileno()
        source.seek(0)
        return _run_child(source, thumb_offset_ms, timeout, max_memory_bytes)
    except (io.UnsupportedOperation, AttributeError):
        # In memory (the command line's files): the child reads a temporary copy.
        source.seek(0)
        with tempfile.TemporaryFile(prefix="chronogram-probe-") as copy:
            copy.write(source.read())
            copy.seek(0)
            return _run_child(copy, thumb_offset_ms, timeout, max_memory_bytes)
    finally:
        _running.release()
        source.seek(0)


def _run_child(source: IO[bytes], thumb_offset_ms: int, timeout: float, max_memory_bytes: int) -> VideoProbe:
    command = [
        sys.executable,
        "-m",
        "chronogram.video_probe",
        str(thumb_offset_ms),
        str(max_memory_bytes),
        str(PROBE_MAX_CPU_SECONDS),
    ]
    project_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Nothing of this process's environment (its settings hold secrets) reaches a process that parses hostile files.
    env = {"PYTHONPATH": project_root, "PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"}
    try:
        done = subprocess.run(
            command, stdin=source, capture_output=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise MediaRejected(
            "video_probe_timeout",
            f"the video could not be read within {timeout:g} seconds: send {ACCEPTED_VIDEOS}",
        ) from None
    answer = _answer(done.stdout)
    if done.returncode == 0 and answer is not None and "duration_ms" in answer:
        answer["thumbnail"] = base64.b64decode(answer["thumbnail"])
        return VideoProbe(**answer)
    if done.returncode == _EXIT_REJECTED and answer is not None and "code" in answer:
        raise MediaRejected(str(answer["code"]), str(answer["message"]))
    # Killed by its limits (memory, CPU), or crashed inside FFmpeg.
    raise MediaRejected("video_undecodable", f"the video could not be decoded: send {ACCEPTED_VIDEOS}")


def _answer(stdout: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(stdout.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return answer if isinstance(answer, dict) else None


# ---- the child process -------------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _child(thumb_offset_ms: int, max_memory_bytes: int, max_cpu_seconds: int) -> int:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (max_memory_bytes, max_memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (max_cpu_seconds, max_cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    stdin = open(0, "rb", closefd=False)
    try:
        facts = _probe(stdin, thumb_offset_ms)
    except _Refused as refused:
        print(json.dumps({"code": refused.code, "message": refused.message}))  # noqa: T201
        return _EXIT_REJECTED
    except MemoryError:
        print(  # noqa: T201
            json.dumps({"code": "video_undecodable", "message": "the video needs too much memory to decode"})
        )
        return _EXIT_REJECTED
    facts["thumbnail"] = base64.b64encode(facts["thumbnail"]).decode("ascii")
    print(json.dumps(facts))  # noqa: T201
    return 0


def _probe(stdin: IO[bytes], thumb_offset_ms: int) -> dict[str, Any]:
    import av
    from PIL import Image

    undecodable = _Refused("video_undecodable", f"the video could not be decoded: send {ACCEPTED_VIDEOS}")
    try:
        container = av.open(stdin, mode="r")
    except (av.FFmpegError, ValueError, OSError):
        raise undecodable from None
    with container:
        if container.format.name != _MP4_DEMUXER:
            raise _Refused("unsupported_video_format", f"the file is not {ACCEPTED_VIDEOS}")
        if not container.streams.video:
            raise _Refused("video_without_picture", f"the file has no video track: send {ACCEPTED_VIDEOS}")
        video = container.streams.video[0]
        context = video.codec_context
        if context.width <= 0 or context.height <= 0:
            raise undecodable
        if context.width * context.height > MAX_VIDEO_PIXELS:
            raise _Refused(
                "video_too_many_pixels",
                f"the video is {context.width}x{context.height}, over {MAX_VIDEO_PIXELS // 1_000_000} megapixels",
            )
        context.thread_count = 1
        audio = container.streams.audio[0] if container.streams.audio else None
        duration_ms = _duration_ms(container, video)
        rate = video.average_rate or video.guessed_rate
        frame_rate = float(rate) if rate else 0.0
        try:
            frame = _frame_at(container, video, min(thumb_offset_ms, max(duration_ms - 1, 0)))
        except av.FFmpegError:
            raise undecodable from None
        if frame is None or duration_ms <= 0:
            raise undecodable
        rotation = int(frame.rotation or 0) % 360
        picture = frame.to_image()
        if rotation:
            # FFmpeg's rotation is counter-clockwise; Pillow's rotate turns counter-clockwise too.
            picture = picture.rotate(rotation, expand=True)
        picture.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        picture.convert("RGB").save(out, format="JPEG", quality=80)
        width, height = context.width, context.height
        if rotation in (90, 270):
            width, height = height, width
        return {
            "duration_ms": duration_ms,
            "width": width,
            "height": height,
            "rotation": rotation,
            "video_codec": context.name,
            "audio_codec": audio.codec_context.name if audio is not None else None,
            "frame_rate": round(frame_rate, 3),
            "has_audio": audio is not None,
            "thumbnail": out.getvalue(),
        }


def _duration_ms(container: Any, video: Any) -> int:
    if video.duration is not None and video.time_base is not None:
        return int(video.duration * video.time_base * 1000)
    if container.duration is not None:
        return int(container.duration / 1000)  # AV_TIME_BASE: microseconds
    return 0


def _frame_at(container: Any, video: Any, offset_ms: int) -> Any:
    """The first frame shown at or after ``offset_ms``, else the last one decoded; None if none decodes."""
    if offset_ms > 0 and video.time_base is not None:
        container.seek(int(offset_ms / 1000 / video.time_base), stream=video, backward=True)
    last = None
    for count, frame in enumerate(container.decode(video)):
        last = frame
        if frame.time is None or frame.time * 1000 >= offset_ms or count >= _MAX_FRAMES_TO_THUMB:
            return frame
    return last


if __name__ == "__main__":
    sys.exit(_child(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
