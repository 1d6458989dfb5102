"""For suites that run the production worker against the session's servers (tests/conftest.py) and a Graph API
sandbox of their own: their settings, and the worker running in the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client

from chronogram.crypto import TokenCipher
from chronogram.db import create_schema, make_engine
from chronogram.settings import Settings
from chronogram.storage import ensure_bucket, make_minio
from chronogram.temporal import connect_temporal
from worker import run_worker


def suite_settings(
    settings: Settings, *, namespace: str, sandbox_url: str, database: Path, **overrides: Any
) -> Settings:
    """The session's settings with the suite's own Temporal namespace (one of tests/conftest.py's
    ISOLATED_NAMESPACES, so that no other suite's worker takes its tasks), bucket, SQLite database and token key,
    and its sandbox; the schema and the bucket are made."""
    configured = settings.model_copy(
        update={
            "temporal_namespace": namespace,
            "graph_api_base_url": sandbox_url,
            "graph_api_timeout_seconds": 5.0,
            "database_url": f"sqlite:///{database}",
            "media_bucket": f"{namespace}-media",
            "token_encryption_key": SecretStr(TokenCipher.generate_key()),
            **overrides,
        }
    )
    create_schema(make_engine(configured.database_url))
    ensure_bucket(make_minio(configured), configured.media_bucket)
    return configured


@asynccontextmanager
async def background_worker(settings: Settings, *, settle: float) -> AsyncIterator[asyncio.Task[None]]:
    """The production worker as a task; given ``settle`` seconds to start, so that a start-up failure shows here
    rather than as a timeout later. Stopped, and awaited, on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    await asyncio.sleep(settle)
    if task.done():
        task.result()
    try:
        yield task
    finally:
        stop.set()
        await task


async def connect_when_healthy(settings: Settings, within: float = 30.0) -> Client:
    """A client of a dev server just (re)started: its frontend can answer "not healthy yet" for a moment after the
    port opens, longer on a busy machine."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while True:
        try:
            return await connect_temporal(settings)
        except RuntimeError as error:
            if "not healthy" not in str(error) or loop.time() > give_up:
                raise
        await asyncio.sleep(0.5)
