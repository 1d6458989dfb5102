"""The API's metrics, traces and access log (docs/operations.md).

- ``GET /metrics``: Prometheus text, the API's own counters plus gauges read at scrape time (posts by status,
  overdue, due within the hour; workers polling the task queue). Open unless ``CHRONOGRAM_API_METRICS_TOKEN`` is
  set; then it takes ``Authorization: Bearer <that token>`` (Prometheus' ``authorization`` scrape setting).
- A span per request (FastAPI's own OpenTelemetry support, ``TELEMETRY``), the parent of the workflow starts and
  signals it makes. Only that span: no span per ASGI message or per dependency, which cost the API a fifth of its
  CPU per POST /v1/posts and told nobody anything.
- One access line per request: method, route, status, duration, the request's id (the client's ``X-Request-Id``
  when it sends a sane one, else a new one, echoed back) and the authenticated user's id.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.enums.v1 import TaskQueueType

from api.deps import AppServices
from api.errors import ApiError
from chronogram.contracts import TASK_QUEUE
from chronogram.observability.logs import bind, bind_live
from chronogram.observability.metrics import (
    CONTENT_TYPE_LATEST,
    TASK_QUEUE_POLLERS,
    refresh_post_gauges,
    render,
)
from chronogram.observability.worker_endpoint import pollers
from chronogram.settings import Settings

SERVICE_NAME = "chronogram-api"

access = logging.getLogger("chronogram.access")
log = logging.getLogger("chronogram.api")

# Where the authenticated user's id is left for the access line (request.state, shared with the ASGI scope).
USER_ID_STATE = "user_id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_POLLED_TYPES = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


def adopt_server_logs() -> None:
    """uvicorn's lines go through the process's handler (so JSON in production), and its access lines give way
    to ours, which know the request id and the user."""
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


# Probes and scrapes are not requests anyone wants a trace of.
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _UNTRACED_PATHS


# FastAPI(telemetry=TELEMETRY): one server span per request, named "METHOD /route" once the route is known, current
# while the request runs (so the Temporal client's spans and the log lines' trace_id hang from it), on the
# process's tracer provider (chronogram.observability.tracing). Metrics are Prometheus' (GET /metrics), logs ours;
# the exporters are configured from the OTEL_* variables by configure_tracing, not by FastAPI.
TELEMETRY: TelemetryConfig = {
    "tracing": True,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
    "exclude": _untraced,
}


def install_telemetry(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(AccessLogMiddleware)
    token = settings.api_metrics_token.get_secret_value()

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if token and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), f"Bearer {token}".encode()
        ):
            raise ApiError(
                401, "invalid_metrics_token", "send the metrics token as 'Authorization: Bearer <token>'"
            )
        services: AppServices = request.app.state.services
        await _refresh_pollers(services)
        await run_in_threadpool(refresh_post_gauges, services.engine)
        return Response(await run_in_threadpool(render), media_type=CONTENT_TYPE_LATEST)


async def _refresh_pollers(services: AppServices) -> None:
    for name, task_type in _POLLED_TYPES.items():
        try:
            count = len(await pollers(services.temporal, TASK_QUEUE, task_type))
        except Exception as error:  # Temporal down: the gauge says so, the scrape still answers
            log.warning("could not ask Temporal for the pollers of %s: %s", TASK_QUEUE, type(error).__name__)
            count = -1
        TASK_QUEUE_POLLERS.labels(name).set(count)


class AccessLogMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware), so that what it binds reaches every line the request logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The first X-Request-Id, found without building a dict of every header.
        sent = next((value for name, value in scope.get("headers") or () if name == b"x-request-id"), b"")
        request_id = sent.decode("latin-1")
        if not _REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        with bind(request_id=request_id), bind_live(state):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = scope.get("route")
                # path_format: the template without convertors (/v1/posts/{post_id}, not {post_id:int}).
                path = getattr(route, "path_format", None) or scope.get("path", "")
                if path not in _UNTRACED_PATHS and access.isEnabledFor(logging.INFO):
                    duration_ms = round((time.perf_counter() - started) * 1000, 1)
                    access.info(
                        "%s %s %d %.1f ms",
                        scope.get("method"),
                        path,
                        status,
                        duration_ms,
                        extra={
                            "method": scope.get("method"),
                            "route": path,
                            "status": status,
                            "duration_ms": duration_ms,
                        },
                    )
