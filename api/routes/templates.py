"""/v1/templates: caption templates with {{variables}}, and their rendering."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentUser, OwnedTemplateDep, SessionDep
from api.openapi import problems
from api.schemas.common import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from api.schemas.templates import (
    Category,
    Rendered,
    RenderRequest,
    TemplateCreate,
    TemplateOut,
    TemplatePage,
    TemplateUpdate,
)
from api.use_cases import templates

router = APIRouter(prefix="/v1/templates", tags=["templates"], responses=problems(401))

_NOT_FOUND = (
    "No such template, or it belongs to another user",
    {"code": "template_not_found", "detail": "template 3 not found"},
)
_NAME_TAKEN = (
    "You already have a template with this name",
    {
        "code": "template_name_taken",
        "detail": "you already have a template named 'Bread of the day'",
        "field": "name",
    },
)
_SYNTAX = (
    "Invalid input, e.g. a placeholder that is not a plain variable name (`template_syntax_error`)",
    {
        "code": "template_syntax_error",
        "detail": "body: at character 6: '{{user.name}}' is not a variable: only names of letters, digits and "
        "'_' go between the braces (no dots, filters or expressions)",
        "field": "body",
    },
)
_MISSING = (
    "A variable the template uses was not given (`template_variable_missing`, one entry per variable in `errors`)",
    {
        "code": "template_variable_missing",
        "detail": "variables.bread: the template uses {{bread}}",
        "field": "variables.bread",
    },
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TemplateOut,
    summary="Create a caption template",
    description="`body` (and `first_comment`) may hold `{{name}}` placeholders, filled in when the template is "
    "rendered or a post is made from it. Nothing but a variable name goes between the braces: the template "
    "language has no expressions, filters or attribute access, so rendering can never run code. `\\{{` writes "
    "a literal `{{`. Values are inserted as given, never escaped or rendered again; text and whitespace are "
    "kept exactly.",
    responses=problems(400, 409, 415, 422, examples={409: _NAME_TAKEN, 422: _SYNTAX}),
)
async def create_template(body: TemplateCreate, user: CurrentUser, session: SessionDep) -> TemplateOut:
    return await templates.create_template(session, owner_id=user.user_id, body=body)


@router.get(
    "",
    response_model=TemplatePage,
    summary="List your caption templates",
    description="Oldest first, with cursor pagination; `category` filters by category (exact match).",
    responses=problems(422),
)
async def list_templates(
    user: CurrentUser,
    session: SessionDep,
    category: Annotated[Category | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> TemplatePage:
    return await templates.page_of_templates(
        session, owner_id=user.user_id, limit=limit, category=category, cursor=cursor
    )


@router.get(
    "/{template_id}",
    response_model=TemplateOut,
    summary="A caption template, with its use count and last use",
    responses=problems(404, examples={404: _NOT_FOUND}),
)
async def get_template(template: OwnedTemplateDep) -> TemplateOut:
    return templates.template_out(template)


@router.patch(
    "/{template_id}",
    response_model=TemplateOut,
    summary="Change a caption template",
    description="Only the fields sent change. Posts already made from it keep their caption.",
    responses=problems(400, 404, 409, 415, 422, examples={404: _NOT_FOUND, 409: _NAME_TAKEN, 422: _SYNTAX}),
)
async def update_template(
    body: TemplateUpdate, template: OwnedTemplateDep, session: SessionDep
) -> TemplateOut:
    return await templates.update_template(session, template=template, body=body)


@router.delete(
    "/{template_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a caption template",
    description="Posts made from it keep their caption; their `template_id` becomes null.",
    responses=problems(404, examples={404: _NOT_FOUND}),
)
async def delete_template(template: OwnedTemplateDep, session: SessionDep) -> Response:
    await templates.delete_template(session, template=template)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{template_id}/render",
    response_model=Rendered,
    summary="Render a caption template with variables",
    description="The caption (`text`) and first comment the template makes with these variables, its suggested "
    "hashtags and mentions, and every Instagram rule the texts break (2,200 characters, 30 hashtags, 20 "
    "@-mentions) in `violations`: a rendering that breaks a rule still answers 200, with `valid: false`. A "
    "variable the template uses but that is not given answers 422 `template_variable_missing`, naming each.",
    responses=problems(400, 404, 415, 422, examples={404: _NOT_FOUND, 422: _MISSING}),
)
async def render_template(body: RenderRequest, template: OwnedTemplateDep) -> Rendered:
    return templates.rendered(template, body.variables)
