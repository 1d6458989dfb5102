"""Webhook endpoints of the calling user: URLs checked against the URL policy, secrets shown once, and the
endpoint's delivery workflow woken when there is something new to send (test, redelivery, re-enabling). A wake-up
that Temporal refuses is not an error: the worker's sweep starts the workflow of every endpoint with pending
deliveries."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError

from api.crud import webhooks as crud
from api.deps import AppServices
from api.errors import ApiError, not_found
from api.schemas.webhooks import (
    DeliveryList,
    DeliveryOut,
    NotificationSettings,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookUpdate,
)
from chronogram.models import WebhookEndpoint
from chronogram.notifications.dispatch import retry_schedule, wake_endpoint
from chronogram.notifications.url_policy import UrlPolicy, UrlRefused

log = logging.getLogger("chronogram.api")


async def _check_url(services: AppServices, url: str) -> None:
    try:
        await UrlPolicy.from_settings(services.settings).check(url)
    except UrlRefused as refused:
        raise ApiError(422, refused.code, f"url: {refused}", field="url") from None


async def _wake(services: AppServices, endpoint_id: int) -> None:
    try:
        await wake_endpoint(services.temporal, endpoint_id, retry_schedule(services.settings))
    except RPCError as error:
        log.warning("could not wake webhook %s (the sweep will): %s", endpoint_id, error.status.name)


async def list_webhooks(session: Session, *, user_id: int) -> WebhookList:
    rows = await run_in_threadpool(crud.list_endpoints, session, owner_id=user_id)
    return WebhookList(data=[WebhookOut.from_row(row) for row in rows])


async def create_webhook(
    services: AppServices, session: Session, *, user_id: int, body: WebhookCreate
) -> WebhookCreated:
    await _check_url(services, body.url)
    row, secret = await run_in_threadpool(
        crud.create_endpoint,
        session,
        owner_id=user_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description or None,
        enabled=body.enabled,
        cipher=services.cipher,
    )
    return WebhookCreated(**WebhookOut.from_row(row).model_dump(), secret=secret.get_secret_value())


async def update_webhook(
    services: AppServices, session: Session, endpoint: WebhookEndpoint, body: WebhookUpdate
) -> WebhookOut:
    changes = body.model_dump(exclude_unset=True)
    for required in ("url", "event_types", "enabled"):
        if required in changes and changes[required] is None:
            raise ApiError(422, "validation_error", f"{required}: may not be null", field=required)
    if "url" in changes:
        await _check_url(services, changes["url"])
    if "description" in changes:
        changes["description"] = changes["description"] or None
    row = await run_in_threadpool(crud.update_endpoint, session, endpoint, changes)
    if changes.get("enabled") is True and row.id is not None:
        await _wake(services, row.id)
    return WebhookOut.from_row(row)


async def delete_webhook(session: Session, endpoint: WebhookEndpoint) -> None:
    await run_in_threadpool(crud.delete_endpoint, session, endpoint)


async def rotate_secret(services: AppServices, session: Session, endpoint: WebhookEndpoint) -> SecretRotated:
    grace = timedelta(seconds=services.settings.webhook_secret_grace_seconds)
    row, secret = await run_in_threadpool(
        crud.rotate_secret, session, endpoint, cipher=services.cipher, grace=grace
    )
    assert row.previous_secret_expires_at is not None
    return SecretRotated(
        secret=secret.get_secret_value(), previous_secret_expires_at=row.previous_secret_expires_at
    )


async def send_test(services: AppServices, session: Session, endpoint: WebhookEndpoint) -> DeliveryOut:
    if not endpoint.enabled:
        raise ApiError(409, "webhook_disabled", f"webhook {endpoint.id} is disabled: enable it first")
    delivery, event = await run_in_threadpool(crud.create_test_delivery, session, endpoint)
    assert endpoint.id is not None
    await _wake(services, endpoint.id)
    return DeliveryOut.from_rows(delivery, event, [])


async def list_deliveries(
    session: Session, endpoint: WebhookEndpoint, *, limit: int, before: int | None
) -> DeliveryList:
    assert endpoint.id is not None
    rows = await run_in_threadpool(
        crud.list_deliveries, session, endpoint_id=endpoint.id, limit=limit, before=before
    )
    return DeliveryList(data=[DeliveryOut.from_rows(*row) for row in rows])


async def redeliver(
    services: AppServices, session: Session, endpoint: WebhookEndpoint, delivery_id: int
) -> DeliveryOut:
    assert endpoint.id is not None
    found = await run_in_threadpool(
        crud.get_delivery, session, endpoint_id=endpoint.id, delivery_id=delivery_id
    )
    if found is None:
        raise not_found("delivery", delivery_id)
    if not endpoint.enabled:
        raise ApiError(409, "webhook_disabled", f"webhook {endpoint.id} is disabled: enable it first")
    _, event, _ = found
    assert event.id is not None
    delivery = await run_in_threadpool(
        crud.redeliver, session, endpoint_id=endpoint.id, event_row_id=event.id
    )
    await _wake(services, endpoint.id)
    return DeliveryOut.from_rows(delivery, event, [])


async def get_notification_settings(session: Session, *, user_id: int) -> NotificationSettings:
    types = await run_in_threadpool(crud.email_types, session, user_id=user_id)
    return NotificationSettings(email_event_types=types)


async def set_notification_settings(
    session: Session, *, user_id: int, body: NotificationSettings
) -> NotificationSettings:
    types = await run_in_threadpool(
        crud.set_email_types, session, user_id=user_id, types=body.email_event_types
    )
    return NotificationSettings(email_event_types=types)
