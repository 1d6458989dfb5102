"""Users and their API keys. A key is shown once, when it is made; only its sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from chronogram.models import ApiKey, User

KEY_PREFIX = "cg_"
# Enough of the key to tell keys apart in a listing or a log line, far too little to use it.
_SHOWN_PREFIX_CHARS = 12


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
    key = _add_key(session, user_id=user.id, key_name=key_name)
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


def create_key(session: Session, *, name: str, key_name: str | None = None) -> str | None:
    """A new key for an existing user (e.g. a lost one); None when there is no such user."""
    user = session.exec(select(User).where(User.email == normalise_name(name))).first()
    if user is None or user.id is None:
        return None
    key = _add_key(session, user_id=user.id, key_name=key_name)
    session.commit()
    return key


# Built once: every request runs it, and SQLAlchemy would otherwise rebuild and re-key the statement each time.
_PRINCIPAL_BY_KEY_HASH = (
    select(User.id, User.email)
    .join(ApiKey, ApiKey.user_id == User.id)  # type: ignore[arg-type]
    .where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
)


def authenticate(session: Session, *, key: str) -> Principal | None:
    row = session.exec(_PRINCIPAL_BY_KEY_HASH, params={"key_hash": hash_key(key)}).first()
    if row is None:
        return None
    user_id, name = row
    assert user_id is not None
    return Principal(user_id=user_id, name=name)


def _add_key(session: Session, *, user_id: int, key_name: str | None) -> str:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(user_id=user_id, name=key_name, prefix=key[:_SHOWN_PREFIX_CHARS], key_hash=hash_key(key))
    )
    return key
