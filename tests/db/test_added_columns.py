"""A database made before a column was added (chronogram.db.ADDED_COLUMNS) gets it at the next start, keeps its
rows, and ends up exactly like a database made now; on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from chronogram.db import ADDED_COLUMNS, create_schema, make_engine
from chronogram.models import APP_TABLES
from tests.db.schema_shape import database_shape, differences
from tests.support.db import NewDatabase


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """A factory of empty databases of one kind, so that two can be compared."""
    engines: list[Engine] = []

    def make() -> Engine:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f'db{len(engines)}.sqlite'}"
        else:
            new_pg_database: NewDatabase = request.getfixturevalue("new_pg_database")
            url = new_pg_database().render_as_string(hide_password=False)
        engines.append(make_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def _shape(engine: Engine) -> dict[str, Any]:
    if engine.dialect.name == "postgresql":
        return database_shape(engine, detailed=True)
    # SQLite has no comments, which database_shape reads: its own account of each table instead.
    with engine.connect() as connection:
        tables = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).scalars()
        return {
            table: {
                pragma: sorted(tuple(row) for row in connection.exec_driver_sql(f"PRAGMA {pragma}({table})"))
                for pragma in ("table_xinfo", "index_list", "foreign_key_list")
            }
            for table in list(tables)
        }


def test_the_added_columns_are_in_the_models() -> None:
    tables = {table.name: table for table in APP_TABLES}
    for table, column in ADDED_COLUMNS:
        assert column in tables[table].c, (table, column)


def test_an_older_database_gets_the_added_columns(new_engine: Callable[[], Engine]) -> None:
    old, fresh = new_engine(), new_engine()
    create_schema(old)
    with old.begin() as connection:
        for table, column in ADDED_COLUMNS:
            connection.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        connection.execute(text("INSERT INTO users (email) VALUES ('old@example.com')"))
        connection.execute(
            text(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash) "
                "SELECT id, 'old key', 'cg_oldkey', :hash FROM users"
            ),
            {"hash": "0" * 64},
        )

    # The API and the worker start together on it; and the next start finds nothing more to do.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: create_schema(old), range(4)))
    create_schema(old)
    create_schema(fresh)

    problems = differences(_shape(old), _shape(fresh), names=("an upgraded database", "a new one"))
    assert not problems, problems
    with old.connect() as connection:
        rows = connection.execute(text("SELECT name, last_used_at FROM api_keys")).all()
    assert [tuple(row) for row in rows] == [("old key", None)]
