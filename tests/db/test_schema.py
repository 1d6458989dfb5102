"""schema.sql (production, PostgreSQL) and chronogram/models.py (SQLite, the ORM) describe the same schema."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

import pytest
from sqlalchemy import Column, Engine, Index, MetaData, Text, inspect
from sqlmodel import SQLModel

from chronogram.db import create_schema, make_engine
from chronogram.models import APP_TABLES, EventKind, PostStatus, PostType
from tests.db.schema_shape import database_shape, differences, metadata_shape
from tests.support.db import NewDatabase

pytestmark = pytest.mark.postgres


def _report(problems: list[str]) -> str:
    return "schema.sql and chronogram/models.py disagree:\n  " + "\n  ".join(problems)


def test_schema_sql_matches_the_models(pg_engine: Engine) -> None:
    problems = differences(metadata_shape(APP_TABLES), database_shape(pg_engine))
    assert not problems, _report(problems)


def test_the_models_build_the_same_postgresql_schema_as_schema_sql(
    pg_engine: Engine, new_pg_database: NewDatabase
) -> None:
    """Down to what PostgreSQL normalises: CHECK bodies, default expressions, identity options, comments."""
    from_models = make_engine(new_pg_database().render_as_string(hide_password=False))
    try:
        SQLModel.metadata.create_all(from_models, tables=list(APP_TABLES))
        problems = differences(
            database_shape(from_models, detailed=True),
            database_shape(pg_engine, detailed=True),
            names=("a database built from the models", "schema.sql"),
        )
    finally:
        from_models.dispose()
    assert not problems, _report(problems)


def test_schema_sql_can_be_applied_again(pg_engine: Engine) -> None:
    before = database_shape(pg_engine, detailed=True)
    create_schema(pg_engine)
    assert database_shape(pg_engine, detailed=True) == before


def test_concurrent_starts_apply_schema_sql_one_at_a_time(new_pg_database: NewDatabase) -> None:
    """The API and the worker may start together on an empty database."""
    engine = make_engine(new_pg_database().render_as_string(hide_password=False))
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: create_schema(engine), range(4)))
        assert not differences(metadata_shape(APP_TABLES), database_shape(engine))
    finally:
        engine.dispose()


def test_drift_in_the_models_is_detected(pg_engine: Engine) -> None:
    metadata = MetaData()
    tables = [table.to_metadata(metadata) for table in APP_TABLES]
    metadata.tables["posts"].append_column(Column("extra", Text()))
    Index("ix_media_assets_sha256", metadata.tables["media_assets"].c.sha256)

    problems = differences(metadata_shape(tables), database_shape(pg_engine))

    assert [line.split(":")[0] for line in problems] == [
        "media_assets.indexes.ix_media_assets_sha256",
        "posts.columns.extra",
    ]


def test_drift_in_schema_sql_is_detected(new_pg_database: NewDatabase) -> None:
    engine = make_engine(new_pg_database().render_as_string(hide_password=False))
    try:
        create_schema(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE posts ADD COLUMN extra TEXT")
            connection.exec_driver_sql("ALTER TABLE posts ALTER COLUMN caption SET NOT NULL")
            connection.exec_driver_sql("ALTER TABLE post_media ALTER COLUMN user_tags TYPE JSON")
            connection.exec_driver_sql("CREATE INDEX ix_users_created_at ON users (created_at)")
            connection.exec_driver_sql("ALTER TABLE api_keys DROP CONSTRAINT api_keys_prefix_check")
        problems = differences(metadata_shape(APP_TABLES), database_shape(engine))
    finally:
        engine.dispose()

    assert [line.split(":")[0] for line in problems] == [
        "api_keys.checks",
        "post_media.columns.user_tags.type",
        "posts.columns.caption.nullable",
        "posts.columns.extra",
        "users.indexes.ix_users_created_at",
    ]


@pytest.mark.parametrize(
    ("table", "constraint", "enum"),
    [
        ("posts", "posts_type_check", PostType),
        ("posts", "posts_status_check", PostStatus),
        ("post_events", "post_events_kind_check", EventKind),
        ("post_events", "post_events_from_status_check", PostStatus),
        ("post_events", "post_events_to_status_check", PostStatus),
    ],
)
def test_enum_checks_list_exactly_the_python_values(
    pg_engine: Engine, table: str, constraint: str, enum: type[StrEnum]
) -> None:
    bodies = {check["name"]: check["sqltext"] for check in inspect(pg_engine).get_check_constraints(table)}
    assert re.findall(r"'([^']*)'::text", bodies[constraint]) == [member.value for member in enum]
