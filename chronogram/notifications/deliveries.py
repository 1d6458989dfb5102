"""The rows of delivery: the dispatcher's fan-out of outbox events into deliveries (one per subscribed endpoint,
one per email), and what a delivery attempt reads and writes. Blocking (SQLAlchemy): callers run it in a thread.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import SecretStr
from sqlalchemy import Engine, and_, bindparam, insert, select, update

from chronogram.crypto import TokenCipher
from chronogram.enums import DeliveryChannel, DeliveryStatus, NotificationType
from chronogram.models import (
    DeliveryAttempt,
    NotificationDelivery,
    NotificationEvent,
    NotificationPreference,
    User,
    WebhookEndpoint,
    table_of,
)
from chronogram.notifications import events, outbox

_EVENTS = table_of(NotificationEvent)
_DELIVERIES = table_of(NotificationDelivery)
_ATTEMPTS = table_of(DeliveryAttempt)
_ENDPOINTS = table_of(WebhookEndpoint)
_PREFERENCES = table_of(NotificationPreference)
_USERS = table_of(User)


@dataclass
class FanOut:
    """What a fan-out made: the endpoints that have new deliveries, and the new email deliveries."""

    endpoint_ids: set[int] = field(default_factory=set)
    email_delivery_ids: list[int] = field(default_factory=list)
    events: int = 0


def fan_out(engine: Engine, *, email: bool, limit: int = 500) -> FanOut:
    """Make the deliveries of the outbox's undispatched events, oldest first, and mark them dispatched. Each event
    is claimed by a conditional update, so that two dispatchers never deliver one event twice."""
    made = FanOut()
    with engine.begin() as connection:
        rows = connection.execute(
            select(_EVENTS.c.id, _EVENTS.c.owner_id, _EVENTS.c.type)
            .where(_EVENTS.c.dispatched_at.is_(None))
            .order_by(_EVENTS.c.id)
            .limit(limit)
        ).all()
        if not rows:
            return made
        owners = {row.owner_id for row in rows}
        endpoints = connection.execute(
            select(_ENDPOINTS.c.id, _ENDPOINTS.c.owner_id, _ENDPOINTS.c.event_types).where(
                _ENDPOINTS.c.owner_id.in_(owners), _ENDPOINTS.c.enabled.is_(True)
            )
        ).all()
        email_types: dict[int, set[str]] = {}
        if email:
            chosen = dict(
                connection.execute(
                    select(_PREFERENCES.c.user_id, _PREFERENCES.c.email_event_types).where(
                        _PREFERENCES.c.user_id.in_(owners)
                    )
                ).all()
            )
            default = {t.value for t in events.DEFAULT_EMAIL_TYPES}
            email_types = {owner: set(chosen.get(owner, default)) for owner in owners}
        # One conditional update claims the batch: an event another dispatcher claimed first is not returned.
        claimed = set(
            connection.execute(
                update(_EVENTS)
                .where(_EVENTS.c.id.in_([row.id for row in rows]), _EVENTS.c.dispatched_at.is_(None))
                .values(dispatched_at=datetime.now(UTC))
                .returning(_EVENTS.c.id)
            ).scalars()
        )
        webhooks: list[dict[str, object]] = []
        emails: list[dict[str, object]] = []
        for row in rows:
            if row.id not in claimed:
                continue
            made.events += 1
            for endpoint in endpoints:
                if endpoint.owner_id == row.owner_id and str(row.type) in endpoint.event_types:
                    webhooks.append(
                        {"event_id": row.id, "channel": DeliveryChannel.WEBHOOK, "endpoint_id": endpoint.id}
                    )
                    made.endpoint_ids.add(endpoint.id)
            if str(row.type) in email_types.get(row.owner_id, ()):
                emails.append({"event_id": row.id, "channel": DeliveryChannel.EMAIL})
        if webhooks:
            connection.execute(insert(_DELIVERIES), webhooks)
        if emails:
            made.email_delivery_ids = list(
                connection.execute(
                    insert(_DELIVERIES).returning(_DELIVERIES.c.id, sort_by_parameter_order=True), emails
                ).scalars()
            )
    return made


def endpoints_with_pending(engine: Engine) -> list[int]:
    """Enabled endpoints that have deliveries still pending: the sweep wakes their workflows."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(_DELIVERIES.c.endpoint_id)
                .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
                .where(_DELIVERIES.c.status == DeliveryStatus.PENDING, _ENDPOINTS.c.enabled.is_(True))
                .distinct()
            ).scalars()
        )


def pending_emails(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(_DELIVERIES.c.id).where(
                    _DELIVERIES.c.channel == DeliveryChannel.EMAIL,
                    _DELIVERIES.c.status == DeliveryStatus.PENDING,
                )
            ).scalars()
        )


def due_deliveries(engine: Engine, endpoint_id: int, *, limit: int) -> list[tuple[int, int]]:
    """The endpoint's pending deliveries in event order, each with its ordering key: the post's id, or minus the
    delivery's id for an event of no post (it waits for nothing). None if the endpoint is disabled or gone."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_DELIVERIES.c.id, _EVENTS.c.post_id)
            .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
            .join(_EVENTS, _EVENTS.c.id == _DELIVERIES.c.event_id)
            .where(
                _DELIVERIES.c.endpoint_id == endpoint_id,
                _DELIVERIES.c.status == DeliveryStatus.PENDING,
                _ENDPOINTS.c.enabled.is_(True),
            )
            .order_by(_DELIVERIES.c.event_id, _DELIVERIES.c.id)
            .limit(limit)
        ).all()
    return [(row.id, row.post_id if row.post_id is not None else -row.id) for row in rows]


def due_heads(
    engine: Engine, endpoint_id: int, *, busy_keys: Sequence[int], limit: int, read: int = 2000
) -> tuple[list[tuple[int, int]], bool]:
    """What may go out now, in event order: for each ordering key but ``busy_keys``, its oldest pending delivery,
    at most ``limit`` of them; and whether more is due (a key's later delivery, or past the limit)."""
    busy = set(busy_keys)
    heads: list[tuple[int, int]] = []
    taken: set[int] = set()
    rows = due_deliveries(engine, endpoint_id, limit=read)
    more = False
    for delivery_id, key in rows:
        if key in busy:
            continue
        if key in taken or len(heads) >= limit:
            more = True
            continue
        heads.append((delivery_id, key))
        taken.add(key)
    # Rows beyond those read may be due too; not when every row read waits on a retry (that would spin).
    return heads, more or (len(rows) == read and bool(heads))


@dataclass(frozen=True)
class PumpHeads:
    """What a pump may send now (delivery id, ordering key), in event order; and the pending deliveries with an
    attempt behind them that nobody retries (delivery id, ordering key)."""

    heads: list[tuple[int, int]]
    orphans: list[tuple[int, int]]


def pump_heads(
    engine: Engine,
    endpoint_id: int,
    *,
    out_keys: Collection[int],
    retrying_ids: Collection[int],
    limit: int,
    read: int = 2000,
) -> PumpHeads:
    """For each ordering key, its oldest pending delivery, if it never had an attempt (a delivery with one is
    retried by the endpoint's workflow, and holds its post's later ones) and no delivery of its key is out
    (``out_keys``); at most ``limit``. A pending delivery with an attempt behind it that is not among
    ``retrying_ids`` is an orphan: its first attempt was recorded by a pump lost before it could say so."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_DELIVERIES.c.id, _DELIVERIES.c.attempts, _EVENTS.c.post_id)
            .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
            .join(_EVENTS, _EVENTS.c.id == _DELIVERIES.c.event_id)
            .where(
                _DELIVERIES.c.endpoint_id == endpoint_id,
                _DELIVERIES.c.status == DeliveryStatus.PENDING,
                _ENDPOINTS.c.enabled.is_(True),
            )
            .order_by(_DELIVERIES.c.event_id, _DELIVERIES.c.id)
            .limit(read)
        ).all()
    found = PumpHeads(heads=[], orphans=[])
    seen: set[int] = set()
    for row in rows:
        key = row.post_id if row.post_id is not None else -row.id
        if row.attempts > 0 and row.id not in retrying_ids:
            found.orphans.append((row.id, key))
        if key in seen:
            continue
        seen.add(key)
        if row.attempts == 0 and key not in out_keys and len(found.heads) < limit:
            found.heads.append((row.id, key))
    return found


@dataclass(frozen=True)
class WebhookJob:
    """One attempt's material: the body is the stored payload, byte for byte the same on every attempt."""

    delivery_id: int
    endpoint_id: int
    owner_id: int
    url: str
    event_id: str
    occurred_at: datetime
    body: str
    secrets: Sequence[SecretStr]


class DeliveryGone(Exception):
    """The delivery, its endpoint, or the endpoint's enabled state is gone: nothing to send."""


_WEBHOOK_JOB = (
    select(
        _DELIVERIES.c.id.label("delivery_id"),
        _DELIVERIES.c.status,
        _ENDPOINTS.c.id,
        _ENDPOINTS.c.owner_id,
        _ENDPOINTS.c.url,
        _ENDPOINTS.c.enabled,
        _ENDPOINTS.c.secret_ciphertext,
        _ENDPOINTS.c.previous_secret_ciphertext,
        _ENDPOINTS.c.previous_secret_expires_at,
        _EVENTS.c.event_id,
        _EVENTS.c.occurred_at,
        _EVENTS.c.payload,
    )
    .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
    .join(_EVENTS, _EVENTS.c.id == _DELIVERIES.c.event_id)
)


def webhook_job(engine: Engine, delivery_id: int, cipher: TokenCipher) -> WebhookJob:
    job = webhook_jobs(engine, [delivery_id], cipher).get(delivery_id)
    if job is None:
        raise DeliveryGone(f"delivery {delivery_id} has nothing left to send")
    return job


def webhook_jobs(engine: Engine, delivery_ids: Sequence[int], cipher: TokenCipher) -> dict[int, WebhookJob]:
    """The material of several attempts in one read, by delivery id; a delivery with nothing left to send (sent
    already, its endpoint disabled or deleted) is left out."""
    if not delivery_ids:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(_WEBHOOK_JOB.where(_DELIVERIES.c.id.in_(delivery_ids))).all()
    now = datetime.now(UTC)
    decrypted: dict[str, SecretStr] = {}  # a batch is one endpoint's: its secrets are decrypted once

    def decrypt(ciphertext: str) -> SecretStr:
        if ciphertext not in decrypted:
            decrypted[ciphertext] = cipher.decrypt(ciphertext)
        return decrypted[ciphertext]

    jobs = {}
    for row in rows:
        if not row.enabled or row.status != DeliveryStatus.PENDING:
            continue
        secrets = [decrypt(row.secret_ciphertext)]
        expires = row.previous_secret_expires_at
        if row.previous_secret_ciphertext and expires is not None and _aware(expires) > now:
            secrets.append(decrypt(row.previous_secret_ciphertext))
        jobs[row.delivery_id] = WebhookJob(
            delivery_id=row.delivery_id,
            endpoint_id=row.id,
            owner_id=row.owner_id,
            url=row.url,
            event_id=row.event_id,
            occurred_at=_aware(row.occurred_at),
            body=canonical_body(row.payload),
            secrets=secrets,
        )
    return jobs


def canonical_body(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Attempt:
    """One attempt's line in the delivery log, and the delivery's state after it: ``outcome`` PENDING with
    ``next_retry_at`` when another attempt is to come."""

    delivery_id: int
    status_code: int | None
    latency_ms: int | None
    error: str | None
    next_retry_at: datetime | None
    outcome: DeliveryStatus


_UPDATE_AFTER_ATTEMPT = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("b_delivery"), _DELIVERIES.c.status == DeliveryStatus.PENDING)
    .values(
        attempts=_DELIVERIES.c.attempts + 1,
        status=bindparam("b_status"),
        next_retry_at=bindparam("b_next_retry_at"),
        finished_at=bindparam("b_finished_at"),
    )
)


def record_attempt(
    engine: Engine,
    delivery_id: int,
    *,
    status_code: int | None,
    latency_ms: int | None,
    error: str | None,
    next_retry_at: datetime | None,
    outcome: DeliveryStatus,
) -> None:
    record_attempts(
        engine,
        [Attempt(delivery_id, status_code, latency_ms, error, next_retry_at, outcome)],
    )


def record_attempts(engine: Engine, attempts: Sequence[Attempt]) -> None:
    """Several attempts in one transaction (one commit, one wait for SQLite's writer lock)."""
    if not attempts:
        return
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(_ATTEMPTS),
            [
                {
                    "delivery_id": a.delivery_id,
                    "attempted_at": now,
                    "status_code": a.status_code,
                    "latency_ms": a.latency_ms,
                    "error": a.error,
                    "next_retry_at": a.next_retry_at,
                }
                for a in attempts
            ],
        )
        connection.execute(
            _UPDATE_AFTER_ATTEMPT,
            [
                {
                    "b_delivery": a.delivery_id,
                    "b_status": a.outcome,
                    "b_next_retry_at": a.next_retry_at if a.outcome is DeliveryStatus.PENDING else None,
                    "b_finished_at": None if a.outcome is DeliveryStatus.PENDING else now,
                }
                for a in attempts
            ],
        )


def give_up(engine: Engine, delivery_id: int) -> DeliveryChannel | None:
    """The delivery's retries are spent: failed, with no retry to come. Its channel, or None if it was no longer
    pending."""
    with engine.begin() as connection:
        channel = connection.execute(
            update(_DELIVERIES)
            .where(_DELIVERIES.c.id == delivery_id, _DELIVERIES.c.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.FAILED, next_retry_at=None, finished_at=datetime.now(UTC))
            .returning(_DELIVERIES.c.channel)
        ).scalar_one_or_none()
    return DeliveryChannel(channel) if channel is not None else None


def disable_endpoint(engine: Engine, endpoint_id: int, *, reason: str) -> bool:
    """Stop delivering to the endpoint, and tell its owner (a webhook.disabled event, which their other endpoints
    and their email get). False if it was disabled already."""
    with engine.begin() as connection:
        row = connection.execute(
            select(_ENDPOINTS.c.owner_id, _ENDPOINTS.c.url).where(
                _ENDPOINTS.c.id == endpoint_id, _ENDPOINTS.c.enabled.is_(True)
            )
        ).first()
        if row is None:
            return False
        connection.execute(
            update(_ENDPOINTS)
            .where(_ENDPOINTS.c.id == endpoint_id)
            .values(enabled=False, disabled_reason=reason, updated_at=datetime.now(UTC))
        )
        outbox.emit(
            connection,
            owner_id=row.owner_id,
            type=NotificationType.WEBHOOK_DISABLED,
            data=events.webhook_disabled_data(endpoint_id=endpoint_id, url=row.url, reason=reason),
        )
    return True


@dataclass(frozen=True)
class EmailJob:
    delivery_id: int
    to: str
    event_type: NotificationType
    event_id: str
    occurred_at: datetime
    payload: dict[str, object]


def email_job(engine: Engine, delivery_id: int) -> EmailJob:
    with engine.connect() as connection:
        row = connection.execute(
            select(
                _DELIVERIES.c.status,
                _USERS.c.email,
                _EVENTS.c.type,
                _EVENTS.c.event_id,
                _EVENTS.c.occurred_at,
                _EVENTS.c.payload,
            )
            .join(_EVENTS, _EVENTS.c.id == _DELIVERIES.c.event_id)
            .join(_USERS, _USERS.c.id == _EVENTS.c.owner_id)
            .where(
                and_(
                    _DELIVERIES.c.id == delivery_id,
                    _DELIVERIES.c.channel == DeliveryChannel.EMAIL,
                )
            )
        ).first()
    if row is None or row.status != DeliveryStatus.PENDING:
        raise DeliveryGone(f"email delivery {delivery_id} has nothing left to send")
    return EmailJob(
        delivery_id=delivery_id,
        to=row.email,
        event_type=NotificationType(row.type),
        event_id=row.event_id,
        occurred_at=_aware(row.occurred_at),
        payload=dict(row.payload),
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
