"""Reads the activity classes share: a post (or a non-retryable PostNotFound) and its media in publishing order."""

from __future__ import annotations

from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError

from chronogram.contracts import POST_NOT_FOUND
from chronogram.models import MediaAsset, Post, PostMedia


def post_not_found(post_id: int) -> ApplicationError:
    # A post deleted under a running workflow: retrying cannot bring it back.
    return ApplicationError(f"post {post_id} does not exist", type=POST_NOT_FOUND, non_retryable=True)


def load_post(session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise post_not_found(post_id)
    return post


def post_media(session: Session, post_id: int) -> list[tuple[PostMedia, MediaAsset]]:
    rows = session.exec(
        select(PostMedia, MediaAsset)
        .join(MediaAsset, MediaAsset.id == PostMedia.media_id)  # type: ignore[arg-type]
        .where(PostMedia.post_id == post_id)
        .order_by(PostMedia.position)  # type: ignore[arg-type]
    ).all()
    return list(rows)
