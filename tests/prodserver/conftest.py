"""The real-server tier: the production Temporal server (built once into the tool cache) on the session's
PostgreSQL server, with the application database on PostgreSQL too, MinIO, a Graph API sandbox of the tier's own,
and the production worker, in process or as processes of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import TextIO

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.client import Client

from chronogram.crypto import TokenCipher
from chronogram.db import create_schema, make_engine
from chronogram.settings import Settings
from chronogram.storage import ensure_bucket, make_minio
from chronogram.temporal import ensure_namespace, ensure_search_attributes
from devstack.services import MinioServer, PostgresServer, TemporalServer
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.support.api_process import settings_env
from tests.support.db import NewDatabase
from tests.support.factories import Seeder
from tests.support.graph_sandbox import sandbox_server
from tests.support.prodserver import temporal_server
from tests.support.stack import connect_when_healthy
from tests.support.workers import Workers

NAMESPACE = "prodserver"


@pytest.fixture(scope="session")
def temporal_prod_server(
    postgres_server: PostgresServer, server_log: TextIO, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TemporalServer]:
    with temporal_server(
        postgres_server, sink=server_log, config_dir=tmp_path_factory.mktemp("temporal-server")
    ) as server:
        yield server


@pytest.fixture(scope="session")
def prod_sandbox_url() -> Iterator[str]:
    with sandbox_server(image=0.5, video=1, carousel=0.5) as url:
        yield url


@pytest.fixture(scope="session")
def prod_settings(
    temporal_prod_server: TemporalServer,
    minio_server: MinioServer,
    new_pg_database: NewDatabase,
    prod_sandbox_url: str,
) -> Settings:
    """Production-like: every setting at its default but the addresses, on PostgreSQL."""
    configured = Settings(
        temporal_address=temporal_prod_server.address,
        temporal_namespace=NAMESPACE,
        s3_endpoint=minio_server.endpoint,
        s3_access_key="chronogram-test",
        s3_secret_key=SecretStr("chronogram-test-secret"),
        media_bucket=f"{NAMESPACE}-media",
        database_url=new_pg_database().render_as_string(hide_password=False),
        graph_api_base_url=prod_sandbox_url,
        graph_api_timeout_seconds=5.0,
        token_encryption_key=SecretStr(TokenCipher.generate_key()),
        worker_metrics_port=0,
    )
    create_schema(make_engine(configured.database_url))
    ensure_bucket(make_minio(configured), configured.media_bucket)
    return configured


@pytest_asyncio.fixture(scope="session")
async def prod_client(prod_settings: Settings) -> Client:
    """A client of the namespace, registered (the production server starts with none) with the search
    attributes."""
    client = await connect_when_healthy(prod_settings, within=180)
    await ensure_namespace(client, NAMESPACE, retention=timedelta(days=1))
    await ensure_search_attributes(client, NAMESPACE)
    return client


@pytest.fixture(scope="session")
def prod_seeder(prod_settings: Settings) -> Seeder:
    return Seeder(
        engine=make_engine(prod_settings.database_url),
        storage=make_minio(prod_settings),
        bucket=prod_settings.media_bucket,
        cipher=TokenCipher.from_settings(prod_settings),
    )


@pytest_asyncio.fixture(scope="session")
async def prod_sandbox(prod_sandbox_url: str) -> AsyncIterator[SandboxAdmin]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield SandboxAdmin(http, prod_sandbox_url)


@pytest_asyncio.fixture
async def prod_account(prod_sandbox: SandboxAdmin, prod_seeder: Seeder) -> tuple[SandboxAccount, int]:
    account = await prod_sandbox.create_account("prod_shop")
    account_id = await asyncio.to_thread(
        prod_seeder.account,
        ig_user_id=account.ig_user_id,
        username=account.username,
        token=account.access_token,
    )
    return account, account_id


@pytest_asyncio.fixture
async def prod_workers(prod_settings: Settings, server_log: TextIO) -> AsyncIterator[Workers]:
    pool = Workers(settings_env(prod_settings), server_log)
    yield pool
    pool.stop_all()
