"""Accounts over time on the real stack: the session's Temporal dev server (namespace "accounts"), an in-process
Graph API sandbox whose tokens live seconds (and may be refreshed at a second old), the production worker and
the API on a SQLite database of their own, with the token schedule shrunk to match.

Package-scoped: the worker and the app stop when this directory's tests end, before other suites run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import SecretStr
from sqlmodel import Session

from api.crud.users import create_user
from api.deps import AppServices
from api.main import create_app
from chronogram.settings import Settings
from sandbox.admin_client import SandboxAdmin
from sandbox.config import SandboxConfig
from tests.support.graph_sandbox import sandbox_server
from tests.support.stack import background_worker, suite_settings

# Every long-lived token the sandbox issues (by an exchange or a refresh) lives this long.
TOKEN_LIFETIME = timedelta(seconds=8)
# Refreshed this long before it expires, once at least a second old (Meta: a week, 24 h).
REFRESH_LEAD = timedelta(seconds=4)


@pytest.fixture(scope="package")
def sandbox_url() -> Iterator[str]:
    with sandbox_server(
        image=0,
        video=0,
        carousel=0,
        long_lived_token_seconds=int(TOKEN_LIFETIME.total_seconds()),
        token_refresh_min_age_seconds=1,
    ) as url:
        yield url


@pytest.fixture(scope="package")
def accounts_settings(
    settings: Settings, sandbox_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    sandbox = SandboxConfig()
    return suite_settings(
        settings,
        namespace="accounts",
        sandbox_url=sandbox_url,
        database=tmp_path_factory.mktemp("accounts") / "chronogram.db",
        api_reconcile_interval_seconds=0.0,
        meta_app_id=sandbox.app_id,
        meta_app_secret=SecretStr(sandbox.app_secret),
        token_refresh_lead=REFRESH_LEAD,
        token_refresh_min_age=timedelta(seconds=1),
        # Webhooks to receivers in the test process (tests/support/receiver.py), retried in seconds.
        webhook_allow_http_localhost=True,
        webhook_allowed_networks=["127.0.0.0/8"],
        webhook_retry_initial_seconds=0.2,
        webhook_retry_max_interval_seconds=1.0,
        webhook_retry_window_seconds=120.0,
    )


@pytest_asyncio.fixture(scope="package")
async def app(accounts_settings: Settings) -> AsyncIterator[FastAPI]:
    async with background_worker(accounts_settings, settle=0.3) as worker:
        application = create_app(accounts_settings)
        async with application.router.lifespan_context(application):
            assert not worker.done(), "the worker is not running"
            yield application


@pytest.fixture(scope="package")
def services(app: FastAPI) -> AppServices:
    found: AppServices = app.state.services
    return found


@pytest_asyncio.fixture(scope="package")
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxAdmin]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield SandboxAdmin(http, sandbox_url)


@dataclass
class User:
    user_id: int
    client: httpx.AsyncClient


@pytest_asyncio.fixture
async def user(app: FastAPI, services: AppServices) -> AsyncIterator[User]:
    def create() -> tuple[int, str]:
        with Session(services.engine) as session:
            principal, key = create_user(session, name=f"user-{uuid.uuid4().hex[:12]}@example.com")
        return principal.user_id, key

    user_id, key = await asyncio.to_thread(create)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        yield User(user_id, client)
