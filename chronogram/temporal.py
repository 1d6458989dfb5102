"""The one way every process (API, worker, tests, scripts) connects to Temporal."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta
from typing import Any, TypedDict

from pydantic import TypeAdapter
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from chronogram.contracts import SEARCH_ATTRIBUTES
from chronogram.settings import Settings


@functools.lru_cache(maxsize=512)
def _type_adapter(type_hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_hint)


class _SharedAdapterJSONConverter(PydanticJSONPlainPayloadConverter):
    """Pydantic JSON with one process-wide cache of type adapters.

    The worker builds a new payload converter for every workflow it runs, and the SDK's converter caches adapters
    per instance: each workflow rebuilt the schema of every type it decoded (7 % of the worker's time in a burst)
    and kept its own copies for as long as it stayed cached (bench/README.md).
    """

    def __init__(self) -> None:
        super().__init__(max_cached_type_adapters=0)
        self._type_adapter = _type_adapter


_JSON_CONVERTER = _SharedAdapterJSONConverter()


class PayloadConverter(CompositePayloadConverter):
    """The SDK's default encodings, with pydantic for JSON (dataclasses, datetimes, enums, models)."""

    def __init__(self) -> None:
        super().__init__(
            *(
                _JSON_CONVERTER if isinstance(converter, JSONPlainPayloadConverter) else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


_log = logging.getLogger("chronogram.temporal")
# A patient connection's pauses between tries: short at first (a restart), then every 10 s (an outage).
_REACH_FIRST_PAUSE = 1.0
_REACH_LONGEST_PAUSE = 10.0
# Answers that mean "not reachable now", not "refused": a server down or starting, a frontend not serving yet.
_UNREACHABLE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})

# Workers built from the client inherit its data converter and interceptors, so API and worker cannot disagree.
DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


async def connect_temporal(
    settings: Settings, *, runtime: Runtime | None = None, patient: bool = False
) -> Client:
    """``runtime``: the SDK's telemetry (the worker's, whose metrics it serves); the SDK's default otherwise. The
    TracingInterceptor exports through the process's tracer provider (chronogram.observability.tracing).

    ``patient`` (the worker): while Temporal cannot be reached, keep trying instead of failing, until it answers
    for the namespace. A worker started during an outage, or while the server restarts, waits for it and then
    polls; without this it exited, and its posts waited for whatever restarts it."""
    if not patient:
        return await _connect(settings, runtime)
    pause = _REACH_FIRST_PAUSE
    while True:
        try:
            client = await _connect(settings, runtime)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=settings.temporal_namespace)
            )
            return client
        except RPCError as error:
            if error.status not in _UNREACHABLE:
                raise
            reason = error.message
        except RuntimeError as error:  # the SDK's "Failed client connect: ..."
            reason = str(error)
        _log.warning(
            "Temporal at %s unreachable (%s); trying again in %.0f s",
            settings.temporal_address,
            reason,
            pause,
        )
        await asyncio.sleep(pause)
        pause = min(pause * 2, _REACH_LONGEST_PAUSE)


async def _connect(settings: Settings, runtime: Runtime | None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        interceptors=[TracingInterceptor()],
        runtime=runtime,
    )


async def ensure_namespace(client: Client, namespace: str, *, retention: timedelta) -> bool:
    """Register ``namespace`` unless it exists (the production server starts with none; the dev server with
    ``default``); returns whether it was registered. A namespace just registered on a production server reaches
    the caches of its services within seconds (the namespace registry refreshes every 10 s by default): this
    waits until the frontend and the operator service both know it, so that search attributes can be added."""
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
        return False
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    request = RegisterNamespaceRequest(namespace=namespace)
    request.workflow_execution_retention_period.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(request)
    except RPCError as refused:
        if refused.status != RPCStatusCode.ALREADY_EXISTS:
            raise
    for _ in range(480):  # a busy machine's server can take a minute
        try:
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
            await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
            return True
        except RPCError as not_yet:
            if not_yet.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise
        await asyncio.sleep(0.25)
    raise RuntimeError(f"namespace {namespace} registered but not known to the server after 120 s")


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the project's custom search attributes that the namespace lacks; returns the names added.

    Needed wherever the namespace predates them: an existing dev-server database, the time-skipping test server,
    a production cluster.
    """
    wanted = {key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in SEARCH_ATTRIBUTES}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as error:
        # The Java time-skipping test server implements adding search attributes but not listing them.
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known: set[str] = set()
    else:
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {name: kind for name, kind in wanted.items() if name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)


# The SDK sends at most one heartbeat per activity per 0.8 heartbeat timeout (8 s for the posts' activities), and a
# cancellation reaches an activity only in the answer to one. A held publish beats on its own schedule, the last
# beat just before its call (activities/instagram.py): the worker of held publishes sends every beat at once.
HEARTBEAT_THROTTLE = timedelta(seconds=0.5)


class WorkerTuning(TypedDict):
    """``Worker``'s keyword arguments that the worker settings (``CHRONOGRAM_WORKER_*``) decide."""

    max_concurrent_activities: int
    max_concurrent_workflow_tasks: int
    max_cached_workflows: int
    graceful_shutdown_timeout: timedelta
    sticky_queue_schedule_to_start_timeout: timedelta
    workflow_task_poller_behavior: PollerBehaviorSimpleMaximum
    activity_task_poller_behavior: PollerBehaviorSimpleMaximum
    nonsticky_to_sticky_poll_ratio: float
    workflow_runner: WorkflowRunner


def worker_tuning(settings: Settings) -> WorkerTuning:
    """How a worker runs, by the settings: the product's worker, and the bench's bare one that it is compared
    with, alike."""
    return WorkerTuning(
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
        graceful_shutdown_timeout=settings.worker_graceful_shutdown,
        sticky_queue_schedule_to_start_timeout=settings.worker_sticky_queue_timeout,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(settings.worker_workflow_task_polls),
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(settings.worker_activity_task_polls),
        nonsticky_to_sticky_poll_ratio=settings.worker_shared_queue_poll_share,
        workflow_runner=workflow_runner(settings),
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox re-imports the workflow module for every run it caches: twice the memory and CPU per workflow.
    The test suites always run workflows sandboxed (the SDK's default there), which is where a non-deterministic
    call is caught; a deployment may run the code that passed them without it."""
    return SandboxedWorkflowRunner() if settings.worker_workflow_sandbox else UnsandboxedWorkflowRunner()
