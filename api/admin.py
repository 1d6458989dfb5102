"""Administration from the command line: users and API keys.

    python -m api.admin create-user NAME     # prints the new user's API key, once
    python -m api.admin create-key NAME      # another key for an existing user (e.g. a lost one)
    python -m api.admin list-keys USER       # a user's keys: id, prefix, name, created, last used, revoked
    python -m api.admin revoke-key KEY_ID    # refused from the next request on; the key stays listed

NAME, and USER, name a user: an e-mail address or a handle (3 to 320 characters, stored lower-cased). Keys are
stored as sha256 hashes only: a key that is not copied when it is printed is gone, and a new one has to be made.
Users manage their own keys through the API as well (/v1/keys); the keys made here count towards their limit of
active keys, but this command may make more.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from api.crud import keys as key_crud
from api.crud.users import InvalidUserName, UserExists, create_key, create_user, find_user
from chronogram.db import create_schema, make_engine
from chronogram.models import ApiKey
from chronogram.settings import get_settings

DEV_USER = "dev"
_KEY_COLUMNS = ("id", "prefix", "name", "created_at", "last_used_at", "revoked_at")


def ensure_dev_user(engine: Engine) -> str | None:
    """Create the development user "dev" with a key on first call; returns the key only when it created it.

    The run command prints the returned key; later starts return None, as the key cannot be read back.
    """
    create_schema(engine)
    with Session(engine) as session:
        try:
            _user, key = create_user(session, name=DEV_USER, key_name="created by the run command")
        except UserExists:
            return None
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api.admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="create a user and print its API key")
    create.add_argument("name", metavar="NAME")
    another = commands.add_parser("create-key", help="print a new API key for an existing user")
    another.add_argument("name", metavar="NAME")
    listing = commands.add_parser("list-keys", help="list a user's API keys (never the keys themselves)")
    listing.add_argument("name", metavar="USER")
    revoke = commands.add_parser("revoke-key", help="revoke an API key, of any user, by its id")
    revoke.add_argument("key_id", metavar="KEY_ID", type=int)
    args = parser.parse_args(argv)

    engine = make_engine(get_settings().database_url)
    try:
        create_schema(engine)
        with Session(engine) as session:
            if args.command == "list-keys":
                return _list_keys(session, args.name)
            if args.command == "revoke-key":
                return _revoke_key(session, args.key_id)
            if args.command == "create-user":
                try:
                    _user, key = create_user(session, name=args.name, key_name="created by api.admin")
                except UserExists as error:
                    sys.stderr.write(f"{error}; `create-key {args.name}` makes it a new key\n")
                    return 1
            else:
                found = create_key(session, name=args.name, key_name="created by api.admin")
                if found is None:
                    sys.stderr.write(f"no user {args.name!r}; `create-user {args.name}` creates one\n")
                    return 1
                key = found
    except InvalidUserName as error:
        sys.stderr.write(f"{error}\n")
        return 2
    finally:
        engine.dispose()
    sys.stderr.write("API key (shown only now; send it as 'Authorization: Bearer <key>'):\n")
    sys.stdout.write(f"{key}\n")
    return 0


def _list_keys(session: Session, name: str) -> int:
    """One tab-separated line per key, oldest first, under a header; '-' for no value."""
    user = find_user(session, name=name)
    if user is None:
        sys.stderr.write(f"no user {name!r}\n")
        return 1
    sys.stdout.write("\t".join(_KEY_COLUMNS) + "\n")
    for row in key_crud.list_keys(session, user_id=user.user_id):
        sys.stdout.write("\t".join(_cell(row, column) for column in _KEY_COLUMNS) + "\n")
    return 0


def _revoke_key(session: Session, key_id: int) -> int:
    row = key_crud.revoke_key(session, key_id=key_id, user_id=None)
    if row is None:
        sys.stderr.write(f"no API key {key_id}\n")
        return 1
    assert row.revoked_at is not None
    sys.stderr.write(f"API key {key_id} ({row.prefix}...) revoked at {row.revoked_at.isoformat()}\n")
    return 0


def _cell(row: ApiKey, column: str) -> str:
    value = getattr(row, column)
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    # A name holds no control characters when made through the API; one made otherwise must not break the line.
    return " ".join(str(value).split())


if __name__ == "__main__":
    sys.exit(main())
