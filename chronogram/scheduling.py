"""Starting a post's workflow: one function, so the API, the command line and the tests start it the same way.

By the workflow's registered name: the core imports no workflow code (the layers are checked in CI).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from chronogram.contracts import (
    ACCOUNT_ID,
    ACCOUNT_TOKENS_WORKFLOW,
    POST_STATUS,
    POST_TYPE,
    PUBLISH_AT,
    SCHEDULED_POST_WORKFLOW,
    SERIES_WORKFLOW,
    TASK_QUEUE,
    USER_ID,
    USERNAME,
    AccountSignal,
    AccountTokensInput,
    AccountTokensResult,
    ScheduledPostInput,
    ScheduledPostResult,
    SeriesChanged,
    SeriesInput,
    SeriesResult,
    SeriesSignal,
    TokenReplaced,
    account_tokens_workflow_id,
    post_workflow_id,
    series_workflow_id,
)
from chronogram.enums import PostStatus, PostType


def post_summary(post_type: PostType, username: str, post_id: int) -> str:
    """What an operator reads in the Web UI's workflow list, e.g. "CAROUSEL to @shop (post 42)". Fixed at the
    start, so it holds nothing that changes: the time is in the PublishAt search attribute and the workflow's
    current details, which a reschedule or publish-now keeps true."""
    return f"{post_type.value} to @{username} (post {post_id})"


async def start_post_workflow(
    client: Client,
    *,
    post_id: int,
    account_id: int,
    username: str,
    post_type: PostType,
    publish_at: datetime,
    user_id: int | None = None,
    task_queue: str = TASK_QUEUE,
) -> WorkflowHandle[Any, ScheduledPostResult]:
    """Start (or, for a retried request, find) the workflow of one post.

    USE_EXISTING makes a repeated start harmless while the post's workflow runs; ALLOW_DUPLICATE_FAILED_ONLY lets
    a failed post run again, but never a published or cancelled one. The search attributes name the post's
    status, type, account, time, owner (``user_id``, when known) and @username, for operators (docs/operations.md).
    """
    attributes: list[SearchAttributePair[Any]] = [
        SearchAttributePair(POST_STATUS, PostStatus.SCHEDULED.value),
        SearchAttributePair(POST_TYPE, post_type.value),
        SearchAttributePair(ACCOUNT_ID, str(account_id)),
        SearchAttributePair(PUBLISH_AT, publish_at),
        SearchAttributePair(USERNAME, username),
    ]
    if user_id is not None:
        attributes.append(SearchAttributePair(USER_ID, str(user_id)))
    return await client.start_workflow(
        SCHEDULED_POST_WORKFLOW,
        ScheduledPostInput(post_id=post_id, publish_at=publish_at),
        result_type=ScheduledPostResult,
        id=post_workflow_id(post_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        search_attributes=TypedSearchAttributes(attributes),
        static_summary=post_summary(post_type, username, post_id),
    )


async def start_account_tokens_workflow(
    client: Client, *, account_id: int, username: str, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, AccountTokensResult]:
    """Start the account's token workflow, or tell the running one that its token was replaced (signal-with-start:
    one call either way). A workflow that ended (the account was disconnected) may be started again."""
    return await client.start_workflow(
        ACCOUNT_TOKENS_WORKFLOW,
        AccountTokensInput(account_id=account_id),
        result_type=AccountTokensResult,
        id=account_tokens_workflow_id(account_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        start_signal=AccountSignal.TOKEN_REPLACED,
        start_signal_args=[TokenReplaced()],
        search_attributes=TypedSearchAttributes([SearchAttributePair(ACCOUNT_ID, str(account_id))]),
        static_summary=f"access token of @{username}",
    )


async def start_series_workflow(
    client: Client, *, series_id: int, account_id: int, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, SeriesResult]:
    """Start the series' workflow, or tell the running one that the series changed (signal-with-start). A workflow
    that ended (its rule had no occurrence left) starts again: an edit may have given it more."""
    return await client.start_workflow(
        SERIES_WORKFLOW,
        SeriesInput(series_id=series_id),
        result_type=SeriesResult,
        id=series_workflow_id(series_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        start_signal=SeriesSignal.CHANGED,
        start_signal_args=[SeriesChanged()],
        search_attributes=TypedSearchAttributes([SearchAttributePair(ACCOUNT_ID, str(account_id))]),
        static_summary=f"recurring series {series_id}",
    )
