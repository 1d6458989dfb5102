"""A user's API keys: list, create (up to a number of active keys) and revoke. Keys are made and checked in
api.crud.users; a revoked key keeps its row, for the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from api.crud.users import add_key
from chronogram.models import ApiKey, User


class KeyLimitReached(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"a user may have at most {limit} active API keys")
        self.limit = limit


def list_keys(session: Session, *, user_id: int) -> list[ApiKey]:
    """Every key of the user, revoked ones too, oldest first."""
    return list(session.exec(select(ApiKey).where(ApiKey.user_id == user_id).order_by(col(ApiKey.id))).all())


def create_key(session: Session, *, user_id: int, name: str, max_active: int) -> tuple[ApiKey, str]:
    """A new key and, in plaintext, the key itself (the only time it exists); KeyLimitReached when the user
    already has ``max_active`` keys that are not revoked."""
    # Concurrent requests of one user take turns from here: PostgreSQL locks the user's row (FOR NO KEY UPDATE,
    # which leaves the user's other inserts alone). SQLite has no such lock and needs none: the insert waits for
    # the one writer it allows, so the count after it sees every key committed before.
    session.exec(select(User.id).where(User.id == user_id).with_for_update(key_share=True)).first()
    row, key = add_key(session, user_id=user_id, key_name=name)
    session.flush()
    active = session.exec(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.user_id == user_id, col(ApiKey.revoked_at).is_(None))
    ).one()
    if active > max_active:
        session.rollback()
        raise KeyLimitReached(max_active)
    session.commit()
    return row, key


def revoke_key(session: Session, *, key_id: int, user_id: int | None) -> ApiKey | None:
    """Revoke the key: the next request that sends it answers 401. None when there is no such key, or when it
    belongs to another user than ``user_id`` (None: any user, for the admin command). A key revoked already
    stays as it is, with the time it was first revoked."""
    mine = [col(ApiKey.id) == key_id]
    if user_id is not None:
        mine.append(col(ApiKey.user_id) == user_id)
    session.execute(
        update(ApiKey)
        .where(*mine, col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    # populate_existing: a row the session holds already is read again, with the update.
    row = session.exec(select(ApiKey).where(*mine).execution_options(populate_existing=True)).first()
    session.commit()
    return row
