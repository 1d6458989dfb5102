"""Databases for the data-model tests: each test runs on a fresh SQLite file (sqlite_engine) and on one
PostgreSQL database, built from schema.sql for this run (pg_engine); new_pg_database, sqlite_engine and cipher
are in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.support.db import NewDatabase, schema_engine


@pytest.fixture(scope="session")
def pg_engine(new_pg_database: NewDatabase) -> Iterator[Engine]:
    """One database built from schema.sql, shared by the run: tests only add rows they own (unique emails)."""
    with schema_engine(new_pg_database()) as engine:
        yield engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The application schema on each supported database, as create_schema builds it."""
    fixture = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    result: Engine = request.getfixturevalue(fixture)
    return result
