"""Workflow definitions; worker.py registers ``WORKFLOWS`` on the posts' task queue and
``NOTIFICATION_WORKFLOWS`` on the notifications' one."""

from workflows.account_tokens import AccountTokensWorkflow
from workflows.email_notification import EmailNotificationWorkflow
from workflows.post_metrics import PostMetricsWorkflow
from workflows.scheduled_post import ScheduledPostWorkflow
from workflows.series import SeriesWorkflow
from workflows.webhook_delivery import WebhookEndpointWorkflow

WORKFLOWS = [ScheduledPostWorkflow, AccountTokensWorkflow, PostMetricsWorkflow, SeriesWorkflow]
NOTIFICATION_WORKFLOWS = [WebhookEndpointWorkflow, EmailNotificationWorkflow]

__all__ = [
    "NOTIFICATION_WORKFLOWS",
    "WORKFLOWS",
    "AccountTokensWorkflow",
    "EmailNotificationWorkflow",
    "PostMetricsWorkflow",
    "ScheduledPostWorkflow",
    "SeriesWorkflow",
    "WebhookEndpointWorkflow",
]
