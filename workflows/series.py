"""SeriesWorkflow: one per recurring series (id ``series-{series_id}``), creating its occurrences as ordinary posts
a bounded horizon ahead (chronogram.contracts.SERIES_HORIZON_DAYS).

Each round asks its activity to create the occurrences due within the horizon (idempotently: an occurrence's key
is its series and local time) and to start their posts' workflows, then sleeps on one durable timer until the next
occurrence enters the horizon. A ``series_changed`` signal (signal-with-start on every create, edit and cancel)
wakes it to read the series again. It ends when the series is cancelled or deleted, or its rule has nothing left
beyond the horizon (an edit starts it again), and continues as new every so often so that its history stays
short. Its input and history hold the series id and instants only.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from chronogram.contracts import (
        SERIES_WORKFLOW,
        OccurrencesInput,
        SeriesChanged,
        SeriesInput,
        SeriesInterface,
        SeriesResult,
        SeriesSignal,
    )

# No attempt limit: occurrences must be created whatever the outage; at most an hour between attempts.
_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(hours=1),
    maximum_attempts=0,
)
_CREATE_TIMEOUT = timedelta(minutes=5)
_ROUNDS_PER_RUN = 100
# A round that ran past its next check still waits a moment (a timer needs a positive duration).
_MIN_WAIT = timedelta(seconds=1)


@workflow.defn(name=SERIES_WORKFLOW)
class SeriesWorkflow:
    def __init__(self) -> None:
        self._changed = False

    @workflow.signal(name=SeriesSignal.CHANGED)
    def changed(self, _request: SeriesChanged | None = None) -> None:
        self._changed = True

    @workflow.run
    async def run(self, request: SeriesInput) -> SeriesResult:
        rounds = request.rounds
        while True:
            self._changed = False
            result = await workflow.execute_activity_method(
                SeriesInterface.create_occurrences,
                OccurrencesInput(series_id=request.series_id, now=workflow.now()),
                start_to_close_timeout=_CREATE_TIMEOUT,
                retry_policy=_RETRY,
                summary="create the occurrences within the horizon",
            )
            rounds += 1
            if result.ended and not self._changed:
                return SeriesResult(request.series_id, rounds)
            if rounds - request.rounds >= _ROUNDS_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(SeriesInput(request.series_id, rounds))
            if self._changed:
                continue
            wait = None
            if result.next_check_at is not None:
                wait = max(result.next_check_at - workflow.now(), _MIN_WAIT)
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=wait)
            except TimeoutError:
                pass
