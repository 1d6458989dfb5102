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
    # Saved, not scheduled: no workflow until it is scheduled (chronogram.lifecycle.schedule_draft).
    DRAFT = "draft"


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


class DelayReason(StrEnum):
    """Why a delayed post waits (the ``delay.reason`` of a post.delayed event)."""

    SERVICE_UNAVAILABLE = "service_unavailable"  # Instagram (or the media storage) kept failing: it retries
    ACCOUNT_NEEDS_RECONNECT = "account_needs_reconnect"  # Instagram refused the account's token: reconnect it


class DeliveryChannel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its first attempt, or between retries
    DELIVERED = "delivered"  # a 2xx answer (webhook), or accepted by the SMTP server (email)
    FAILED = "failed"  # retries exhausted, or the endpoint answered 410 Gone


class AccountStatus(StrEnum):
    """Whether an account can publish. ``active`` and ``needs_reconnect`` are stored; ``expiring`` is derived (an
    active account whose token is due for a refresh that has not succeeded yet, chronogram.accounts)."""

    ACTIVE = "active"
    EXPIRING = "expiring"
    NEEDS_RECONNECT = "needs_reconnect"


class AccountStatusReason(StrEnum):
    """Why an account is not plainly active."""

    # The token's time is up (Graph 190/463), or it was found expired.
    TOKEN_EXPIRED = "token_expired"
    # The token was invalidated: revoked, password changed, app removed, unparsable (Graph 190, 102, 104).
    TOKEN_INVALID = "token_invalid"
    # The token is valid but a permission the account needs was withdrawn (Graph 10, 200-299, 3; HTTP 403).
    PERMISSION_MISSING = "permission_missing"
    # Expiring: the token expires soon and its refresh has not succeeded yet (or cannot be done).
    EXPIRY_NEAR = "expiry_near"


class AccountEventKind(StrEnum):
    """What an account_events row records."""

    CONNECTED = "connected"
    RECONNECTED = "reconnected"
    TOKEN_EXCHANGED = "token_exchanged"
    TOKEN_REFRESHED = "token_refreshed"
    NEEDS_RECONNECT = "needs_reconnect"


class MetricsCheckpoint(StrEnum):
    """When a published post's insights are read (workflows/post_metrics.py): its age at each reading."""

    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"

    @property
    def seconds(self) -> int:
        return {"1h": 3600, "24h": 86400, "7d": 7 * 86400}[self.value]


class SeriesStatus(StrEnum):
    """A recurring series' life: active (its workflow creates its occurrences) until cancelled."""

    ACTIVE = "active"
    CANCELLED = "cancelled"
