"""POST /v1/posts/batch: each item created as POST /v1/posts creates a post (``post_creation.create_post``), one
after the other, each under its own idempotency key; an item refused does not stop the others."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from api.deps import AppServices
from api.errors import ApiError, invalid_input, problem_of
from api.schemas.batch import BatchOut, BatchResult, PostBatch, Stagger
from api.schemas.post_responses import PostOut
from api.schemas.posts import PostCreate
from api.use_cases import post_creation

_KEY = "idempotency_key"


async def create_batch(
    services: AppServices, session: Session, batch: PostBatch, *, owner_id: int, instance: str
) -> BatchOut:
    results = []
    for index, item in enumerate(batch.items):
        try:
            body, key = _item(index, item, batch.stagger)
            created = await post_creation.create_post(
                services, session, body, owner_id=owner_id, idempotency_key=key
            )
        except ApiError as refused:
            problem = problem_of(refused, instance)
            results.append(BatchResult(index=index, status=refused.status, post=None, problem=problem))
            continue
        results.append(
            BatchResult(
                index=index,
                status=200 if created.replayed else 201,
                post=PostOut.from_row(created.post, created.media),
                problem=None,
            )
        )
    failed = sum(1 for result in results if result.problem is not None)
    return BatchOut(created=len(results) - failed, failed=failed, results=results)


def _item(index: int, item: dict[str, Any], stagger: Stagger | None) -> tuple[PostCreate, str | None]:
    """The item as a post request and its idempotency key; the 422 of POST /v1/posts if it is not one."""
    fields = dict(item)
    key = fields.pop(_KEY, None)
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 255):
        raise ApiError(422, "validation_error", "idempotency_key: 1 to 255 characters", field=_KEY)
    if stagger is not None:
        if fields.get("publish_at") is not None:
            raise ApiError(
                422,
                "publish_at_and_stagger",
                "the batch's stagger gives every item its time: leave publish_at out",
                field="publish_at",
            )
        fields["publish_at"] = stagger.start_at + index * timedelta(minutes=stagger.every_minutes)
    try:
        return PostCreate.model_validate(fields), key
    except ValidationError as error:
        raise invalid_input(error.errors()) from None
