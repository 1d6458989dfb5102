"""Administration from the command line: users and API keys.

    python -m api.admin create-user NAME     # prints the new user's API key, once
    python -m api.admin create-key NAME      # another key for an existing user (e.g. a lost one)

NAME is an e-mail address or a handle (3 to 320 characters, stored lower-cased). Keys are stored as sha256 hashes
only: a key that is not copied when it is printed is gone, and a new one has to be made.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import Engine
from sqlmodel import Session

from api.crud.users import InvalidUserName, UserExists, create_key, create_user
from chronogram.db import create_schema, make_engine
from chronogram.settings import get_settings

DEV_USER = "dev"


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
    args = parser.parse_args(argv)

    engine = make_engine(get_settings().database_url)
    try:
        create_schema(engine)
        with Session(engine) as session:
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


if __name__ == "__main__":
    sys.exit(main())
