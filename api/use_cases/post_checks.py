"""What the post rules (``chronogram.post_rules``) say about a request: every violation at once, as one 422.

Blocking (database reads): called in the thread pool.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from api.crud import posts as crud
from api.crud.owned import get_owned
from api.errors import account_needs_reconnect, invalid
from api.schemas.posts import PostCreate, PostUpdate, media_facts
from chronogram.accounts import status_of
from chronogram.enums import AccountStatus
from chronogram.models import InstagramAccount, Post
from chronogram.post_rules import Violation, post_violations, publish_at_violation
from chronogram.settings import Settings


def checked_new_post(
    session: Session, body: PostCreate, *, owner_id: int, settings: Settings, now: datetime
) -> crud.NewPost:
    """The post to record for ``body``; raises the 422 with every violation if the rules refuse it."""
    violations: list[Violation] = []
    account = get_owned(session, InstagramAccount, owner_id=owner_id, row_id=body.account_id)
    if account is None:
        violations.append(Violation("account_id", "unknown_account", f"account {body.account_id} not found"))
    assets = crud.owned_media(session, owner_id=owner_id, media_ids=body.media_ids)
    for index, media_id in enumerate(body.media_ids):
        if media_id not in assets:
            violations.append(
                Violation(f"media_ids[{index}]", "unknown_media", f"media {media_id} not found")
            )
    if len(assets) == len(set(body.media_ids)):
        facts = [media_facts(assets[media_id]) for media_id in body.media_ids]
        violations += post_violations(body.rule_content(), facts)
    publish_at = body.publish_at or now
    problem = publish_at_problem(publish_at, settings=settings, now=now)
    if problem is not None:
        violations.append(problem)
    if violations:
        raise invalid(violations)
    assert account is not None
    refuse_if_needs_reconnect(account, settings=settings, now=now)
    return crud.NewPost(
        owner_id=owner_id,
        account_id=body.account_id,
        account_username=account.username,
        post_type=body.type,
        media_ids=body.media_ids,
        # Within the tolerance, a moment ago means now: the workflow would publish at once either way.
        publish_at=max(publish_at, now),
        max_lateness_seconds=body.max_lateness_seconds,
        **body.stored_content(),
    )


def refuse_if_needs_reconnect(account: InstagramAccount, *, settings: Settings, now: datetime) -> None:
    """409 ``account_needs_reconnect``: a post on it could not publish until the account is connected again."""
    view = status_of(account, now=now, lead=settings.token_refresh_lead)
    if view.status is AccountStatus.NEEDS_RECONNECT:
        assert account.id is not None
        raise account_needs_reconnect(account.id, view.reason, view.detail)


def check_update(session: Session, post: Post, body: PostUpdate, settings: Settings) -> None:
    """Raises the 422 with every violation if the post, with the update applied, breaks a rule."""
    assert post.id is not None
    violations: list[Violation] = []
    if body.content_fields():
        media = crud.media_of(session, post_ids=[post.id])[post.id]
        assets = crud.owned_media(
            session, owner_id=post.owner_id, media_ids=[item.media_id for item in media]
        )
        facts = [media_facts(assets[item.media_id]) for item in media]
        violations += post_violations(body.content_over(post, media), facts)
    if body.publish_at is not None:
        problem = publish_at_problem(body.publish_at, settings=settings, now=datetime.now(UTC))
        if problem is not None:
            violations.append(problem)
    if violations:
        raise invalid(violations)


def publish_at_problem(publish_at: datetime, *, settings: Settings, now: datetime) -> Violation | None:
    """The publish time rule, with this deployment's horizon and tolerance for a time just past."""
    return publish_at_violation(
        publish_at,
        now=now,
        horizon=timedelta(days=settings.api_max_schedule_horizon_days),
        past_tolerance=timedelta(seconds=settings.api_publish_at_past_tolerance_seconds),
    )
