"""The HTTP API: a thin layer that validates, persists and signals; the workflows do the work.

uvicorn api.main:app     # or: make dev
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import AppServices
from api.routes import health
from chronogram.db import make_engine
from chronogram.settings import Settings, get_settings
from chronogram.storage import make_minio
from chronogram.temporal import connect_temporal


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or get_settings()
        # Connected here, after any fork by the server, because a Temporal client does not survive a fork.
        engine = make_engine(resolved.database_url)
        app.state.services = AppServices(
            settings=resolved,
            temporal=await connect_temporal(resolved),
            engine=engine,
            storage=make_minio(resolved),
        )
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="Chronogram",
        summary="Schedule Instagram posts that publish on time, exactly once.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    return app


app = create_app()
