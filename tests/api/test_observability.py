"""What an operator sees, on the real stack: the counters and histograms of /metrics after posts publish, fail and
are cancelled; one trace from an API request to the Graph API call it led to; log lines that parse as JSON with
their context, and no secret in any of them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.client import Client

from api.deps import AppServices
from api.main import create_app
from chronogram.contracts import ERROR_CODE, USER_ID, USERNAME
from chronogram.observability.logs import install_handler
from chronogram.observability.tracing import configure_tracing
from chronogram.observability.worker_endpoint import PolledQueue, worker_endpoint
from chronogram.settings import LogFormat, Settings
from devstack.processes import free_port
from sandbox.admin_client import SandboxAdmin
from scripts.latest_runs import count, latest_runs
from tests.api.helpers import ApiUser, assert_problem, at, schedule_ok, upload_ok, wait_for
from tests.support.stack import background_worker

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every line logged meanwhile, formatted as production formats them (CHRONOGRAM_LOG_FORMAT=json)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    install_handler(handler, LogFormat.JSON)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _url(span: Any) -> str:
    attributes = span.attributes or {}
    # The httpx instrumentation's old or stable semantic conventions (OTEL_SEMCONV_STABILITY_OPT_IN).
    return str(attributes.get("url.full") or attributes.get("http.url") or "")


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    assert configure_tracing("chronogram-test", SimpleSpanProcessor(exporter)) is not None
    return exporter


async def _connected(alice: ApiUser, sandbox: SandboxAdmin) -> tuple[int, str, str]:
    """A fresh sandbox account connected through the API: its id, its token (to revoke) and its @username."""
    account = await sandbox.create_account(f"obs_{uuid.uuid4().hex[:8]}")
    response = await alice.client.post(
        "/v1/accounts", json={"ig_user_id": account.ig_user_id, "access_token": account.access_token}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], account.access_token, account.username


def _soon(seconds: float = 2.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_metrics_logs_and_trace_of_published_failed_and_cancelled_posts(
    alice: ApiUser,
    anonymous: httpx.AsyncClient,
    sandbox: SandboxAdmin,
    json_lines: io.StringIO,
    spans: InMemorySpanExporter,
    services: AppServices,
) -> None:
    media = await upload_ok(alice.client)
    good_account, good_token, _ = await _connected(alice, sandbox)
    doomed_account, doomed_token, doomed_username = await _connected(alice, sandbox)
    before = await scrape(anonymous)

    published = await schedule_ok(alice.client, good_account, [media], publish_at=_soon())
    # An invalid request fails a post at once (a revoked token would make it wait for a reconnect).
    doomed_ig_user_id = (await alice.client.get(f"/v1/accounts/{doomed_account}")).json()["ig_user_id"]
    await sandbox.add_fault(
        "error", endpoint="media_create", ig_user_id=doomed_ig_user_id, code=100, http_status=400, count=1
    )
    failed = await schedule_ok(alice.client, doomed_account, [media], publish_at=_soon())
    cancelled = await schedule_ok(alice.client, good_account, [media])
    response = await alice.client.post(f"/v1/posts/{cancelled['id']}/cancel", json={"reason": "sold out"})
    assert response.status_code == 202, response.text
    await wait_for(alice.client, cancelled["id"], "cancelled")
    await wait_for(alice.client, published["id"], "published", within=30)
    failure = await wait_for(alice.client, failed["id"], "failed", within=30)
    error_code = failure["error"]["code"]
    assert error_code

    # Search attributes: the owner and the @username from the start, why it failed from the failed run.
    attributes = (
        await services.temporal.get_workflow_handle(f"post-{failed['id']}").describe()
    ).typed_search_attributes
    assert attributes.get(ERROR_CODE) == error_code
    assert attributes.get(USER_ID) == str(alice.user_id)
    assert attributes.get(USERNAME) == doomed_username
    query = f"ErrorCode='{error_code}' AND UserId='{alice.user_id}' AND Username='{doomed_username}'"
    for _ in range(50):  # visibility is eventually consistent
        listed = [execution.id async for execution in services.temporal.list_workflows(query)]
        if listed:
            break
        await asyncio.sleep(0.1)
    assert listed == [f"post-{failed['id']}"]

    # Retried, the post has a new run (scheduled) beside its failed one: Temporal still lists the failed run, the
    # latest-run count (scripts/latest_runs.py, docs/operations.md) does not.
    retried = await alice.client.post(f"/v1/posts/{failed['id']}/retry", json={"publish_at": at(86400)})
    assert retried.status_code in (200, 202), retried.text
    failed_query = f"PostStatus='failed' AND UserId='{alice.user_id}'"
    for _ in range(50):
        runs = [
            execution.id
            async for execution in services.temporal.list_workflows(f"WorkflowId='post-{failed['id']}'")
        ]
        if len(runs) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(runs) == 2
    assert [e.id async for e in services.temporal.list_workflows(failed_query)] == [f"post-{failed['id']}"]
    assert await latest_runs(services.temporal, failed_query, "ErrorCode") == []
    latest = await latest_runs(services.temporal, f"UserId='{alice.user_id}'", "PostStatus")
    assert count(latest)["scheduled"] == 1 and count(latest)["failed"] == 0

    after = await scrape(anonymous)
    # Outcomes, by status and error code.
    assert delta(before, after, "chronogram_post_outcomes_total", status="published", error_code="") == 1
    assert delta(before, after, "chronogram_post_outcomes_total", status="failed", error_code=error_code) == 1
    assert delta(before, after, "chronogram_post_outcomes_total", status="cancelled", error_code="") == 1
    # Transitions, by name and statuses.
    transitions = "chronogram_post_transitions_total"
    assert (
        delta(before, after, transitions, transition="schedule", from_status="none", to_status="scheduled")
        == 3
    )
    assert (
        delta(
            before, after, transitions, transition="publish", from_status="publishing", to_status="published"
        )
        == 1
    )
    assert (
        delta(before, after, transitions, transition="cancel", from_status="scheduled", to_status="cancelled")
        == 1
    )
    # The publish lag: one observation, under the 90 s of a media_publish timeout.
    assert delta(before, after, "chronogram_publish_lag_seconds_count") == 1
    assert 0 <= delta(before, after, "chronogram_publish_lag_seconds_sum") < 90
    # Graph API calls, by operation, outcome and error code, with their latency.
    assert (
        delta(
            before,
            after,
            "chronogram_graph_requests_total",
            operation="media_publish",
            outcome="ok",
            error_code="",
        )
        == 1
    )
    errors = {
        dict(labels)["error_code"]
        for (name, labels), count in after.items()
        if name == "chronogram_graph_requests_total"
        and dict(labels)["outcome"] == "error"
        and count > value(before, name, **dict(labels))
    }
    assert error_code in errors
    assert (
        delta(
            before,
            after,
            "chronogram_graph_request_duration_seconds_count",
            operation="media_publish",
            outcome="ok",
        )
        == 1
    )
    # Gauges read at scrape time, and the worker polling.
    assert value(after, "chronogram_posts", status="published") >= 1
    assert value(after, "chronogram_task_queue_pollers", task_type="workflow") >= 1
    assert ("chronogram_posts_overdue", frozenset()) in after
    assert ("chronogram_posts_due_next_hour", frozenset()) in after

    # Logs: every line is JSON; one INFO line per outcome, with the post's context; access lines with the
    # request's id, user and duration; no token or API key anywhere.
    text = json_lines.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines
    for secret in (good_token, doomed_token, alice.key):
        assert secret not in text
    outcome_lines = {line["post_id"]: line for line in lines if line["logger"] == "chronogram.outcomes"}
    assert set(outcome_lines) >= {published["id"], failed["id"], cancelled["id"]}
    publish_line = outcome_lines[published["id"]]
    assert publish_line["level"] == "INFO" and publish_line["status"] == "published"
    assert publish_line["account_id"] == good_account and publish_line["lag_seconds"] >= 0
    assert publish_line["workflow_id"] == f"post-{published['id']}" and publish_line["run_id"]
    assert publish_line["trace_id"]
    fail_line = outcome_lines[failed["id"]]
    assert fail_line["error_code"] == error_code and fail_line["reason"]
    assert fail_line["account_id"] == doomed_account
    cancel_line = outcome_lines[cancelled["id"]]
    assert cancel_line["reason"] == "sold out"
    # Every line the failed post's activities logged (its failed container call among them) names its account.
    activity_lines = [line for line in lines if line.get("post_id") == failed["id"] and line.get("activity")]
    assert activity_lines and all(line["account_id"] == doomed_account for line in activity_lines), (
        activity_lines
    )
    access = [line for line in lines if line["logger"] == "chronogram.access"]
    assert access and all(line["request_id"] and "duration_ms" in line for line in access)
    assert any(line.get("user_id") == alice.user_id and line["route"] == "/v1/posts" for line in access)
    # Who cancelled: the access line of the request that asked (the outcome line may come from the worker).
    assert any(
        line.get("user_id") == alice.user_id and line["route"] == "/v1/posts/{post_id}/cancel"
        for line in access
    )
    # Expected Graph errors (the refused request) carry no traceback.
    assert not [line for line in lines if "exc_info" in line and error_code in line.get("exc_info", "")]

    # One trace from the API request that scheduled the post to the Graph API call that published it.
    finished = spans.get_finished_spans()
    requests = [s for s in finished if s.name == "POST /v1/posts" and s.kind.name == "SERVER"]
    publish_calls = [s for s in finished if s.kind.name == "CLIENT" and _url(s).endswith("/media_publish")]
    assert requests and publish_calls, [
        (s.name, s.kind, s.attributes) for s in finished if s.kind.name == "CLIENT"
    ][:5]
    trace_ids = {s.context.trace_id for s in requests}
    assert any(call.context.trace_id in trace_ids for call in publish_calls)
    linked = next(call for call in publish_calls if call.context.trace_id in trace_ids)
    names = {s.name for s in finished if s.context.trace_id == linked.context.trace_id}
    assert any(name.startswith("StartWorkflow:") for name in names), names
    assert any(name.startswith("RunActivity:") for name in names), names
    # The outcome line was logged in the same trace (by the activity that recorded the ending).
    assert publish_line["trace_id"] == format(linked.context.trace_id, "032x")


async def test_worker_readiness_names_a_worker_that_is_not_running(temporal_client: Client) -> None:
    """Each of the process's workers counts: one stopped, or one Temporal does not see polling, makes the process
    unready, and the answer names its task queue."""
    publishing = {"running": False}
    unpolled = f"nobody-polls-{uuid.uuid4()}"
    queues = [
        PolledQueue(
            "chronogram-publish", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, lambda: publishing["running"]
        ),
        PolledQueue(unpolled, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, lambda: True),
    ]
    async with (
        worker_endpoint(host="127.0.0.1", port=0, client=temporal_client, queues=queues, sdk=None) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["polling"] == "the worker of chronogram-publish is not running"
        publishing["running"] = True
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        # Nothing polls the publish queue either here, so that is named first.
        assert ready.json()["checks"]["polling"] == "not among the pollers of chronogram-publish"


async def test_metrics_take_the_token_when_one_is_set(api_settings: Settings) -> None:
    app = create_app(api_settings.model_copy(update={"api_metrics_token": SecretStr("scrape-me")}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert_problem(await client.get("/metrics", headers=headers), 401, "invalid_metrics_token")


async def test_worker_serves_metrics_health_and_readiness(api_settings: Settings) -> None:
    port = free_port()
    settings = api_settings.model_copy(update={"worker_metrics_port": port})
    async with (
        background_worker(settings, settle=0.5),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        for _ in range(50):  # Temporal lists a poller once its first poll arrives
            ready = await http.get("/readyz")
            if ready.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ok", "checks": {"temporal": "ok", "polling": "ok"}}
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        names = {family.name for family in text_string_to_metric_families(metrics.text)}
        # The product's and the Temporal SDK's, on one port.
        assert "chronogram_post_transitions" in names
        assert {"temporal_worker_task_slots_available", "temporal_num_pollers"} <= names, sorted(names)
        assert (await http.get("/nothing")).status_code == 404


async def test_a_used_up_quota_counts_a_wait(
    alice: ApiUser, anonymous: httpx.AsyncClient, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await sandbox.create_account(f"obs_{uuid.uuid4().hex[:8]}", quota_total=1)
    connected = await alice.client.post(
        "/v1/accounts", json={"ig_user_id": account.ig_user_id, "access_token": account.access_token}
    )
    assert connected.status_code == 201, connected.text
    media = await upload_ok(alice.client)
    first = await schedule_ok(alice.client, connected.json()["id"], [media], publish_at=_soon())
    await wait_for(alice.client, first["id"], "published", within=30)  # the one post of the day
    before = await scrape(anonymous)
    post = await schedule_ok(alice.client, connected.json()["id"], [media], publish_at=_soon())
    try:
        for _ in range(100):
            after = await scrape(anonymous)
            if delta(before, after, "chronogram_quota_waits_total"):
                break
            await asyncio.sleep(0.2)
        assert delta(before, after, "chronogram_quota_waits_total") == 1
    finally:
        await services.temporal.get_workflow_handle(f"post-{post['id']}").terminate("quota test done")
