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


def test_an_older_database_accepts_drafts(new_engine: Callable[[], Engine]) -> None:
    """posts.status got 'draft' after release: the CHECKs of a database made before are widened, once."""
    old, fresh = new_engine(), new_engine()
    create_schema(old)
    create_schema(fresh)
    with old.begin() as connection:
        if old.dialect.name == "sqlite":
            version = connection.exec_driver_sql("PRAGMA schema_version").scalar_one()
            connection.exec_driver_sql("PRAGMA writable_schema = ON")
            connection.exec_driver_sql(
                "UPDATE sqlite_master SET sql = replace(sql, ', ''draft'')', ')') "
                "WHERE name IN ('posts', 'post_events')"
            )
            connection.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
            connection.exec_driver_sql("PRAGMA writable_schema = OFF")
        else:
            statuses = "('scheduled', 'publishing', 'published', 'failed', 'cancelled')"
            connection.exec_driver_sql(
                "ALTER TABLE posts DROP CONSTRAINT posts_status_check, ADD CONSTRAINT posts_status_check "
                f"CHECK (status IN {statuses})"
            )
            for column in ("from_status", "to_status"):
                name = f"post_events_{column}_check"
                connection.exec_driver_sql(
                    f"ALTER TABLE post_events DROP CONSTRAINT {name}, ADD CONSTRAINT {name} "
                    f"CHECK ({column} IS NULL OR {column} IN {statuses})"
                )
    assert "draft" not in _checks(old)

    create_schema(old)
    create_schema(old)

    assert _checks(old) == _checks(fresh)
    assert _checks(old).count("'draft'") == 3


def _checks(engine: Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name IN ('posts', 'post_events') ORDER BY name"
            ).scalars()
        else:
            rows = connection.exec_driver_sql(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname IN "
                "('posts_status_check', 'post_events_from_status_check', 'post_events_to_status_check') "
                "ORDER BY conname"
            ).scalars()
        return "\n".join(rows)
