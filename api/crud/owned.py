"""Loading one row of the calling user."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from sqlalchemy import bindparam
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from chronogram.models import InstagramAccount, MediaAsset, Post, Template, WebhookEndpoint

Owned = TypeVar("Owned", InstagramAccount, MediaAsset, Post, Template, WebhookEndpoint)


def get_owned(session: Session, model: type[Owned], *, owner_id: int, row_id: int) -> Owned | None:
    """The row with this id if it belongs to ``owner_id``; None otherwise, whether it exists or not."""
    statement: SelectOfScalar[Owned] = _owned_row(model)
    return session.exec(statement, params={"row_id": row_id, "owner_id": owner_id}).first()


@functools.cache
def _owned_row(model: type[Any]) -> SelectOfScalar[Any]:
    # Built once per model: most requests run it, and building a statement costs more than SQLite running it.
    return select(model).where(
        col(model.id) == bindparam("row_id"), col(model.owner_id) == bindparam("owner_id")
    )
