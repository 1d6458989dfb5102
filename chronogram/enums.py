"""The values a post's type, status and events can take (which changes of status are legal: chronogram.lifecycle).

Standard library only, unlike chronogram.models which re-exports them: workflow code (which runs in Temporal's
sandbox) and the search attributes in chronogram.contracts need these values without importing SQLAlchemy.
The database enforces the same sets with CHECK constraints (schema.sql).
"""

from __future__ import annotations

from enum import StrEnum


class PostType(StrEnum):
    """Instagram's own media_type names, so a value can be sent to the Graph API as it is."""

    IMAGE = "IMAGE"
    CAROUSEL = "CAROUSEL"
    REELS = "REELS"
    STORIES = "STORIES"


class PostStatus(StrEnum):
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventKind(StrEnum):
    """What a post_events row records. Only a transition carries statuses (a reschedule is one without them);
    an error carries a code or a message."""

    TRANSITION = "transition"
    ATTEMPT = "attempt"
    ERROR = "error"


class NotificationType(StrEnum):
    """The stable types of the events sent to webhooks and by email (chronogram.notifications.events builds their
    payloads). A value never changes: receivers switch on it."""

    POST_SCHEDULED = "post.scheduled"
    POST_RESCHEDULED = "post.rescheduled"
    POST_CANCELLED = "post.cancelled"
    POST_PUBLISHING = "post.publishing"
    POST_PUBLISHED = "post.published"
    POST_FAILED = "post.failed"
    POST_DELAYED = "post.delayed"
    POST_FIRST_COMMENT_FAILED = "post.first_comment_failed"
    ACCOUNT_NEEDS_RECONNECT = "account.needs_reconnect"
    ACCOUNT_TOKEN_REFRESHED = "account.token_refreshed"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_TEST = "webhook.test"


class DeliveryChannel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its first attempt, or between retries
    DELIVERED = "delivered"  # a 2xx answer (webhook), or accepted by the SMTP server (email)
    FAILED = "failed"  # retries exhausted, or the endpoint answered 410 Gone
