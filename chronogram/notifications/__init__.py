"""Notifications: the events of a post's and an account's life, sent to webhooks (signed, per the Standard
Webhooks specification) and by email. The events are written to an outbox in the transaction of the change they
report (``outbox``), then delivered by Temporal workflows (workflows/webhook_delivery.py)."""
