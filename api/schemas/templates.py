"""Caption templates as a client sends and gets them (the renderer: chronogram.caption_templates)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.errors import FieldError
from chronogram.caption_templates import MAX_VARIABLE_NAME_CHARS
from chronogram.models import Template
from chronogram.post_rules import MAX_CAPTION_CHARS, MAX_HASHTAGS, MAX_MENTIONS

MAX_TEMPLATE_BODY_CHARS = 10000
MAX_VARIABLES = 100

TemplateName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
Category = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
TemplateBody = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEMPLATE_BODY_CHARS,
        description="The caption, with `{{name}}` placeholders: names of ASCII letters, digits and `_`; nothing "
        "else between the braces (no dots, filters or expressions); `\\{{` for a literal `{{`. Text and "
        "whitespace are kept exactly",
    ),
]
Hashtag = Annotated[str, Field(pattern=r"^#\w{1,100}$", examples=["#bakery"])]
Mention = Annotated[str, Field(pattern=r"^@[A-Za-z0-9._]{1,30}$", examples=["@our.baker"])]
VariableName = Annotated[
    str, StringConstraints(pattern=rf"^[A-Za-z_][A-Za-z0-9_]{{0,{MAX_VARIABLE_NAME_CHARS - 1}}}$")
]
VariableValue = Annotated[str, Field(max_length=MAX_CAPTION_CHARS)]
Variables = Annotated[
    dict[VariableName, VariableValue],
    Field(
        max_length=MAX_VARIABLES,
        description="The value of each `{{name}}` of the template, inserted as given (never rendered again). "
        "Every variable the template uses must be given (else 422 `template_variable_missing`); others are "
        "ignored",
        examples=[{"bread": "rye", "time": "7"}],
    ),
]

_EXAMPLE: dict[str, Any] = {
    "name": "Bread of the day",
    "category": "daily",
    "body": "Fresh {{bread}}, out of the oven at {{time}} #bakery",
    "hashtags": ["#sourdough", "#breakfast"],
    "mentions": ["@our.baker"],
    "first_comment": "Baked by @our.baker",
}


class TemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    name: TemplateName = Field(description="Unique among your templates; 1 to 100 characters")
    category: Category | None = None
    body: TemplateBody
    hashtags: list[Hashtag] = Field(
        default_factory=list,
        max_length=MAX_HASHTAGS,
        description="Suggested hashtags, shown with a rendering",
    )
    mentions: list[Mention] = Field(
        default_factory=list,
        max_length=MAX_MENTIONS,
        description="Suggested @-mentions, shown with a rendering",
    )
    first_comment: TemplateBody | None = Field(
        default=None,
        description="The first comment of a post made from the template, unless the post gives its own; may "
        "use the same variables",
    )


class TemplateUpdate(BaseModel):
    """Only the fields sent change; ``null`` clears ``category`` or ``first_comment``."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"body": "Fresh {{bread}} today #bakery"}]}
    )

    name: TemplateName | None = None
    category: Category | None = None
    body: TemplateBody | None = None
    hashtags: list[Hashtag] | None = Field(default=None, max_length=MAX_HASHTAGS)
    mentions: list[Mention] | None = Field(default=None, max_length=MAX_MENTIONS)
    first_comment: TemplateBody | None = None

    def values(self) -> dict[str, Any]:
        """The columns this update sets; a required field sent as null is left out (the schema refuses it)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class TemplateOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    **_EXAMPLE,
                    "variables": ["bread", "time"],
                    "use_count": 12,
                    "last_used_at": "2026-05-01T09:00:00Z",
                    "created_at": "2026-04-01T09:00:00Z",
                    "updated_at": "2026-04-01T09:00:00Z",
                }
            ]
        }
    )

    id: int
    name: str
    category: str | None
    body: str
    hashtags: list[str]
    mentions: list[str]
    first_comment: str | None
    variables: list[str] = Field(description="The variables the body and first comment use, in order")
    use_count: int = Field(description="Posts created from this template (drafts included)")
    last_used_at: datetime | None = Field(description="When the latest of them was created")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Template, variables: list[str]) -> TemplateOut:
        assert row.id is not None
        return cls(
            id=row.id,
            name=row.name,
            category=row.category,
            body=row.body,
            hashtags=list(row.hashtags),
            mentions=list(row.mentions),
            first_comment=row.first_comment,
            variables=variables,
            use_count=row.use_count,
            last_used_at=row.last_used_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class TemplatePage(BaseModel):
    data: list[TemplateOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class RenderRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"variables": {"bread": "rye", "time": "7"}}]}
    )

    variables: Variables = Field(default_factory=dict)


class Rendered(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "Fresh rye, out of the oven at 7 #bakery",
                    "first_comment": "Baked by @our.baker",
                    "hashtags": ["#sourdough", "#breakfast"],
                    "mentions": ["@our.baker"],
                    "valid": True,
                    "violations": [],
                }
            ]
        }
    )

    text: str = Field(description="The caption: the body with every variable replaced")
    first_comment: str | None = Field(description="The template's first comment, rendered the same way")
    hashtags: list[str] = Field(description="The template's suggested hashtags (not added to the text)")
    mentions: list[str] = Field(description="The template's suggested mentions (not added to the text)")
    valid: bool = Field(description="Whether Instagram would take the text and first comment as they are")
    violations: list[FieldError] = Field(
        description="Every Instagram rule the text (`field`: `text`) or the first comment breaks: "
        "`text_too_long` (2,200 characters), `too_many_hashtags` (30), `too_many_mentions` (20)"
    )
