"""Fixtures for every folder: the real servers, each started on free ports the first time a test asks for it,
and databases with the application schema (SQLite files, PostgreSQL databases made for the run).

Every server is a child process that dies with the test run (see devstack.processes), so an interrupted run
leaves nothing listening. Server logs go to one file whose path is printed in the test summary.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TextIO

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql
from sqlalchemy import URL, Engine, make_url
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from chronogram.contracts import SEARCH_ATTRIBUTES
from chronogram.crypto import TokenCipher
from chronogram.settings import Settings
from chronogram.temporal import connect_temporal
from devstack.processes import free_port
from devstack.services import MinioServer, PostgresServer, TemporalDevServer
from tests.support.db import NewDatabase, schema_engine
from tests.support.time_skipping import TimeSkippingServers

SERVER_LOG_ENV = "CHRONOGRAM_TEST_SERVER_LOG"
ISOLATED_NAMESPACES = ("engine", "api", "accounts")


@pytest.fixture(scope="session")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TextIO]:
    path = Path(os.environ.get(SERVER_LOG_ENV) or tmp_path_factory.getbasetemp() / "servers.log")
    with open(path, "a", buffering=1) as sink:
        yield sink


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    basetemp = terminalreporter.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    log = Path(os.environ.get(SERVER_LOG_ENV) or basetemp / "servers.log")
    if log.exists():
        terminalreporter.write_line(f"server logs: {log}")


@pytest.fixture(scope="session")
def temporal_dev_server(server_log: TextIO) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer.start(
        sink=server_log,
        port=free_port(),
        ui_port=None,
        db_file=None,
        search_attributes={key.name: key._metadata_type for key in SEARCH_ATTRIBUTES},
        # Suites that run the production task queue with their own database get their own namespace, so one
        # suite's worker never picks up another's tasks.
        namespaces=ISOLATED_NAMESPACES,
    )
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def minio_server(server_log: TextIO, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    server = MinioServer.start(
        sink=server_log,
        data_dir=tmp_path_factory.mktemp("minio"),
        port=free_port(),
        console_port=free_port(),
        access_key="chronogram-test",
        secret_key="chronogram-test-secret",
    )
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def postgres_server(server_log: TextIO) -> Iterator[PostgresServer]:
    # Not under pytest's basetemp: that is private to root, and the server may run as the postgres user.
    data_dir = Path(tempfile.mkdtemp(prefix="chronogram-pg-"))
    data_dir.chmod(0o755)
    server = PostgresServer.start(
        sink=server_log, data_dir=data_dir / "data", port=free_port(), durable=False
    )
    yield server
    server.process.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(
    temporal_dev_server: TemporalDevServer,
    minio_server: MinioServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """Settings pointing at this session's servers; the app database is a fresh SQLite file."""
    return Settings(
        temporal_address=temporal_dev_server.address,
        s3_endpoint=minio_server.endpoint,
        s3_access_key="chronogram-test",
        s3_secret_key="chronogram-test-secret",  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path_factory.mktemp('db') / 'chronogram.db'}",
        # In-process workers serve their metrics on any free port: suites (and engineers) run side by side.
        worker_metrics_port=0,
    )


@pytest_asyncio.fixture(scope="session")
async def temporal_client(settings: Settings) -> Client:
    return await connect_temporal(settings)


@pytest_asyncio.fixture(scope="session")
async def time_skipping_servers() -> AsyncIterator[TimeSkippingServers]:
    servers = TimeSkippingServers()
    yield servers
    await servers.close()


@pytest_asyncio.fixture
async def time_skipping_env(time_skipping_servers: TimeSkippingServers) -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, shared while tests leave it clean: one that leaves a workflow open (a
    failure halfway) has it terminated, and the next test gets a fresh server (tests/support/time_skipping.py)."""
    yield await time_skipping_servers.take()
    await time_skipping_servers.give_back()


@pytest.fixture(scope="session")
def new_pg_database(postgres_server: PostgresServer) -> Iterator[NewDatabase]:
    """Create an empty, uniquely named database; returns its SQLAlchemy URL. Each is dropped when the run ends,
    so tests never see tables left by other suites (or leave any behind)."""
    server_url = make_url(postgres_server.url)
    maintenance = _conninfo(server_url.set(database="postgres"))
    created: list[str] = []

    def create() -> URL:
        name = f"chronogram_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(maintenance, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return server_url.set(database=name)

    yield create
    with psycopg.connect(maintenance, autocommit=True) as connection:
        for name in created:
            # FORCE: a test that failed mid-way may still hold a pooled connection.
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _conninfo(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A new SQLite file with the application schema."""
    with schema_engine(f"sqlite:///{tmp_path / 'chronogram.db'}") as engine:
        yield engine


@pytest.fixture
def cipher() -> TokenCipher:
    """A token cipher with a key of its own."""
    return TokenCipher([TokenCipher.generate_key()])
