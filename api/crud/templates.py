"""Caption templates: owner-filtered reads and writes, and the use a new post makes of one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chronogram.models import Post, Template


class TemplateNameTaken(Exception):
    """Another template of the same owner has this name."""


class TemplateGone(Exception):
    """The template was deleted meanwhile."""


def _now() -> datetime:
    return datetime.now(UTC)


def create_template(session: Session, *, owner_id: int, values: dict[str, Any]) -> Template:
    template = Template(owner_id=owner_id, **values)
    session.add(template)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise TemplateNameTaken() from None
    return template


def list_templates(
    session: Session, *, owner_id: int, limit: int, category: str | None, after: int | None
) -> list[Template]:
    statement = select(Template).where(Template.owner_id == owner_id)
    if category is not None:
        statement = statement.where(Template.category == category)
    if after is not None:
        statement = statement.where(col(Template.id) > after)
    return list(session.exec(statement.order_by(col(Template.id)).limit(limit)).all())


def update_template(session: Session, *, template: Template, values: dict[str, Any]) -> Template:
    for name, value in values.items():
        setattr(template, name, value)
    template.updated_at = _now()
    session.add(template)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise TemplateNameTaken() from None
    return template


def delete_template(session: Session, *, template: Template) -> None:
    """Delete it; the posts made from it keep their caption and lose the reference (posts.template_id is not a
    foreign key, see chronogram.models.Post)."""
    session.execute(
        update(Post)
        .where(col(Post.owner_id) == template.owner_id, col(Post.template_id) == template.id)
        .values(template_id=None)
    )
    session.delete(template)
    session.commit()


def record_use(session: Session, *, owner_id: int, template_id: int, at: datetime) -> None:
    """A post was made from the template, in the caller's transaction; TemplateGone if it was deleted since."""
    used = session.execute(
        update(Template)
        .where(col(Template.id) == template_id, col(Template.owner_id) == owner_id)
        .values(use_count=Template.use_count + 1, last_used_at=at)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise TemplateGone(template_id)
