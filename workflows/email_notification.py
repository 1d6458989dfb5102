"""One workflow per notification email: sends it over SMTP, retried on the same schedule as webhooks; when the
retries are spent the delivery is marked failed. The email is a row (chronogram.notifications.deliveries): the
input is its id only."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from chronogram.contracts import (
        EMAIL_NOTIFICATION_WORKFLOW,
        DeliveryOutcome,
        DeliveryRef,
        EmailInterface,
        EmailNotificationInput,
        EmailNotificationResult,
        GiveUpInput,
        WebhookDeliveryInterface,
    )
    from workflows.webhook_delivery import delivery_retry


@workflow.defn(name=EMAIL_NOTIFICATION_WORKFLOW)
class EmailNotificationWorkflow:
    @workflow.run
    async def run(self, request: EmailNotificationInput) -> EmailNotificationResult:
        retry = request.retry
        try:
            report = await workflow.execute_activity_method(
                EmailInterface.send_email,
                DeliveryRef(delivery_id=request.delivery_id, retry=retry),
                start_to_close_timeout=timedelta(seconds=retry.request_timeout_seconds + 10),
                schedule_to_close_timeout=timedelta(seconds=retry.window_seconds),
                retry_policy=delivery_retry(retry),
                summary="send email",
            )
        except ActivityError:
            await workflow.execute_activity_method(
                WebhookDeliveryInterface.give_up_delivery,
                GiveUpInput(delivery_id=request.delivery_id),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
                summary="give up",
            )
            return EmailNotificationResult(request.delivery_id, DeliveryOutcome.FAILED)
        return EmailNotificationResult(request.delivery_id, report.outcome)
