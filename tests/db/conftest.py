"""Databases for the data-model tests: a fresh SQLite file per test, and PostgreSQL databases created per test run.

Each PostgreSQL database gets a unique name on the session's server and is dropped when the run ends, so these
tests never see tables left by other suites (or leave any behind).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL, Engine, make_url

from chronogram.crypto import TokenCipher
from chronogram.db import create_schema, make_engine
from devstack.services import PostgresServer

NewDatabase = Callable[[], URL]


def _conninfo(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def new_pg_database(postgres_server: PostgresServer) -> Iterator[NewDatabase]:
    """Create an empty, uniquely named database; returns its SQLAlchemy URL."""
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


@pytest.fixture(scope="session")
def pg_engine(new_pg_database: NewDatabase) -> Iterator[Engine]:
    """One database built from schema.sql, shared by the run: tests only add rows they own (unique emails)."""
    engine = make_engine(new_pg_database().render_as_string(hide_password=False))
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'chronogram.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The application schema on each supported database, as create_schema builds it."""
    fixture = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    result: Engine = request.getfixturevalue(fixture)
    return result


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([TokenCipher.generate_key()])
