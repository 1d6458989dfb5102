"""A user's webhook endpoints, their deliveries, and their email notification settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlmodel import Session, col, select

from chronogram.crypto import TokenCipher
from chronogram.enums import DeliveryChannel, NotificationType
from chronogram.models import (
    DeliveryAttempt,
    NotificationDelivery,
    NotificationEvent,
    NotificationPreference,
    WebhookEndpoint,
)
from chronogram.notifications import events, outbox
from chronogram.notifications.signing import new_secret


def list_endpoints(session: Session, *, owner_id: int) -> list[WebhookEndpoint]:
    return list(
        session.exec(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.owner_id == owner_id)
            .order_by(col(WebhookEndpoint.id))
        ).all()
    )


def create_endpoint(
    session: Session,
    *,
    owner_id: int,
    url: str,
    event_types: Sequence[NotificationType],
    description: str | None,
    enabled: bool,
    cipher: TokenCipher,
) -> tuple[WebhookEndpoint, SecretStr]:
    secret = new_secret()
    row = WebhookEndpoint(
        owner_id=owner_id,
        url=url,
        event_types=[t.value for t in event_types],
        description=description,
        enabled=enabled,
        secret_ciphertext=cipher.encrypt(secret),
    )
    session.add(row)
    session.commit()
    return row, secret


def update_endpoint(session: Session, row: WebhookEndpoint, changes: dict[str, Any]) -> WebhookEndpoint:
    for name, value in changes.items():
        if name == "event_types":
            value = [NotificationType(t).value for t in value]
        setattr(row, name, value)
    if changes.get("enabled") is True:
        row.disabled_reason = None
    row.updated_at = datetime.now(UTC)
    session.add(row)
    session.commit()
    return row


def delete_endpoint(session: Session, row: WebhookEndpoint) -> None:
    session.delete(row)
    session.commit()


def rotate_secret(
    session: Session, row: WebhookEndpoint, *, cipher: TokenCipher, grace: timedelta
) -> tuple[WebhookEndpoint, SecretStr]:
    """A new secret; the current one keeps signing (beside it) for ``grace``. A rotation during a grace period
    retires the older secret at once: two secrets at most."""
    secret = new_secret()
    now = datetime.now(UTC)
    row.previous_secret_ciphertext = row.secret_ciphertext
    row.previous_secret_expires_at = now + grace
    row.secret_ciphertext = cipher.encrypt(secret)
    row.updated_at = now
    session.add(row)
    session.commit()
    return row, secret


DeliveryRows = tuple[NotificationDelivery, NotificationEvent, list[DeliveryAttempt]]


def list_deliveries(
    session: Session, *, endpoint_id: int, limit: int, before: int | None
) -> list[DeliveryRows]:
    query = (
        select(NotificationDelivery, NotificationEvent)
        .join(NotificationEvent, col(NotificationEvent.id) == col(NotificationDelivery.event_id))
        .where(NotificationDelivery.endpoint_id == endpoint_id)
    )
    if before is not None:
        query = query.where(col(NotificationDelivery.id) < before)
    pairs = session.exec(query.order_by(col(NotificationDelivery.id).desc()).limit(limit)).all()
    ids = [delivery.id for delivery, _ in pairs]
    attempts: dict[int, list[DeliveryAttempt]] = {}
    if ids:
        for attempt in session.exec(
            select(DeliveryAttempt)
            .where(col(DeliveryAttempt.delivery_id).in_(ids))
            .order_by(col(DeliveryAttempt.id))
        ).all():
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return [(delivery, event, attempts.get(delivery.id or 0, [])) for delivery, event in pairs]


def get_delivery(session: Session, *, endpoint_id: int, delivery_id: int) -> DeliveryRows | None:
    found = session.exec(
        select(NotificationDelivery, NotificationEvent)
        .join(NotificationEvent, col(NotificationEvent.id) == col(NotificationDelivery.event_id))
        .where(NotificationDelivery.id == delivery_id, NotificationDelivery.endpoint_id == endpoint_id)
    ).first()
    if found is None:
        return None
    delivery, event = found
    attempts = list(
        session.exec(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(col(DeliveryAttempt.id))
        ).all()
    )
    return delivery, event, attempts


def redeliver(session: Session, *, endpoint_id: int, event_row_id: int) -> NotificationDelivery:
    """A new delivery of the same event (the same ``webhook-id``), queued behind the endpoint's pending ones."""
    delivery = NotificationDelivery(
        event_id=event_row_id, channel=DeliveryChannel.WEBHOOK, endpoint_id=endpoint_id
    )
    session.add(delivery)
    session.commit()
    return delivery


def create_test_delivery(
    session: Session, endpoint: WebhookEndpoint
) -> tuple[NotificationDelivery, NotificationEvent]:
    """A webhook.test event for this endpoint alone (the dispatcher leaves it alone), and its delivery."""
    assert endpoint.id is not None
    event_row_id = outbox.emit(
        session.connection(),
        owner_id=endpoint.owner_id,
        type=NotificationType.WEBHOOK_TEST,
        data=events.test_data(endpoint_id=endpoint.id),
        dispatched=True,
    )
    delivery = NotificationDelivery(
        event_id=event_row_id, channel=DeliveryChannel.WEBHOOK, endpoint_id=endpoint.id
    )
    session.add(delivery)
    session.commit()
    event = session.get(NotificationEvent, event_row_id)
    assert event is not None
    return delivery, event


def email_types(session: Session, *, user_id: int) -> list[NotificationType]:
    row = session.get(NotificationPreference, user_id)
    if row is None:
        return list(events.DEFAULT_EMAIL_TYPES)
    return [NotificationType(t) for t in row.email_event_types]


def set_email_types(
    session: Session, *, user_id: int, types: Sequence[NotificationType]
) -> list[NotificationType]:
    row = session.get(NotificationPreference, user_id) or NotificationPreference(user_id=user_id)
    row.email_event_types = [t.value for t in types]
    row.updated_at = datetime.now(UTC)
    session.add(row)
    session.commit()
    return [NotificationType(t) for t in row.email_event_types]
