"""The email of one event: a subject that says what happened, and a plain-text body with what to do."""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from chronogram.enums import NotificationType
from chronogram.notifications.deliveries import EmailJob

_SUBJECTS = {
    NotificationType.POST_SCHEDULED: "Post {post_id} is scheduled",
    NotificationType.POST_RESCHEDULED: "Post {post_id} was rescheduled",
    NotificationType.POST_CANCELLED: "Post {post_id} was cancelled",
    NotificationType.POST_PUBLISHING: "Post {post_id} is publishing",
    NotificationType.POST_PUBLISHED: "Post {post_id} is live",
    NotificationType.POST_FAILED: "Post {post_id} failed to publish",
    NotificationType.POST_DELAYED: "Post {post_id} is delayed",
    NotificationType.POST_FIRST_COMMENT_FAILED: "The first comment of post {post_id} could not be posted",
    NotificationType.ACCOUNT_NEEDS_RECONNECT: "Instagram account @{username} needs to be reconnected",
    NotificationType.ACCOUNT_TOKEN_REFRESHED: "The access of Instagram account @{username} was renewed",
    NotificationType.WEBHOOK_DISABLED: "A webhook was disabled",
    NotificationType.WEBHOOK_TEST: "Test notification",
}


def render_email(job: EmailJob, *, sender: str) -> EmailMessage:
    data: dict[str, Any] = dict(job.payload.get("data") or {})  # type: ignore[call-overload]
    subject = "[Chronogram] " + _SUBJECTS[job.event_type].format(
        post_id=data.get("post_id", "?"), username=data.get("username", "?")
    )
    lines = [subject.removeprefix("[Chronogram] ") + "."]
    error = data.get("error")
    if isinstance(error, dict):
        lines += ["", f"Error: {error.get('code') or 'unknown'}: {error.get('message') or ''}"]
        lines += ["", f"What to do: {error.get('what_to_do')}"]
    if data.get("permalink"):
        lines += ["", f"On Instagram: {data['permalink']}"]
    if data.get("reason"):
        lines += ["", f"Why: {data['reason']}"]
    lines += ["", "The event, as webhooks receive it:", json.dumps(job.payload, indent=2, ensure_ascii=False)]
    lines += ["", "You receive this because of your notification settings (GET /v1/notification-settings)."]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = job.to
    message["Subject"] = subject
    # The event id in a header too: a mail filter or a support request can name the event.
    message["X-Chronogram-Event-Id"] = job.event_id
    message["Message-ID"] = make_msgid(idstring=job.event_id, domain="chronogram")
    message.set_content("\n".join(lines))
    return message
