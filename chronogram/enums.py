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
