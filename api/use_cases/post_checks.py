"""What the post rules (``chronogram.post_rules``) say about a request: every violation at once, as one 422.

Blocking (database reads): called in the thread pool.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from api.crud import posts as crud
from api.crud.owned import get_owned
from api.errors import account_needs_reconnect, invalid
from api.schemas.posts import PostCreate, PostUpdate, StoredContent, media_facts
from api.use_cases import templates
from chronogram.accounts import status_of
from chronogram.enums import AccountStatus
from chronogram.models import InstagramAccount, Post, Template
from chronogram.post_rules import PostContent, Violation, post_violations, publish_at_violation
from chronogram.settings import Settings

# What a draft may still lack: it is checked against them when it is scheduled.
_DRAFT_MAY_LACK = frozenset({"media_count", "publish_at_in_past", "publish_at_too_far"})


def checked_new_post(
    session: Session, body: PostCreate, *, owner_id: int, settings: Settings, now: datetime
) -> crud.NewPost:
    """The post to record for ``body``; raises the 422 with every violation if the rules refuse it. A draft may
    lack what can still change before it is scheduled (``_DRAFT_MAY_LACK``)."""
    violations: list[Violation] = []
    account = get_owned(session, InstagramAccount, owner_id=owner_id, row_id=body.account_id)
    if account is None:
        violations.append(Violation("account_id", "unknown_account", f"account {body.account_id} not found"))
    content = body.stored_content()
    template_violations = _render_template(session, body, owner_id, content)
    violations += template_violations
    assets = crud.owned_media(session, owner_id=owner_id, media_ids=body.media_ids)
    for index, media_id in enumerate(body.media_ids):
        if media_id not in assets:
            violations.append(
                Violation(f"media_ids[{index}]", "unknown_media", f"media {media_id} not found")
            )
    if len(assets) == len(set(body.media_ids)) and not template_violations:
        facts = [media_facts(assets[media_id]) for media_id in body.media_ids]
        violations += post_violations(PostContent(post_type=body.type, **content), facts)
    publish_at = body.publish_at or now
    problem = publish_at_problem(publish_at, settings=settings, now=now)
    if problem is not None:
        violations.append(problem)
    if body.draft:
        violations = [v for v in violations if v.code not in _DRAFT_MAY_LACK]
    if violations:
        raise invalid(violations)
    assert account is not None
    if not body.draft:
        refuse_if_needs_reconnect(account, settings=settings, now=now)
    return crud.NewPost(
        owner_id=owner_id,
        account_id=body.account_id,
        account_username=account.username,
        post_type=body.type,
        media_ids=body.media_ids,
        # Within the tolerance, a moment ago means now: the workflow would publish at once either way.
        publish_at=publish_at if body.draft else max(publish_at, now),
        max_lateness_seconds=body.max_lateness_seconds,
        template_id=body.template_id,
        draft=body.draft,
        **content,
    )


def _render_template(
    session: Session, body: PostCreate, owner_id: int, content: StoredContent
) -> list[Violation]:
    """A post made from a template gets its caption, and its first comment unless it gives one, rendered into
    ``content``; the violations that prevent it."""
    if body.template_id is None:
        if body.variables is not None:
            return [Violation("variables", "variables_without_template", "variables go with template_id")]
        return []
    if body.caption is not None:
        return [
            Violation("template_id", "caption_and_template", "give either caption or template_id, not both")
        ]
    template = get_owned(session, Template, owner_id=owner_id, row_id=body.template_id)
    if template is None:
        return [Violation("template_id", "unknown_template", f"template {body.template_id} not found")]
    variables = body.variables or {}
    missing = templates.missing_variables(template, variables)
    if missing:
        return missing
    rendered = templates.render(template, variables)
    content["caption"] = rendered.text
    if body.first_comment is None:
        content["first_comment"] = rendered.first_comment
    return []


def refuse_if_needs_reconnect(account: InstagramAccount, *, settings: Settings, now: datetime) -> None:
    """409 ``account_needs_reconnect``: a post on it could not publish until the account is connected again."""
    view = status_of(account, now=now, lead=settings.token_refresh_lead)
    if view.status is AccountStatus.NEEDS_RECONNECT:
        assert account.id is not None
        raise account_needs_reconnect(account.id, view.reason, view.detail)


def check_update(
    session: Session, post: Post, body: PostUpdate, settings: Settings, *, draft: bool = False
) -> None:
    """Raises the 422 with every violation if the post, with the update applied, breaks a rule (a draft's: but
    those of ``_DRAFT_MAY_LACK``)."""
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
    if draft:
        violations = [v for v in violations if v.code not in _DRAFT_MAY_LACK]
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
