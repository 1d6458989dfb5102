"""/v1/notification-settings: which events the calling user is emailed about."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, SessionDep
from api.openapi import problems
from api.schemas.webhooks import NotificationSettings
from api.use_cases import webhooks

router = APIRouter(prefix="/v1/notification-settings", tags=["webhooks"], responses=problems(401))


@router.get(
    "",
    response_model=NotificationSettings,
    summary="Your email notification settings",
    description="The event types you are emailed about at your account's address; failures by default.",
)
async def get_settings(user: CurrentUser, session: SessionDep) -> NotificationSettings:
    return await webhooks.get_notification_settings(session, user_id=user.user_id)


@router.put(
    "",
    response_model=NotificationSettings,
    summary="Choose what you are emailed about",
    description="Replaces the list; `[]` stops email. Sent only when the server has an SMTP server configured.",
    responses=problems(400, 415, 422),
)
async def put_settings(
    body: NotificationSettings, user: CurrentUser, session: SessionDep
) -> NotificationSettings:
    return await webhooks.set_notification_settings(session, user_id=user.user_id, body=body)
