"""Users and their API keys. A key is shown once, when it is made; only its sha256 is stored."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, bindparam, or_, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from chronogram.models import ApiKey, User, UTCDateTime

log = logging.getLogger("chronogram.api.keys")

KEY_PREFIX = "cg_"
# Enough of the key to tell keys apart in a listing or a log line, far too little to use it.
_SHOWN_PREFIX_CHARS = 12
# api_keys.last_used_at is recorded at most this often per key, so that using a key is a read, not a write.
LAST_USED_PRECISION = timedelta(minutes=1)


class UserExists(Exception):
    pass


class InvalidUserName(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    """Who is calling: routes get this, never the ORM row."""

    user_id: int
    name: str


def hash_key(key: str) -> str:
    # The key carries 256 random bits, so a fast unsalted hash cannot be brute-forced; it also keeps the
    # per-request lookup a single indexed equality.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def normalise_name(name: str) -> str:
    # users.email is the unique, lower-cased identifier of a user: an e-mail address or a plain handle.
    normalised = name.strip().lower()
    if not 3 <= len(normalised) <= 320:
        raise InvalidUserName("a user name has 3 to 320 characters")
    return normalised


def create_user(session: Session, *, name: str, key_name: str | None = None) -> tuple[Principal, str]:
    """Create a user with one API key; returns the user and the key in plaintext (the only time it exists)."""
    user = User(email=normalise_name(name))
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise UserExists(f"user {user.email!r} already exists") from None
    assert user.id is not None
    _row, key = add_key(session, user_id=user.id, key_name=key_name)
    session.commit()
    return Principal(user_id=user.id, name=user.email), key


def find_or_create_user(session: Session, *, name: str) -> Principal:
    """The user of that name, created (with no API key) if there is none: for callers that need no key, such as
    the command line."""
    email = normalise_name(name)
    for _attempt in range(2):
        user = session.exec(select(User).where(User.email == email)).first()
        if user is None:
            user = User(email=email)
            session.add(user)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # created meanwhile: read it
                continue
        assert user.id is not None
        return Principal(user_id=user.id, name=user.email)
    raise RuntimeError(f"could not create user {email!r}")


def find_user(session: Session, *, name: str) -> Principal | None:
    user = session.exec(select(User).where(User.email == normalise_name(name))).first()
    if user is None or user.id is None:
        return None
    return Principal(user_id=user.id, name=user.email)


def create_key(session: Session, *, name: str, key_name: str | None = None) -> str | None:
    """A new key for an existing user (e.g. a lost one); None when there is no such user."""
    user = find_user(session, name=name)
    if user is None:
        return None
    _row, key = add_key(session, user_id=user.user_id, key_name=key_name)
    session.commit()
    return key


# Built once: every request runs it, and SQLAlchemy would otherwise rebuild and re-key the statement each time.
# Nothing caches its answer: a key revoked a moment ago is refused by the next request.
_PRINCIPAL_BY_KEY_HASH = (
    select(User.id, User.email, ApiKey.id, ApiKey.last_used_at)
    .join(ApiKey, ApiKey.user_id == User.id)  # type: ignore[arg-type]
    .where(ApiKey.key_hash == bindparam("key_hash"), col(ApiKey.revoked_at).is_(None))
)
# Conditional, so that of the requests that find the time stale at once only one writes it.
_RECORD_USE = (
    update(ApiKey)
    .where(
        col(ApiKey.id) == bindparam("key_id"),
        or_(col(ApiKey.last_used_at).is_(None), col(ApiKey.last_used_at) < bindparam("stale_before")),
    )
    .values(last_used_at=bindparam("now", type_=UTCDateTime()))
    .execution_options(synchronize_session=False)
)


def authenticate(session: Session | Connection, *, key: str) -> Principal | None:
    """The user of a key that is neither unknown nor revoked; records when the key was used, to the minute. On a
    plain connection (each request's lookup, api.deps) the ORM's session machinery is skipped: the lookup reads
    columns, not objects."""
    if isinstance(session, Session):
        row = session.exec(_PRINCIPAL_BY_KEY_HASH, params={"key_hash": hash_key(key)}).first()
    else:
        row = session.execute(_PRINCIPAL_BY_KEY_HASH, {"key_hash": hash_key(key)}).first()
    if row is None:
        return None
    user_id, name, key_id, last_used_at = row
    assert user_id is not None and key_id is not None
    now = datetime.now(UTC)
    if last_used_at is None or last_used_at < now - LAST_USED_PRECISION:
        _record_use(session, key_id=key_id, now=now)
    return Principal(user_id=user_id, name=name)


def _record_use(session: Session | Connection, *, key_id: int, now: datetime) -> None:
    # Before the request's own work, in a transaction of its own; a failure costs the time, never the request.
    try:
        session.execute(
            _RECORD_USE, {"key_id": key_id, "stale_before": now - LAST_USED_PRECISION, "now": now}
        )
        session.commit()
    except SQLAlchemyError as error:
        session.rollback()
        log.warning("could not record the use of API key %s: %s", key_id, error)


def add_key(session: Session, *, user_id: int, key_name: str | None) -> tuple[ApiKey, str]:
    """Add a key to the session (the caller commits): its row, and the key in plaintext, the only time it exists."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(user_id=user_id, name=key_name, prefix=key[:_SHOWN_PREFIX_CHARS], key_hash=hash_key(key))
    session.add(row)
    return row, key
