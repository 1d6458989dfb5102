"""Signing secrets and signatures per the Standard Webhooks specification, made with its reference library, so
that receivers verify with off-the-shelf code (``standardwebhooks.Webhook(secret).verify(body, headers)``)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from pydantic import SecretStr
from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> SecretStr:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64, the specification's format."""
    return SecretStr(SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii"))


def signed_headers(
    *, event_id: str, timestamp: datetime, body: str, secrets_in_use: Sequence[SecretStr]
) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers of one attempt. Several secrets
    (the current one, and the previous one during a rotation's grace period) give one signature each,
    space-separated: a receiver holding either secret verifies the message."""
    if not secrets_in_use:
        raise ValueError("a message needs at least one secret to be signed")
    signatures = [
        Webhook(secret.get_secret_value()).sign(msg_id=event_id, timestamp=timestamp, data=body)
        for secret in secrets_in_use
    ]
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
