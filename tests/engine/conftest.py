"""The engine on the real stack: the dev server (own namespace), MinIO, the Graph API sandbox, a SQLite database,
and the production worker code with its real activities."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client

from chronogram.crypto import TokenCipher
from chronogram.db import make_engine
from chronogram.settings import Settings
from chronogram.storage import make_minio
from chronogram.temporal import connect_temporal
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.support.factories import Seeder
from tests.support.graph_sandbox import sandbox_server
from tests.support.publishing import start_seeded as start_seeded  # the engine suites' way to start a post
from tests.support.stack import background_worker, suite_settings


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    # Short but non-zero processing, so containers really pass through IN_PROGRESS.
    with sandbox_server(image=0.5, video=1, carousel=0.5) as url:
        yield url


@pytest.fixture(scope="session")
def engine_settings(
    settings: Settings, sandbox_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return suite_settings(
        settings,
        namespace="engine",
        sandbox_url=sandbox_url,
        database=tmp_path_factory.mktemp("engine") / "chronogram.db",
    )


@pytest.fixture(scope="session")
def seeder(engine_settings: Settings) -> Seeder:
    return Seeder(
        engine=make_engine(engine_settings.database_url),
        storage=make_minio(engine_settings),
        bucket=engine_settings.media_bucket,
        cipher=TokenCipher.from_settings(engine_settings),
    )


@pytest_asyncio.fixture(scope="session")
async def engine_client(engine_settings: Settings) -> Client:
    return await connect_temporal(engine_settings)


@pytest_asyncio.fixture(scope="session")
async def sandbox_admin(sandbox_url: str) -> AsyncIterator[SandboxAdmin]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield SandboxAdmin(http, sandbox_url)


@pytest_asyncio.fixture
async def ig_account(sandbox_admin: SandboxAdmin, seeder: Seeder) -> tuple[SandboxAccount, int]:
    """A fresh sandbox account (its own quota and media) connected in the database; returns it and its row id."""
    account = await sandbox_admin.create_account("engine_shop")
    account_id = await asyncio.to_thread(
        seeder.account, ig_user_id=account.ig_user_id, username=account.username, token=account.access_token
    )
    return account, account_id


@pytest_asyncio.fixture
async def in_process_worker(engine_settings: Settings) -> AsyncIterator[None]:
    async with background_worker(engine_settings, settle=0.5):
        yield


def engine_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for a worker started as its own process."""
    names = (
        "temporal_address",
        "temporal_namespace",
        "graph_api_base_url",
        "database_url",
        "media_bucket",
        "s3_endpoint",
        "s3_access_key",
    )
    env = {f"CHRONOGRAM_{name.upper()}": str(getattr(settings, name)) for name in names}
    env["CHRONOGRAM_S3_SECRET_KEY"] = settings.s3_secret_key.get_secret_value()
    env["CHRONOGRAM_TOKEN_ENCRYPTION_KEY"] = settings.token_encryption_key.get_secret_value()
    env["CHRONOGRAM_GRAPH_API_TIMEOUT_SECONDS"] = str(settings.graph_api_timeout_seconds)
    # Several workers at once (and other suites' workers): each takes a free port for its metrics.
    env["CHRONOGRAM_WORKER_METRICS_PORT"] = str(settings.worker_metrics_port)
    return env


PROJECT_ROOT = Path(__file__).resolve().parents[2]
