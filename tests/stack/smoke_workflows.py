"""Tiny workflows that prove the servers work; kept apart from test modules so the workflow sandbox imports no pytest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import activity, workflow


@dataclass(frozen=True)
class GreetInput:
    name: str


@activity.defn
async def compose_greeting(request: GreetInput) -> str:
    return f"Hello, {request.name}! (from activity attempt {activity.info().attempt})"


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, request: GreetInput) -> str:
        return await workflow.execute_activity(
            compose_greeting, request, start_to_close_timeout=timedelta(seconds=30)
        )


@dataclass(frozen=True)
class SleepResult:
    started_at: datetime
    woke_at: datetime


@workflow.defn
class LongSleepWorkflow:
    @workflow.run
    async def run(self, days: int) -> SleepResult:
        started_at = workflow.now()
        await workflow.sleep(timedelta(days=days))
        return SleepResult(started_at=started_at, woke_at=workflow.now())
