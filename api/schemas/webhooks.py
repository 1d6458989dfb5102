"""Webhook endpoints, their deliveries, and the email notification settings.

The signing secret is in two responses only, the one that creates the endpoint and the one that rotates its
secret: it is stored encrypted and never listed.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from chronogram.enums import DeliveryStatus, NotificationType
from chronogram.models import DeliveryAttempt, NotificationDelivery, NotificationEvent, WebhookEndpoint
from chronogram.notifications.events import DEFAULT_EMAIL_TYPES, SUBSCRIBABLE_TYPES
from chronogram.notifications.url_policy import MAX_URL_CHARS

MAX_DESCRIPTION_CHARS = 500


def _printable(text: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise PydanticCustomError(
            "control_characters", "may not contain control characters such as a tab or a new line"
        )
    return text


def _subscribable(types: list[NotificationType]) -> list[NotificationType]:
    if NotificationType.WEBHOOK_TEST in types:
        raise PydanticCustomError(
            "not_subscribable", "webhook.test is sent on request only (POST /v1/webhooks/{id}/test)"
        )
    return sorted(set(types), key=list(NotificationType).index)


WebhookUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=MAX_URL_CHARS)]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION_CHARS),
    AfterValidator(_printable),
]
EventTypes = Annotated[
    list[NotificationType], Field(min_length=1, max_length=20), AfterValidator(_subscribable)
]

_TYPES_DOC = ", ".join(f"`{t.value}`" for t in SUBSCRIBABLE_TYPES)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/hooks/chronogram",
                    "event_types": ["post.published", "post.failed"],
                    "description": "Slack relay",
                }
            ]
        },
    )

    url: WebhookUrl = Field(
        description="Where events are POSTed: an https URL whose host resolves to public addresses"
    )
    event_types: EventTypes = Field(
        default_factory=lambda: list(SUBSCRIBABLE_TYPES),
        description=f"The event types to receive (default: all). One or more of {_TYPES_DOC}",
    )
    description: Description | None = Field(default=None, description="What it is for")
    enabled: bool = Field(default=True, description="False: events are kept for it, but not sent")


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": True}]})

    url: WebhookUrl | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = Field(
        default=None,
        description="true re-enables an endpoint disabled by hand or by the system (410 Gone, failing for "
        "days): its pending deliveries are sent again",
    )


class WebhookOut(BaseModel):
    id: int
    url: str
    event_types: list[NotificationType]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why the system disabled it (it answered 410 Gone, or kept failing for the whole retry "
        "window); null otherwise"
    )
    previous_secret_expires_at: datetime | None = Field(
        description="Until when deliveries are also signed with the secret before the last rotation"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: WebhookEndpoint) -> WebhookOut:
        assert row.id is not None
        return cls(
            id=row.id,
            url=row.url,
            event_types=[NotificationType(t) for t in row.event_types],
            description=row.description,
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            previous_secret_expires_at=row.previous_secret_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_...`, Standard Webhooks format). Shown only now: it is stored "
        "encrypted and never shown again (rotate it to get a new one). Verify each delivery with it, e.g. "
        "`standardwebhooks.Webhook(secret).verify(body, headers)`."
    )


class SecretRotated(BaseModel):
    secret: str = Field(description="The new signing secret, shown only now")
    previous_secret_expires_at: datetime = Field(
        description="Until then, deliveries carry a signature made with the old secret as well"
    )


class WebhookList(BaseModel):
    data: list[WebhookOut]


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None = Field(description="The HTTP status answered; null when none came")
    latency_ms: int | None
    error: str | None
    next_retry_at: datetime | None = Field(description="When the next attempt is due; null when none follows")

    @classmethod
    def from_row(cls, row: DeliveryAttempt) -> AttemptOut:
        return cls(
            attempted_at=row.attempted_at,
            status_code=row.status_code,
            latency_ms=row.latency_ms,
            error=row.error,
            next_retry_at=row.next_retry_at,
        )


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="The event's id: the `webhook-id` header, the same on every attempt")
    event_type: NotificationType
    status: DeliveryStatus
    created_at: datetime
    next_retry_at: datetime | None
    attempts: list[AttemptOut] = Field(description="Every attempt, oldest first")

    @classmethod
    def from_rows(
        cls, delivery: NotificationDelivery, event: NotificationEvent, attempts: list[DeliveryAttempt]
    ) -> DeliveryOut:
        assert delivery.id is not None
        return cls(
            id=delivery.id,
            event_id=event.event_id,
            event_type=event.type,
            status=delivery.status,
            created_at=delivery.created_at,
            next_retry_at=delivery.next_retry_at,
            attempts=[AttemptOut.from_row(a) for a in attempts],
        )


class DeliveryList(BaseModel):
    data: list[DeliveryOut] = Field(description="Newest first")


class NotificationSettings(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email_event_types": ["post.failed", "post.published"]}]},
    )

    email_event_types: Annotated[
        list[NotificationType], Field(max_length=20), AfterValidator(_subscribable)
    ] = Field(
        description="The event types you are emailed about, at your account's address; [] for none. Default: "
        + ", ".join(f"`{t.value}`" for t in DEFAULT_EMAIL_TYPES)
    )
