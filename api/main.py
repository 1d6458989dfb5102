"""The HTTP API: a thin layer that validates, persists and signals; the workflows do the work.

uvicorn api.main:app     # or: make dev
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import httpx
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api.deps import AppServices
from api.errors import install_error_handlers
from api.limits import BodyLimitMiddleware
from api.openapi import install_openapi
from api.reconciler import run_reconciler
from api.routes import (
    accounts,
    health,
    insights,
    keys,
    media,
    notification_settings,
    posts,
    queues,
    series,
    templates,
    webhooks,
)
from api.sqlite_writes import serialize_writes
from api.start_records import StartRecorder
from api.telemetry import SERVICE_NAME, TELEMETRY, adopt_server_logs, install_telemetry
from api.upload_slots import UploadSlots
from chronogram.crypto import TokenCipher
from chronogram.db import create_schema, make_engine
from chronogram.instagram import GraphClient
from chronogram.malloc import limit_malloc_arenas
from chronogram.notifications import outbox
from chronogram.observability import setup_process
from chronogram.observability.metrics import count_graph_call
from chronogram.observability.tracing import instrument_http_client
from chronogram.settings import Settings, get_settings
from chronogram.storage import make_minio
from chronogram.temporal import connect_temporal

# Net new container objects between two young garbage collections (Python's default: 700).
_YOUNG_COLLECTION_THRESHOLD = 10_000

# Multipart framing around the file: boundaries and part headers.
_MULTIPART_OVERHEAD_BYTES = 64 * 1024

_DESCRIPTION = """
Schedule Instagram posts that publish on time, exactly once.

Every `/v1` route needs `Authorization: Bearer <api key>`; make a key with `python -m api.admin create-user NAME`
(`make dev` prints one for the user `dev`), then more with `POST /v1/keys`. Bodies are JSON, except uploads
(multipart/form-data).

A typical session: upload media (`POST /v1/media`), connect an account (`POST /v1/accounts`), schedule a post
(`POST /v1/posts`), then watch it (`GET /v1/posts/{id}`).

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) problem details (`application/problem+json`) with a
stable `code`, a human `detail`, and for invalid input the offending `field` and every violation in `errors`.
Another user's resources answer 404, like resources that do not exist.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    resolved = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_malloc_arenas()  # before the first thread-pool call starts threads
        setup_process(resolved, SERVICE_NAME)  # logs (text or JSON, CHRONOGRAM_LOG_FORMAT), traces, metrics
        adopt_server_logs()
        # Blocking work of every request shares these threads (run_in_threadpool, sync dependencies).
        anyio.to_thread.current_default_thread_limiter().total_tokens = resolved.api_threads
        engine = make_engine(
            resolved.database_url,
            pool_size=resolved.api_db_pool_size,
            max_overflow=resolved.api_db_max_overflow,
            pool_timeout=resolved.api_db_pool_timeout_seconds,
        )
        app.state.upload_slots = UploadSlots(
            per_user=resolved.api_max_concurrent_uploads_per_user, total=resolved.api_max_concurrent_uploads
        )
        try:
            # Idempotent; the API may be the first process to touch a fresh database.
            await run_in_threadpool(create_schema, engine)
            outbox.install()  # the posts' changes made here write their events to the outbox
            serialize_writes(engine)
            timeout = httpx.Timeout(resolved.graph_api_timeout_seconds, connect=10.0)
            # The recorder is left last: it writes the starts still queued before the engine goes.
            async with httpx.AsyncClient(timeout=timeout) as http, StartRecorder(engine) as start_records:
                instrument_http_client(http)
                # Connected here, after any fork by the server: a Temporal client does not survive a fork.
                services = AppServices(
                    settings=resolved,
                    temporal=await connect_temporal(resolved),
                    engine=engine,
                    storage=make_minio(resolved),
                    graph=GraphClient.from_settings(http, resolved, on_call=count_graph_call),
                    cipher=TokenCipher.from_settings(resolved),
                    start_records=start_records,
                )
                app.state.services = services
                stop = asyncio.Event()
                reconciler = asyncio.create_task(run_reconciler(services, stop), name="reconciler")
                # Start-up objects leave the full collections, whose 90-100 ms pauses made the list p99 tail
                # (bench/README.md); collected first, so that no start-up garbage is kept for good.
                gc.collect()
                gc.freeze()
                # A young collection every 700 net new objects ran about every 15 requests and, with 16 requests
                # in flight, promoted their live objects to the older generations, which are then scanned again:
                # 0.4-0.6 ms of CPU per POST /v1/posts, measured in the process. Every 10,000: 0.12-0.15 ms.
                gc.set_threshold(_YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
                try:
                    yield
                finally:
                    stop.set()
                    reconciler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reconciler
        finally:
            engine.dispose()

    app = FastAPI(
        title="Chronogram",
        summary="Schedule Instagram posts that publish on time, exactly once.",
        description=_DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        telemetry=TELEMETRY,
    )
    upload_limit = max(resolved.api_max_image_upload_bytes, resolved.api_max_video_upload_bytes)
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=resolved.api_max_json_body_bytes,
        limits={("POST", "/v1/media"): upload_limit + _MULTIPART_OVERHEAD_BYTES},
    )
    install_error_handlers(app)
    install_openapi(app)
    install_telemetry(app, resolved)
    for router in (
        health.router,
        accounts.router,
        media.router,
        posts.router,
        templates.router,
        keys.router,
        webhooks.router,
        notification_settings.router,
        insights.router,
        queues.router,
        series.router,
    ):
        app.include_router(router)
    return app


app = create_app()
