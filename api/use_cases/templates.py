"""Caption templates: create, list, change, delete, and render one with variables (chronogram.caption_templates),
with every Instagram rule the result breaks (chronogram.post_rules)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.crud import templates as crud
from api.errors import ApiError, FieldError, invalid
from api.pagination import decode_template_cursor, encode_template_cursor
from api.schemas.templates import Rendered, TemplateCreate, TemplateOut, TemplatePage, TemplateUpdate
from chronogram.caption_templates import (
    TemplateSyntaxError,
    compile_template,
)
from chronogram.models import Template
from chronogram.post_rules import Violation, text_violations


@dataclass(frozen=True)
class RenderedTemplate:
    text: str
    first_comment: str | None


def variables_of(template: Template) -> list[str]:
    names = compile_template(template.body).variables
    if template.first_comment is not None:
        names += compile_template(template.first_comment).variables
    return list(dict.fromkeys(names))


def missing_variables(template: Template, variables: Mapping[str, str]) -> list[Violation]:
    """One ``template_variable_missing`` (field ``variables.<name>``) per variable used but not given."""
    return [
        Violation(f"variables.{name}", "template_variable_missing", f"the template uses {{{{{name}}}}}")
        for name in variables_of(template)
        if name not in variables
    ]


def render(template: Template, variables: Mapping[str, str]) -> RenderedTemplate:
    """The body and first comment with ``variables``; the 422 naming every variable not given."""
    missing = missing_variables(template, variables)
    if missing:
        raise invalid(missing)
    body = compile_template(template.body).render(variables)
    comment = template.first_comment
    return RenderedTemplate(
        text=body, first_comment=compile_template(comment).render(variables) if comment is not None else None
    )


def _check(body: TemplateCreate | TemplateUpdate) -> None:
    problems: list[Violation] = []
    for field in ("body", "first_comment"):
        text = getattr(body, field)
        if text is not None:
            try:
                compile_template(text)
            except TemplateSyntaxError as error:
                problems.append(Violation(field, "template_syntax_error", str(error)))
    if problems:
        raise invalid(problems)


def _name_taken(name: str | None) -> ApiError:
    return ApiError(409, "template_name_taken", f"you already have a template named {name!r}", field="name")


def _out(template: Template) -> TemplateOut:
    return TemplateOut.from_row(template, variables_of(template))


async def create_template(session: Session, *, owner_id: int, body: TemplateCreate) -> TemplateOut:
    _check(body)
    try:
        row = await run_in_threadpool(
            crud.create_template, session, owner_id=owner_id, values=body.model_dump()
        )
    except crud.TemplateNameTaken:
        raise _name_taken(body.name) from None
    return _out(row)


async def page_of_templates(
    session: Session, *, owner_id: int, limit: int, category: str | None, cursor: str | None
) -> TemplatePage:
    after = decode_template_cursor(cursor) if cursor is not None else None

    def read() -> list[Template]:
        rows = crud.list_templates(
            session, owner_id=owner_id, limit=limit + 1, category=category, after=after
        )
        session.commit()
        return rows

    rows = await run_in_threadpool(read)
    page = rows[:limit]
    return TemplatePage(
        data=[_out(row) for row in page],
        next_cursor=encode_template_cursor(page[-1].id or 0) if len(rows) > limit else None,
    )


def template_out(template: Template) -> TemplateOut:
    return _out(template)


async def update_template(session: Session, *, template: Template, body: TemplateUpdate) -> TemplateOut:
    _check(body)
    values = body.values()
    for required in ("name", "body", "hashtags", "mentions"):
        if required in values and values[required] is None:
            raise ApiError(422, "null_not_allowed", f"{required} cannot be null", field=required)
    try:
        row = await run_in_threadpool(crud.update_template, session, template=template, values=values)
    except crud.TemplateNameTaken:
        raise _name_taken(body.name) from None
    return _out(row)


async def delete_template(session: Session, *, template: Template) -> None:
    await run_in_threadpool(crud.delete_template, session, template=template)


def rendered(template: Template, variables: Mapping[str, str]) -> Rendered:
    """The rendering a client previews: the texts, the suggestions, and every rule they break."""
    result = render(template, variables)
    violations = text_violations(result.text, "text")
    if result.first_comment is not None:
        violations += text_violations(result.first_comment, "first_comment")
    return Rendered(
        text=result.text,
        first_comment=result.first_comment,
        hashtags=list(template.hashtags),
        mentions=list(template.mentions),
        valid=not violations,
        violations=[FieldError(field=v.field, code=v.code, message=v.message) for v in violations],
    )
