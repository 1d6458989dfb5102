"""The application database engine: SQLite (embedded default) or PostgreSQL via psycopg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateColumn
from sqlmodel import SQLModel, create_engine

from chronogram.models import APP_TABLES
from chronogram.settings import PROJECT_ROOT

SCHEMA_SQL = PROJECT_ROOT / "schema.sql"

# Any constant shared by every process: concurrent starts (API and worker) take turns applying schema.sql, since
# two CREATE TABLE IF NOT EXISTS racing on the same name can still fail on PostgreSQL's catalog constraints.
_SCHEMA_LOCK_ID = 0x6368726F6E6F

ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("api_keys", "last_used_at"),
    ("instagram_accounts", "disconnecting_since"),
    ("instagram_accounts", "token_issued_at"),
    ("instagram_accounts", "status"),
    ("instagram_accounts", "status_reason"),
    ("instagram_accounts", "status_detail"),
    ("instagram_accounts", "status_changed_at"),
    ("instagram_accounts", "max_lateness_seconds"),
    ("posts", "max_lateness_seconds"),
    ("posts", "last_publish_call"),
    ("media_assets", "rotation"),
    ("media_assets", "video_codec"),
    ("media_assets", "audio_codec"),
    ("media_assets", "frame_rate"),
    ("media_assets", "has_audio"),
    ("media_assets", "preview_key"),
    ("posts", "template_id"),
    ("posts", "first_comment_calls"),
)
"""Columns added to tables after their release, as (table, column). Creating what is missing leaves an existing
table as it is, so create_schema adds these to the databases made before them: schema.sql's closing section on
PostgreSQL, _add_missing_columns on SQLite. Only nullable columns, or ones with a constant default, can be added so."""

WIDENED_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("posts", "'cancelled')", "'cancelled', 'draft')"),
    ("post_events", "'cancelled')", "'cancelled', 'draft')"),
)
"""Enumerations given a value after release, as (table, old text, new text) of its CHECKs on SQLite, which cannot
replace a constraint: create_schema rewrites the table's definition in place (_widen_checks), which SQLite allows
for a constraint that accepts more than before (https://sqlite.org/lang_altertable.html#otheralter). schema.sql's
last section does the same on PostgreSQL. Only widenings: existing rows satisfy the new CHECK by construction."""


def make_engine(
    database_url: str,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_timeout: float | None = None,
) -> Engine:
    """The pool options left out keep SQLAlchemy's defaults (5 connections, 10 more under load, 30 s waits).

    SQLite files get the same kind of pool as PostgreSQL (a QueuePool): a connection is a file handle, cheap, and
    readers do not block each other in WAL mode; writers take turns (api.sqlite_writes in the API).
    """
    pool: dict[str, Any] = {
        name: value
        for name, value in (
            ("pool_size", pool_size),
            ("max_overflow", max_overflow),
            ("pool_timeout", pool_timeout),
        )
        if value is not None
    }
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        else:
            pool = {}  # one connection per thread, no queue to size
        # The API and the worker's thread pool share one file: let writers wait instead of failing at once.
        engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(database_url, pool_pre_ping=True, **pool)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_schema(engine: Engine, schema_sql: Path = SCHEMA_SQL) -> None:
    """Create whatever tables and indexes are missing; safe to run on every start.

    PostgreSQL runs schema.sql, the production source of truth, in one transaction. SQLite is built from the
    SQLModel mirror of it (chronogram.models), which tests/db/test_schema.py keeps identical. Either way a database
    made before one of ADDED_COLUMNS gets that column.
    """
    if engine.dialect.name == "postgresql":
        ddl = schema_sql.read_text(encoding="utf-8")
        with engine.begin() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_ID})")
            # no_parameters: the driver then sends the script as it is, several statements at once, and does not
            # read the '%' of LIKE patterns as placeholders.
            connection.execution_options(no_parameters=True).exec_driver_sql(ddl)
    elif engine.dialect.name == "sqlite":
        SQLModel.metadata.create_all(engine, tables=list(APP_TABLES))
        _add_missing_columns(engine)
        _widen_checks(engine)
    else:
        raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")


def _add_missing_columns(engine: Engine) -> None:
    """SQLite: ADD COLUMN each of ADDED_COLUMNS that an older database lacks, as create_all would declare it."""
    tables = {table.name: table for table in APP_TABLES}
    for table_name, column_name in ADDED_COLUMNS:
        if _has_column(engine, table_name, column_name):
            continue
        column = CreateColumn(tables[table_name].c[column_name]).compile(dialect=engine.dialect)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(f"ALTER TABLE {table_name} ADD COLUMN {column}")
        except OperationalError:
            # Another process starting at the same time (the API and the worker) added it first.
            if not _has_column(engine, table_name, column_name):
                raise


def _has_column(engine: Engine, table_name: str, column_name: str) -> bool:
    return any(column["name"] == column_name for column in inspect(engine).get_columns(table_name))


def _widen_checks(engine: Engine) -> None:
    """SQLite: the CHECKs of WIDENED_CHECKS that an older database still has, rewritten in its schema."""
    with engine.begin() as connection:
        definitions: dict[str, str] = dict(
            connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
        )
        rewritten: dict[str, str] = {}
        for table_name, old, new in WIDENED_CHECKS:
            sql = rewritten.get(table_name, definitions.get(table_name) or "")
            if new not in sql and old in sql:
                rewritten[table_name] = sql.replace(old, new)
        if not rewritten:
            return
        version = connection.exec_driver_sql("PRAGMA schema_version").scalar_one()
        connection.exec_driver_sql("PRAGMA writable_schema = ON")
        for table_name, sql in rewritten.items():
            connection.exec_driver_sql(
                "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (sql, table_name)
            )
        connection.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
        connection.exec_driver_sql("PRAGMA writable_schema = OFF")
