"""Deleting rows that posts may need: nothing is deleted while a post that may still publish needs it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Executable
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

_Pinning = TypeVar("_Pinning")


def delete_unless_pinned(
    session: Session,
    pinning: Callable[[], list[_Pinning]],
    deletes: Sequence[Executable],
    *,
    _again: bool = True,
) -> list[_Pinning]:
    """Run ``deletes`` in one transaction unless ``pinning`` finds what still needs the rows: then nothing is
    deleted and what it found is returned. A post that took the rows between the check and the delete makes a
    (deferred) foreign key refuse the delete at commit: then all is checked once again."""
    pinned = pinning()
    if pinned:
        session.rollback()
        return pinned
    for statement in deletes:
        session.execute(statement)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if not _again:
            raise
        return delete_unless_pinned(session, pinning, deletes, _again=False)
    return []
