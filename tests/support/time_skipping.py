"""The time-skipping test server, shared by the tests that use it, and handed to each one with its clock free.

The server skips time only while no workflow or activity task is outstanding. A workflow a test leaves open (a
test that failed halfway, a worker stopped before its posts were due) can hold a task that no worker will ever
take: an activity scheduled when its worker stopped. Terminating the workflow does not release it (the test server
keeps the activity's hold on its clock), so every later test that waits on a timer would hang. So a test that
leaves a workflow open gets it terminated, and the next test a fresh server."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from chronogram.temporal import DATA_CONVERTER, ensure_search_attributes
from devstack import tools

LEFT_OPEN = "left open by the test that started it"


async def open_workflows(client: Client) -> list[tuple[str, str]]:
    """(workflow id, run id) of every open workflow in the client's namespace. The test server has no visibility
    store, so no List query: it answers the older ListOpenWorkflowExecutions."""
    found: list[tuple[str, str]] = []
    page_token = b""
    while True:
        page = await client.workflow_service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(
                namespace=client.namespace, maximum_page_size=1000, next_page_token=page_token
            )
        )
        found.extend((info.execution.workflow_id, info.execution.run_id) for info in page.executions)
        page_token = page.next_page_token
        if not page_token:
            return found


async def terminate_open_workflows(client: Client) -> list[str]:
    """Terminate what is still open; returns the ids terminated (one that closed meanwhile is skipped)."""
    terminated = []
    for workflow_id, run_id in await open_workflows(client):
        try:
            await client.get_workflow_handle(workflow_id, run_id=run_id).terminate(reason=LEFT_OPEN)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            continue
        terminated.append(workflow_id)
    return terminated


class TimeSkippingServers:
    """One server at a time, started on first use and replaced after a test that left workflows open."""

    def __init__(self) -> None:
        self._env: WorkflowEnvironment | None = None
        self.started = 0

    async def take(self) -> WorkflowEnvironment:
        if self._env is None:
            self._env = await WorkflowEnvironment.start_time_skipping(
                data_converter=DATA_CONVERTER,
                test_server_existing_path=str(tools.temporal_test_server().path),
                # A JVM start on a busy two-core machine takes longer than the SDK's 5 s default.
                test_server_startup_timeout=timedelta(seconds=90),
            )
            self.started += 1
            await ensure_search_attributes(self._env.client, self._env.client.namespace)
        return self._env

    async def give_back(self) -> list[str]:
        """After a test: terminate what it left open and, if it left anything, retire the server. Returns the
        workflows it left."""
        assert self._env is not None
        left = await terminate_open_workflows(self._env.client)
        if left:
            await self.close()
        return left

    async def close(self) -> None:
        if self._env is not None:
            env, self._env = self._env, None
            await env.shutdown()
