"""What the activity classes share: reads of a post and its media, and the errors of a post's life as the
ApplicationErrors a workflow branches on."""

from __future__ import annotations

from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError

from chronogram.contracts import ErrorType
from chronogram.lifecycle import IllegalTransition, PostMissing
from chronogram.models import MediaAsset, Post, PostMedia


def post_not_found(post_id: int) -> ApplicationError:
    # A post deleted under a running workflow: retrying cannot bring it back.
    return ApplicationError(
        f"post {post_id} does not exist", type=ErrorType.POST_NOT_FOUND, non_retryable=True
    )


def refused_transition(error: PostMissing | IllegalTransition) -> ApplicationError:
    """A transition the lifecycle refused: final, as no retry changes the post's status back."""
    if isinstance(error, PostMissing):
        return post_not_found(error.post_id)
    return ApplicationError(str(error), type=ErrorType.ILLEGAL_TRANSITION, non_retryable=True)


def load_post(session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise post_not_found(post_id)
    return post


def post_with_media(session: Session, post_id: int) -> tuple[Post, list[tuple[PostMedia, MediaAsset]]]:
    return load_post(session, post_id), post_media(session, post_id)


def post_media(session: Session, post_id: int) -> list[tuple[PostMedia, MediaAsset]]:
    rows = session.exec(
        select(PostMedia, MediaAsset)
        .join(MediaAsset, MediaAsset.id == PostMedia.media_id)  # type: ignore[arg-type]
        .where(PostMedia.post_id == post_id)
        .order_by(PostMedia.position)  # type: ignore[arg-type]
    ).all()
    return list(rows)
