"""/v1/webhooks: the calling user's webhook endpoints, their delivery log, tests and redeliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import CurrentUser, OwnedWebhookDep, ServicesDep, SessionDep
from api.openapi import problems
from api.schemas.common import MAX_ID
from api.schemas.webhooks import (
    DeliveryList,
    DeliveryOut,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookUpdate,
)
from api.use_cases import webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=problems(401))

_NOT_FOUND = (
    "No such webhook, or it belongs to another user",
    {"code": "webhook_not_found", "detail": "webhook 7 not found"},
)
_DELIVERY_NOT_FOUND = (
    "No such webhook or delivery, or they belong to another user",
    {"code": "delivery_not_found", "detail": "delivery 31 not found"},
)
_URL_REFUSED = (
    "The URL may not receive webhooks (`webhook_url_invalid`, `webhook_url_not_https`, `webhook_url_forbidden`, "
    "`webhook_url_unresolvable`) or another field is invalid",
    {
        "code": "webhook_url_forbidden",
        "detail": "url: 10.0.0.5 resolves to 10.0.0.5, a private, loopback or link-local address: webhooks are "
        "only sent to public addresses",
        "field": "url",
    },
)
_DISABLED = (
    "The webhook is disabled",
    {"code": "webhook_disabled", "detail": "webhook 7 is disabled: enable it first"},
)

_SIGNING = (
    "Each delivery is a POST of the event's JSON with the Standard Webhooks headers `webhook-id` (the event id, "
    "the same on every retry: drop duplicates by it), `webhook-timestamp` and `webhook-signature` "
    "(HMAC-SHA256, `v1,<base64>`; two signatures, space-separated, during a secret rotation's grace period)."
)


@router.get("", response_model=WebhookList, summary="List your webhooks")
async def list_webhooks(user: CurrentUser, session: SessionDep) -> WebhookList:
    return await webhooks.list_webhooks(session, user_id=user.user_id)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    summary="Create a webhook",
    description="Events of the chosen types are POSTed to `url`, signed with the secret in `secret`, **shown "
    "only in this response**. The URL must be https, and its host must resolve to public addresses (checked "
    "now and before every delivery). "
    + _SIGNING
    + " A delivery that fails is retried with exponential backoff "
    "for about three days; an endpoint that answers 410 Gone, or keeps failing for that long, is disabled and "
    "you are told (event `webhook.disabled`, and email).",
    responses=problems(400, 415, 422, examples={422: _URL_REFUSED}),
)
async def create_webhook(
    body: WebhookCreate, user: CurrentUser, services: ServicesDep, session: SessionDep, response: Response
) -> WebhookCreated:
    response.headers["Cache-Control"] = "no-store"
    return await webhooks.create_webhook(services, session, user_id=user.user_id, body=body)


@router.get(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="Get a webhook",
    responses=problems(404, examples={404: _NOT_FOUND}),
)
async def get_webhook(endpoint: OwnedWebhookDep) -> WebhookOut:
    return WebhookOut.from_row(endpoint)


@router.patch(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="Change a webhook",
    description="Only the fields sent change. `enabled: true` re-enables an endpoint (also one the system "
    "disabled) and sends its pending deliveries.",
    responses=problems(400, 404, 415, 422, examples={404: _NOT_FOUND, 422: _URL_REFUSED}),
)
async def update_webhook(
    body: WebhookUpdate, endpoint: OwnedWebhookDep, services: ServicesDep, session: SessionDep
) -> WebhookOut:
    return await webhooks.update_webhook(services, session, endpoint, body)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook",
    description="Nothing more is sent to it, pending deliveries included; its delivery log goes with it.",
    responses=problems(404, examples={404: _NOT_FOUND}),
)
async def delete_webhook(endpoint: OwnedWebhookDep, session: SessionDep) -> Response:
    await webhooks.delete_webhook(session, endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=SecretRotated,
    summary="Rotate the signing secret",
    description="Returns a new secret, **shown only in this response**. Until `previous_secret_expires_at` (24 h "
    "by default, setting `CHRONOGRAM_WEBHOOK_SECRET_GRACE_SECONDS`) each delivery carries two signatures, one per "
    "secret, so that the receiver can switch over without losing a message.",
    responses=problems(404, examples={404: _NOT_FOUND}),
)
async def rotate_secret(
    endpoint: OwnedWebhookDep, services: ServicesDep, session: SessionDep, response: Response
) -> SecretRotated:
    response.headers["Cache-Control"] = "no-store"
    return await webhooks.rotate_secret(services, session, endpoint)


@router.post(
    "/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    summary="Send a test event",
    description="Queues a `webhook.test` event for this endpoint alone; its delivery shows in the log.",
    responses=problems(404, 409, examples={404: _NOT_FOUND, 409: _DISABLED}),
)
async def send_test(endpoint: OwnedWebhookDep, services: ServicesDep, session: SessionDep) -> DeliveryOut:
    return await webhooks.send_test(services, session, endpoint)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryList,
    summary="The webhook's delivery log",
    description="Deliveries, newest first, each with every attempt: its time, the status answered, latency, "
    "error, and when the next attempt is due. Page back with `before` (the last id of a page).",
    responses=problems(404, 422, examples={404: _NOT_FOUND}),
)
async def list_deliveries(
    endpoint: OwnedWebhookDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Deliveries older than this id")] = None,
) -> DeliveryList:
    return await webhooks.list_deliveries(session, endpoint, limit=limit, before=before)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    summary="Send an event again",
    description="Queues a new delivery of the same event, with the same `webhook-id`.",
    responses=problems(404, 409, examples={404: _DELIVERY_NOT_FOUND, 409: _DISABLED}),
)
async def redeliver(
    endpoint: OwnedWebhookDep,
    delivery_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    services: ServicesDep,
    session: SessionDep,
) -> DeliveryOut:
    return await webhooks.redeliver(services, session, endpoint, delivery_id)
