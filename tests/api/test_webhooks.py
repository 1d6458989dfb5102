"""Webhooks on the real stack: a receiver in the test process (tests/support/receiver.py) verifies every delivery
with the standardwebhooks library and gets exactly the events of what happened to the posts, in order, even when
it was down for a while; the delivery log, tests, redeliveries, secret rotation, the URL policy, email, and
isolation between users."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from standardwebhooks import Webhook

from api.deps import AppServices
from chronogram.contracts import webhook_endpoint_workflow_id
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import (
    ApiUser,
    assert_problem,
    at,
    connect,
    schedule_ok,
    settled_deliveries,
    wait_for,
)
from tests.support.graph_sandbox import refuse_next_container
from tests.support.receiver import WebhookReceiver, webhook_receiver
from tests.support.smtp import MailSink

POST_TYPES = [
    "post.scheduled",
    "post.rescheduled",
    "post.cancelled",
    "post.publishing",
    "post.published",
    "post.failed",
    "post.first_comment_failed",
]


def deliveries_counted(outcome: str, channel: str = "webhook") -> float:
    """chronogram_notification_deliveries_total as the worker (in this process) counts it."""
    labels = {"channel": channel, "outcome": outcome}
    return REGISTRY.get_sample_value("chronogram_notification_deliveries_total", labels) or 0.0


def latencies_observed(channel: str = "webhook") -> float:
    return (
        REGISTRY.get_sample_value("chronogram_notification_latency_seconds_count", {"channel": channel})
        or 0.0
    )


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as running:
        yield running


async def subscribe(
    user: ApiUser, receiver: WebhookReceiver, types: list[str] | None = None
) -> dict[str, Any]:
    response = await user.client.post(
        "/v1/webhooks", json={"url": receiver.url, "event_types": types or POST_TYPES, "description": "test"}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["secret"].startswith("whsec_")
    receiver.secrets.append(body["secret"])
    return body


async def test_a_publish_a_reschedule_a_cancel_and_a_failure_send_exactly_their_events(
    alice: ApiUser, ready: dict[str, Any], receiver: WebhookReceiver, sandbox: SandboxAdmin
) -> None:
    await subscribe(alice, receiver)
    account, media = ready["account"], ready["media"]

    published = await schedule_ok(
        alice.client, account["id"], [media], publish_at=at(3600), first_comment="hi"
    )
    moved = await alice.client.patch(f"/v1/posts/{published['id']}", json={"publish_at": at(2)})
    assert moved.status_code == 200, moved.text
    cancelled = await schedule_ok(alice.client, account["id"], [media], publish_at=at(3600))
    assert (
        await alice.client.post(f"/v1/posts/{cancelled['id']}/cancel", json={"reason": "typo"})
    ).status_code == 202

    # Instagram refusing the request fails the post for good (on an account of its own).
    other = await connect(alice.client, sandbox)
    token = await sandbox.issue_token(other["ig_user_id"])
    await alice.client.post("/v1/accounts", json={"ig_user_id": other["ig_user_id"], "access_token": token})
    await refuse_next_container(sandbox, other["ig_user_id"])
    failed = await schedule_ok(alice.client, other["id"], [media], publish_at=at(0))

    await wait_for(alice.client, published["id"], "published", within=30)
    await wait_for(alice.client, failed["id"], "failed", within=30)
    await wait_for(alice.client, cancelled["id"], "cancelled")
    expected = {
        published["id"]: ["post.scheduled", "post.rescheduled", "post.publishing", "post.published"],
        cancelled["id"]: ["post.scheduled", "post.cancelled"],
        failed["id"]: ["post.scheduled", "post.publishing", "post.failed"],
    }
    await receiver.wait_for(lambda r: all(r.types(post) == types for post, types in expected.items()))
    await asyncio.sleep(1.0)  # nothing more comes
    assert all(receiver.types(post) == types for post, types in expected.items()), receiver.types()

    assert all(r.verified for r in receiver.received)
    assert len({r.webhook_id for r in receiver.received}) == len(receiver.received)
    for post_id in expected:
        events = [r.payload for r in receiver.accepted() if r.payload["data"]["post_id"] == post_id]
        assert [e["data"]["sequence"] for e in events] == list(range(1, len(events) + 1))
        assert all(e["version"] == 1 and e["id"].startswith("evt_") for e in events)
    live = [r.payload for r in receiver.accepted() if r.payload["type"] == "post.published"][0]
    assert live["id"] == next(
        r.webhook_id for r in receiver.accepted() if r.payload["type"] == "post.published"
    )
    data = live["data"]
    assert data["status"] == "published" and data["previous_status"] == "publishing"
    assert data["permalink"] is None or data["permalink"].startswith("https://")
    assert data["ig_media_id"] and data["lag_seconds"] is not None and data["account_id"] == account["id"]
    failure = [r.payload for r in receiver.accepted() if r.payload["type"] == "post.failed"][0]["data"]
    assert failure["error"]["code"] == "GraphInvalidRequestError"
    assert "edit it (caption, tags, media)" in failure["error"]["what_to_do"]
    # No token anywhere in what was sent.
    for r in receiver.received:
        assert token not in r.body.decode() and "access_token" not in r.body.decode()


async def test_a_receiver_down_for_a_while_gets_everything_after_it_returns(
    alice: ApiUser, ready: dict[str, Any], receiver: WebhookReceiver
) -> None:
    webhook = await subscribe(alice, receiver, ["post.scheduled", "post.cancelled"])
    failed_before, delivered_before = deliveries_counted("failed_attempt"), deliveries_counted("delivered")
    latencies_before = latencies_observed()
    await receiver.stop()  # connection refused, then 503s
    posts = [await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]]) for _ in range(3)]
    for post in posts[:2]:
        assert (await alice.client.post(f"/v1/posts/{post['id']}/cancel")).status_code == 202
    await asyncio.sleep(2.0)
    log = (await alice.client.get(f"/v1/webhooks/{webhook['id']}/deliveries")).json()["data"]
    assert log and all(d["status"] == "pending" for d in log)
    first = min(log, key=lambda d: d["id"])
    assert first["attempts"] and first["attempts"][0]["status_code"] is None
    assert first["attempts"][0]["error"] and first["attempts"][-1]["next_retry_at"] is not None

    receiver.status = 503  # back, but failing for a moment
    await receiver.start()
    await receiver.wait_for(lambda r: len(r.received) >= 1)
    receiver.status = 200
    expected = {p["id"]: ["post.scheduled", "post.cancelled"] for p in posts[:2]} | {
        posts[2]["id"]: ["post.scheduled"]
    }
    await receiver.wait_for(lambda r: all(r.types(post) == t for post, t in expected.items()), within=30)
    # Unaltered: every body verifies, and one event's attempts all carry the same id and body.
    by_id: dict[str, set[bytes]] = {}
    for r in receiver.received:
        by_id.setdefault(r.webhook_id, set()).add(r.body)
    assert all(len(bodies) == 1 for bodies in by_id.values())
    log = await settled_deliveries(alice.client, webhook["id"], count=5)
    statuses = [a["status_code"] for d in log for a in d["attempts"]]
    assert 503 in statuses and 200 in statuses
    assert all(d["attempts"][-1]["latency_ms"] is not None for d in log)
    # Counted (at least: the worker is shared with the other tests): every failed attempt, and the five
    # deliveries with their latency from the event.
    assert deliveries_counted("failed_attempt") - failed_before >= len(statuses) - 5 > 0
    assert deliveries_counted("delivered") - delivered_before >= 5
    assert latencies_observed() - latencies_before >= 5


async def test_a_receiver_that_keeps_failing_is_retried_a_few_at_a_time_and_gets_the_rest_when_back(
    alice: ApiUser, ready: dict[str, Any], receiver: WebhookReceiver, services: AppServices
) -> None:
    """Three deliveries retried at once (the suite's webhook_retried_at_most): a receiver found dead gets no more
    first attempts than that, and the events of the other posts wait, pending and never attempted, instead of
    each becoming a retried activity of the endpoint's workflow."""
    at_most = 3
    webhook = await subscribe(alice, receiver, ["post.scheduled"])
    await receiver.stop()
    posts = await asyncio.gather(
        *(schedule_ok(alice.client, ready["account"]["id"], [ready["media"]]) for _ in range(10))
    )
    log: list[dict[str, Any]] = []
    handle = services.temporal.get_workflow_handle(webhook_endpoint_workflow_id(webhook["id"]))
    for _ in range(200):  # until every event is in the log and some have been attempted
        log = (await alice.client.get(f"/v1/webhooks/{webhook['id']}/deliveries")).json()["data"]
        if len(log) == len(posts) and sum(1 for d in log if d["attempts"]) >= at_most:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # several retries of each, at the suite's 0.2-1 s
    log = (await alice.client.get(f"/v1/webhooks/{webhook['id']}/deliveries")).json()["data"]
    assert len(log) == len(posts) and all(d["status"] == "pending" for d in log), log
    attempted = [d for d in log if d["attempts"]]
    assert len(attempted) == at_most, [len(d["attempts"]) for d in log]
    assert any(len(d["attempts"]) > 1 for d in attempted)  # retried, on their schedule
    description = await handle.describe()
    pending = description.raw_description.pending_activities
    retried = [a for a in pending if a.activity_type.name == "deliver_webhook"]
    kinds = [a.activity_type.name for a in pending]
    assert len(retried) == at_most and len(pending) <= at_most + 1, kinds  # and a pump, at most

    await receiver.start()
    await receiver.wait_for(lambda r: all(r.types(p["id"]) == ["post.scheduled"] for p in posts), within=30)
    log = await settled_deliveries(alice.client, webhook["id"], count=len(posts))
    assert sum(len(d["attempts"]) for d in log) > len(posts)  # the retried ones' failures are in the log


async def test_test_ping_rotation_and_redelivery(alice: ApiUser, receiver: WebhookReceiver) -> None:
    webhook = await subscribe(alice, receiver)
    old_secret = receiver.secrets[0]
    ping = await alice.client.post(f"/v1/webhooks/{webhook['id']}/test")
    assert ping.status_code == 202, ping.text
    await receiver.wait_for(lambda r: r.types() == ["webhook.test"])

    rotated = await alice.client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    receiver.secrets[:] = [new_secret]
    assert (await alice.client.post(f"/v1/webhooks/{webhook['id']}/test")).status_code == 202
    await receiver.wait_for(lambda r: r.types() == ["webhook.test", "webhook.test"])
    during_grace = receiver.accepted()[-1]
    assert len(during_grace.headers["webhook-signature"].split(" ")) == 2
    Webhook(old_secret).verify(during_grace.body, during_grace.headers)  # the old secret still verifies
    listed = (await alice.client.get(f"/v1/webhooks/{webhook['id']}")).json()
    assert "secret" not in listed and listed["previous_secret_expires_at"]

    log = (await alice.client.get(f"/v1/webhooks/{webhook['id']}/deliveries")).json()["data"]
    first = log[-1]
    again = await alice.client.post(f"/v1/webhooks/{webhook['id']}/deliveries/{first['id']}/redeliver")
    assert again.status_code == 202, again.text
    await receiver.wait_for(lambda r: len(r.accepted()) == 3)
    assert receiver.accepted()[-1].webhook_id == first["event_id"] == receiver.accepted()[0].webhook_id


async def test_410_gone_disables_the_webhook_and_tells_the_owner_by_email(
    alice: ApiUser, receiver: WebhookReceiver, mail_sink: MailSink, services: AppServices
) -> None:
    webhook = await subscribe(alice, receiver)
    gone_before = deliveries_counted("gone")
    receiver.status = 410
    assert (await alice.client.post(f"/v1/webhooks/{webhook['id']}/test")).status_code == 202
    for _ in range(100):
        body = (await alice.client.get(f"/v1/webhooks/{webhook['id']}")).json()
        if not body["enabled"]:
            break
        await asyncio.sleep(0.1)
    assert body["enabled"] is False and "410" in body["disabled_reason"]
    assert len(receiver.received) == 1  # no retry after 410
    assert deliveries_counted("gone") - gone_before == 1
    email = await _mail_for(services, mail_sink, alice)
    assert "webhook was disabled" in email["Subject"] and email["X-Chronogram-Event-Id"].startswith("evt_")
    assert assert_problem(
        await alice.client.post(f"/v1/webhooks/{webhook['id']}/test"), 409, "webhook_disabled"
    )

    # Enabled again, it works again.
    receiver.status = 200
    enabled = await alice.client.patch(f"/v1/webhooks/{webhook['id']}", json={"enabled": True})
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None
    assert (await alice.client.post(f"/v1/webhooks/{webhook['id']}/test")).status_code == 202
    await receiver.wait_for(lambda r: r.types() == ["webhook.test"])


async def _mail_for(services: AppServices, sink: MailSink, user: ApiUser, within: float = 20.0) -> Any:
    from chronogram.models import User

    def address() -> str:
        from sqlmodel import Session

        with Session(services.engine) as session:
            row = session.get(User, user.user_id)
            assert row is not None
            return row.email

    to = await asyncio.to_thread(address)
    for _ in range(int(within * 10)):
        if sink.to(to):
            return sink.to(to)[-1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no email to {to}")


async def test_failures_are_emailed_by_default_and_the_choice_is_the_users(
    alice: ApiUser, ready: dict[str, Any], sandbox: SandboxAdmin, mail_sink: MailSink, services: AppServices
) -> None:
    settings = await alice.client.get("/v1/notification-settings")
    assert settings.json()["email_event_types"][0] == "post.failed"
    account = ready["account"]
    token = await sandbox.issue_token(account["ig_user_id"])
    await alice.client.post("/v1/accounts", json={"ig_user_id": account["ig_user_id"], "access_token": token})
    # Refused by Instagram: failed at once (a revoked token would make the post wait for a reconnect).
    await sandbox.add_fault(
        "error", endpoint="media_create", ig_user_id=account["ig_user_id"], code=100, http_status=400, count=1
    )
    failed = await schedule_ok(alice.client, account["id"], [ready["media"]], publish_at=at(0))
    email = await _mail_for(services, mail_sink, alice, within=30)
    assert email["Subject"] == f"[Chronogram] Post {failed['id']} failed to publish"
    text = email.get_content()
    assert (
        "GraphInvalidRequestError" in text and "What to do: Instagram refused" in text and token not in text
    )

    changed = await alice.client.put("/v1/notification-settings", json={"email_event_types": []})
    assert changed.status_code == 200 and changed.json() == {"email_event_types": []}
    invalid = await alice.client.put("/v1/notification-settings", json={"email_event_types": ["post.nope"]})
    assert invalid.status_code == 422


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/hook", "webhook_url_not_https"),
        ("https://10.1.2.3/hook", "webhook_url_forbidden"),
        ("https://169.254.169.254/latest/meta-data", "webhook_url_forbidden"),
        ("https://[::ffff:10.0.0.1]/hook", "webhook_url_forbidden"),
        ("https://user:pw@example.com/hook", "webhook_url_invalid"),
        ("ftp://example.com/hook", "webhook_url_invalid"),
        ("https://nonexistent.invalid/hook", "webhook_url_unresolvable"),
    ],
)
async def test_urls_that_may_not_receive_webhooks_are_refused(alice: ApiUser, url: str, code: str) -> None:
    response = await alice.client.post("/v1/webhooks", json={"url": url})
    assert_problem(response, 422, code, field="url")
    assert (await alice.client.get("/v1/webhooks")).json()["data"] == []


async def test_another_users_webhooks_and_deliveries_answer_404(
    alice: ApiUser, bob: ApiUser, receiver: WebhookReceiver
) -> None:
    webhook = await subscribe(alice, receiver)
    assert (await alice.client.post(f"/v1/webhooks/{webhook['id']}/test")).status_code == 202
    await receiver.wait_for(lambda r: len(r.accepted()) == 1)
    delivery = (await alice.client.get(f"/v1/webhooks/{webhook['id']}/deliveries")).json()["data"][0]
    base = f"/v1/webhooks/{webhook['id']}"
    for method, path in [
        ("GET", base),
        ("PATCH", base),
        ("DELETE", base),
        ("POST", f"{base}/rotate-secret"),
        ("POST", f"{base}/test"),
        ("GET", f"{base}/deliveries"),
        ("POST", f"{base}/deliveries/{delivery['id']}/redeliver"),
    ]:
        response = await bob.client.request(method, path, json={} if method == "PATCH" else None)
        assert_problem(response, 404, "webhook_not_found")
    assert (await bob.client.get("/v1/webhooks")).json()["data"] == []
    other = await subscribe(bob, receiver)
    assert_problem(
        await bob.client.post(f"/v1/webhooks/{other['id']}/deliveries/{delivery['id']}/redeliver"),
        404,
        "delivery_not_found",
    )


async def test_no_secret_or_token_in_the_delivery_workflows_history(
    alice: ApiUser, ready: dict[str, Any], receiver: WebhookReceiver, services: AppServices
) -> None:
    webhook = await subscribe(alice, receiver)
    secret = receiver.secrets[0]
    post = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])
    await receiver.wait_for(lambda r: r.types(post["id"]) == ["post.scheduled"])
    handle = services.temporal.get_workflow_handle(webhook_endpoint_workflow_id(webhook["id"]))
    history = json.dumps((await handle.fetch_history()).to_json_dict())
    assert secret not in history and secret.removeprefix("whsec_") not in history
    assert "access_token" not in history


async def test_deleting_a_webhook_stops_its_deliveries(
    alice: ApiUser, ready: dict[str, Any], receiver: WebhookReceiver
) -> None:
    webhook = await subscribe(alice, receiver)
    assert (await alice.client.delete(f"/v1/webhooks/{webhook['id']}")).status_code == 204
    await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])
    await asyncio.sleep(1.0)
    assert receiver.received == []
    assert_problem(await alice.client.get(f"/v1/webhooks/{webhook['id']}"), 404, "webhook_not_found")


def test_payload_times_are_utc() -> None:
    from chronogram.enums import NotificationType
    from chronogram.notifications.events import envelope

    body = envelope(
        event_id="evt_1",
        type=NotificationType.WEBHOOK_TEST,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(0),
        data={},
    )
    assert body["occurred_at"] == "2026-01-01T00:00:00Z"
