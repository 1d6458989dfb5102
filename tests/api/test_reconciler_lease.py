"""Two API processes, one reconciler pass at a time: the lease is a PostgreSQL advisory lock, taken by one pass,
skipped by a concurrent one, released when the pass ends or its connection dies."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine

from api.reconciler_lease import LOCK_KEY, reconciler_lease
from tests.support.db import NewDatabase, schema_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_processes(new_pg_database: NewDatabase) -> Iterator[tuple[Engine, Engine]]:
    """Two engines (two pools, as two API processes have) on one database."""
    url = new_pg_database()
    with schema_engine(url) as first, schema_engine(url) as second:
        yield first, second


async def test_one_pass_at_a_time(two_processes: tuple[Engine, Engine]) -> None:
    first, second = two_processes
    async with reconciler_lease(first) as leading:
        assert leading
        async with reconciler_lease(second) as also_leading:
            assert not also_leading
    async with reconciler_lease(second) as leading_now:
        assert leading_now


async def test_a_dead_process_releases_the_lease(new_pg_database: NewDatabase) -> None:
    url = new_pg_database()
    other_process = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    assert other_process.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone() == (True,)
    with schema_engine(url) as engine:
        async with reconciler_lease(engine) as leading:
            assert not leading
        other_process.close()  # its process died: PostgreSQL ends the session, and the lock with it
        async with reconciler_lease(engine) as leading:
            assert leading


async def test_sqlite_always_reconciles(sqlite_engine: Engine) -> None:
    async with reconciler_lease(sqlite_engine) as leading:
        assert leading
