"""Fixtures for the Graph API client and sandbox tests: one in-process sandbox and media server per session,
reset before every test so tests never see each other's accounts, faults, clock or config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from chronogram.instagram import GraphClient
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.support.graph_sandbox import sandbox_server
from tests.support.media_server import MediaServer, StandardMedia, publish_standard_media

API_VERSION = "v25.0"


@pytest.fixture(scope="session")
def media_server() -> Iterator[MediaServer]:
    server = MediaServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def media(media_server: MediaServer) -> StandardMedia:
    return publish_standard_media(media_server)


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    # Zero processing delays by default; tests that exercise IN_PROGRESS set them per account.
    with sandbox_server(image=0, video=0, carousel=0, download_timeout_seconds=5) as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def admin(http: httpx.AsyncClient, sandbox_url: str) -> SandboxAdmin:
    return SandboxAdmin(http, sandbox_url)


@pytest_asyncio.fixture(autouse=True)
async def _fresh_sandbox(admin: SandboxAdmin) -> None:
    await admin.reset()


@pytest_asyncio.fixture
async def account(admin: SandboxAdmin) -> SandboxAccount:
    return await admin.create_account("chronogram_test")


@pytest.fixture
def graph(http: httpx.AsyncClient, sandbox_url: str) -> GraphClient:
    return GraphClient(http, base_url=sandbox_url, api_version=API_VERSION, timeout=5.0, publish_timeout=5.0)
