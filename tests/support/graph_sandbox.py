"""A Graph API sandbox of a suite's own, run in the test process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sandbox.admin_client import SandboxAdmin
from sandbox.config import SandboxConfig
from sandbox.runner import SandboxServer


@contextmanager
def sandbox_server(*, image: float, video: float, carousel: float, **config: Any) -> Iterator[str]:
    """A sandbox whose containers take these processing times (seconds, sandbox clock), with any other
    ``SandboxConfig`` field in ``config``: its base URL."""
    settings = SandboxConfig(
        image_processing_seconds=image,
        video_processing_seconds=video,
        carousel_processing_seconds=carousel,
        **config,
    )
    with SandboxServer(settings) as server:
        yield server.base_url


async def refuse_next_container(sandbox: SandboxAdmin, ig_user_id: str) -> None:
    """The account's next container creation answers Meta's invalid-parameter error (#100): a post fails for good
    on it, at once (a revoked token would make the post wait for its account to be reconnected)."""
    await sandbox.add_fault(
        "error", endpoint="media_create", ig_user_id=ig_user_id, code=100, http_status=400
    )
