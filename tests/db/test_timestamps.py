"""Instants stay instants: aware in, aware UTC out, on both databases; naive datetimes never get in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import StatementError
from sqlmodel import Session, col, select

from chronogram.crypto import TokenCipher
from chronogram.models import Post, PostEvent, User, UTCDateTime
from tests.support.factories import add_account, add_post, add_user, id_of

PARIS_WINTER = timezone(timedelta(hours=1))
TOKYO = timezone(timedelta(hours=9))


def test_aware_datetimes_come_back_aware_and_in_utc(engine: Engine, cipher: TokenCipher) -> None:
    publish_at = datetime(2026, 12, 24, 18, 0, 0, 250000, tzinfo=PARIS_WINTER)
    with Session(engine) as session:
        post = add_post(session, add_account(session, add_user(session), cipher), publish_at)
        session.commit()
        post_id = post.id
    with Session(engine) as session:
        stored = session.get_one(Post, post_id)
        assert stored.publish_at == publish_at
        assert stored.publish_at.tzinfo is UTC
        assert stored.publish_at.hour == 17


def test_sqlite_stores_utc_so_text_order_is_time_order(sqlite_engine: Engine, cipher: TokenCipher) -> None:
    # 18:00 in Tokyo is 09:00 UTC: earlier than 10:00 UTC, though its local wall-clock text sorts later.
    early = datetime(2026, 12, 1, 18, 0, tzinfo=TOKYO)
    late = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with Session(sqlite_engine) as session:
        account = add_account(session, add_user(session), cipher)
        late_id, early_id = id_of(add_post(session, account, late)), id_of(add_post(session, account, early))
        session.commit()
        raw = session.scalar(text("SELECT publish_at FROM posts WHERE id = :id"), {"id": early_id})
        ordered = session.exec(select(Post.id).order_by(col(Post.publish_at))).all()
    assert raw == "2026-12-01 09:00:00.000000"
    assert ordered == [early_id, late_id]


def test_server_defaults_read_back_aware(engine: Engine) -> None:
    """created_at filled in by the database (CURRENT_TIMESTAMP / now()), not by Python."""
    email = f"server-default-{datetime.now(UTC).timestamp()}@example.com"
    with Session(engine) as session:
        session.execute(text("INSERT INTO users (email) VALUES (:email)"), {"email": email})
        session.commit()
        user = session.exec(select(User).where(User.email == email)).one()
    assert user.created_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - user.created_at) < timedelta(minutes=1)


def test_a_naive_datetime_is_refused_on_write(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        account = add_account(session, add_user(session), cipher)
        with pytest.raises(StatementError, match="naive datetime 2026-12-01T09:00:00 refused"):
            add_post(session, account, datetime(2026, 12, 1, 9))  # refused on flush


def test_a_naive_datetime_is_refused_in_a_query_too(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(StatementError, match="naive datetime"):
        session.exec(select(PostEvent).where(PostEvent.occurred_at < datetime(2026, 1, 1))).all()


def test_the_type_itself() -> None:
    sqlite_dialect = sqlite.dialect()
    column_type = UTCDateTime()
    with pytest.raises(ValueError, match="naive"):
        column_type.process_bind_param(datetime(2026, 1, 1), sqlite_dialect)
    stored = column_type.process_bind_param(datetime(2026, 1, 1, 9, tzinfo=TOKYO), sqlite_dialect)
    assert stored == datetime(2026, 1, 1, 0, 0)
    assert column_type.process_result_value(stored, sqlite_dialect) == datetime(2026, 1, 1, tzinfo=UTC)
    assert column_type.process_bind_param(None, sqlite_dialect) is None
