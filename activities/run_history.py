"""What a post's own workflow history says about it, for the workflow to record: who asked Temporal to cancel it."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from chronogram.contracts import CancellationRequester, RunHistoryInterface, RunRef


class RunHistory(RunHistoryInterface):
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn
    async def who_cancelled(self, request: RunRef) -> CancellationRequester:
        handle = self._client.get_workflow_handle(request.workflow_id, run_id=request.run_id)
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_execution_cancel_requested_event_attributes"):
                attributes = event.workflow_execution_cancel_requested_event_attributes
                return CancellationRequester(identity=attributes.identity, cause=attributes.cause)
        return CancellationRequester()
