"""Loading one row of the calling user."""

from __future__ import annotations

from typing import TypeVar

from sqlmodel import Session, select

from chronogram.models import InstagramAccount, MediaAsset, Post, WebhookEndpoint

Owned = TypeVar("Owned", InstagramAccount, MediaAsset, Post, WebhookEndpoint)


def get_owned(session: Session, model: type[Owned], *, owner_id: int, row_id: int) -> Owned | None:
    """The row with this id if it belongs to ``owner_id``; None otherwise, whether it exists or not."""
    return session.exec(select(model).where(model.id == row_id, model.owner_id == owner_id)).first()
