"""POST /v1/posts/batch: up to 100 posts in one request, each with its own result."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.errors import Problem
from api.schemas.post_responses import PostOut

MAX_BATCH_ITEMS = 100
MAX_STAGGER_MINUTES = 7 * 24 * 60


class Stagger(BaseModel):
    """Spread the batch in time: item ``i`` (its position in ``items``, from 0) publishes at ``start_at`` plus
    ``i`` times ``every_minutes``."""

    model_config = ConfigDict(extra="forbid")

    start_at: AwareDatetime = Field(description="The first item's time (with a time zone)")
    every_minutes: int = Field(
        ge=0, le=MAX_STAGGER_MINUTES, description="Minutes between two items; at most a week"
    )


BatchItem = Annotated[
    dict[str, Any],
    Field(
        description="A post, exactly as the body of `POST /v1/posts` (caption or template_id + variables, "
        "draft, ...), plus an optional `idempotency_key` (1 to 255 characters): the item's own "
        "Idempotency-Key, so that a retried batch creates each post once",
        examples=[{"account_id": 1, "type": "IMAGE", "media_ids": [7], "caption": "Monday #bakery"}],
    ),
]


class PostBatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "account_id": 1,
                            "type": "IMAGE",
                            "media_ids": [7],
                            "caption": "Rye today #bakery",
                            "idempotency_key": "week-48-rye",
                        },
                        {
                            "account_id": 1,
                            "type": "IMAGE",
                            "media_ids": [8],
                            "template_id": 3,
                            "variables": {"bread": "spelt", "time": "7"},
                            "idempotency_key": "week-48-spelt",
                        },
                    ],
                    "stagger": {"start_at": "2026-12-01T09:00:00+01:00", "every_minutes": 90},
                }
            ]
        },
    )

    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)
    stagger: Stagger | None = Field(
        default=None,
        description="Give every item its time: then no item may give `publish_at` (that item answers 422 "
        "`publish_at_and_stagger`)",
    )


class BatchResult(BaseModel):
    index: int = Field(description="The item's position in `items`, from 0")
    status: int = Field(
        description="The item's own HTTP status: 201 created, 200 replayed (its idempotency_key was used by an "
        "earlier identical item), else the status of `problem`"
    )
    post: PostOut | None = Field(description="The created (or replayed) post")
    problem: Problem | None = Field(description="Why the item was refused, as `POST /v1/posts` would answer")


class BatchOut(BaseModel):
    created: int = Field(description="Items that created a post (or replayed one)")
    failed: int = Field(description="Items refused")
    results: list[BatchResult] = Field(description="One per item, in the order of `items`")
