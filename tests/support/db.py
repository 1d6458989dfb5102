"""Databases with the application schema, for the fixtures of tests/conftest.py and for tests that want their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import URL, Engine

from chronogram.db import create_schema, make_engine

NewDatabase = Callable[[], URL]
"""The new_pg_database fixture: each call creates an empty, uniquely named database and returns its URL."""


@contextmanager
def schema_engine(url: str | URL) -> Iterator[Engine]:
    """An engine on ``url`` with the schema that create_schema builds; disposed on exit."""
    engine = make_engine(url if isinstance(url, str) else url.render_as_string(hide_password=False))
    create_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()
