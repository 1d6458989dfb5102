"""Types and names shared by the API, the worker and the workflows: everything that crosses a Temporal boundary.

Kept light (no I/O, no heavy imports) because workflow code imports it inside the sandbox.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

TASK_QUEUE = "chronogram-posts"

# Custom search attributes operators filter on in the Web UI, e.g.
#   WorkflowType='ScheduledPostWorkflow' AND PostStatus='scheduled' AND AccountId='42'
POST_STATUS = SearchAttributeKey.for_keyword("PostStatus")
POST_TYPE = SearchAttributeKey.for_keyword("PostType")
ACCOUNT_ID = SearchAttributeKey.for_keyword("AccountId")
PUBLISH_AT = SearchAttributeKey.for_datetime("PublishAt")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (POST_STATUS, POST_TYPE, ACCOUNT_ID, PUBLISH_AT)


def post_workflow_id(post_id: int | str) -> str:
    return f"post-{post_id}"
