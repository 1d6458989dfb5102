"""The API against the real stack: the session's Temporal dev server (namespace "api"), MinIO, an in-process
Graph API sandbox, a SQLite database of its own, and the production worker running in the background, so that
live state queries are answered and posts really publish. Each test makes its own users and sandbox accounts.

Package-scoped: the worker and the app stop when this directory's tests end, before other suites run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlmodel import Session

from api.crud.users import create_user
from api.deps import AppServices
from api.main import create_app
from chronogram.settings import Settings
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, connect, upload_ok
from tests.support.graph_sandbox import sandbox_server
from tests.support.smtp import MailSink, smtp_server
from tests.support.stack import background_worker, suite_settings


@pytest.fixture(scope="package")
def sandbox_url() -> Iterator[str]:
    with sandbox_server(image=0, video=0, carousel=0) as url:
        yield url


@pytest.fixture(scope="package")
def mail() -> Iterator[tuple[MailSink, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="package")
def mail_sink(mail: tuple[MailSink, int]) -> MailSink:
    return mail[0]


@pytest.fixture(scope="package")
def api_settings(
    settings: Settings, sandbox_url: str, tmp_path_factory: pytest.TempPathFactory, mail: tuple[MailSink, int]
) -> Settings:
    return suite_settings(
        settings,
        namespace="api",
        sandbox_url=sandbox_url,
        database=tmp_path_factory.mktemp("api") / "chronogram.db",
        # Tests run the reconciler themselves, when they want it.
        api_reconcile_interval_seconds=0.0,
        api_workflow_query_timeout_seconds=2.0,
        api_workflow_wait_seconds=10.0,
        # Webhooks to receivers in the test process (tests/support/receiver.py), retried in seconds, not days;
        # email to the SMTP server in the test process.
        webhook_allow_http_localhost=True,
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_retry_initial_seconds=0.2,
        webhook_retry_max_interval_seconds=1.0,
        webhook_retry_window_seconds=120.0,
        # So that a handful of posts shows an endpoint taken for failing (test_webhooks).
        webhook_retried_at_most=3,
        smtp_host="127.0.0.1",
        smtp_port=mail[1],
    )


@pytest_asyncio.fixture(scope="package")
async def api_worker(api_settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    async with background_worker(api_settings, settle=0.3) as task:
        yield task


@pytest_asyncio.fixture(scope="package")
async def app(api_settings: Settings, api_worker: asyncio.Task[None]) -> AsyncIterator[FastAPI]:
    assert not api_worker.done(), "the worker is not running"
    application = create_app(api_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="package")
def services(app: FastAPI) -> AppServices:
    found: AppServices = app.state.services
    return found


@pytest_asyncio.fixture(scope="package")
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxAdmin]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield SandboxAdmin(http, sandbox_url)


@pytest_asyncio.fixture
async def make_user(app: FastAPI, services: AppServices) -> AsyncIterator[Callable[[], Awaitable[ApiUser]]]:
    """Each call: a new user with its own key, and a client that sends it."""
    clients: list[httpx.AsyncClient] = []

    async def make() -> ApiUser:
        def create() -> tuple[int, str]:
            with Session(services.engine) as session:
                principal, key = create_user(session, name=f"user-{uuid.uuid4().hex[:12]}@example.com")
            return principal.user_id, key

        user_id, key = await asyncio.to_thread(create)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {key}"},
        )
        clients.append(client)
        return ApiUser(user_id=user_id, key=key, client=client)

    yield make
    for client in clients:
        await client.aclose()


@pytest_asyncio.fixture
async def alice(make_user: Callable[[], Awaitable[ApiUser]]) -> ApiUser:
    return await make_user()


@pytest_asyncio.fixture
async def bob(make_user: Callable[[], Awaitable[ApiUser]]) -> ApiUser:
    return await make_user()


@pytest_asyncio.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


@pytest_asyncio.fixture
async def ready(alice: ApiUser, sandbox: SandboxAdmin) -> dict[str, Any]:
    """Alice's connected account (``"account"``, the API's answer) and an image she uploaded (``"media"``)."""
    account = await connect(alice.client, sandbox)
    return {"account": account, "media": await upload_ok(alice.client)}
