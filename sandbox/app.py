"""The sandbox ASGI app: Meta's Graph paths for content publishing, plus ``/_sandbox`` admin routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from sandbox import log_filters
from sandbox.admin_routes import router as admin_router
from sandbox.audience_routes import router as audience_router
from sandbox.config import SandboxConfig
from sandbox.graph_routes import graph_entry
from sandbox.state import SandboxState


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    state = SandboxState(config or SandboxConfig())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # trust_env=False: proxy variables meant for the developer's browser must not reroute the media
        # fetches, which usually target localhost (MinIO, a test server).
        async with httpx.AsyncClient(follow_redirects=True, trust_env=False) as http:
            state.http = http
            try:
                yield
            finally:
                state.reset()
                state.http = None

    log_filters.install()

    app = FastAPI(
        title="Chronogram Instagram Graph API sandbox",
        lifespan=lifespan,
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = state
    app.include_router(admin_router)
    app.include_router(audience_router)
    # Registered last so /_sandbox wins; every other path is Graph's to interpret.
    app.add_api_route("/{path:path}", graph_entry, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    return app
