"""Reading workflow histories: where the time of one post went, and how many activities and timers it ran."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

_LOCAL_ACTIVITY_MARKER = "core_local_activity"


def _name(event_type: EventType.ValueType) -> str:
    return EventType.Name(event_type).removeprefix("EVENT_TYPE_").lower()


async def shape(client: Client, workflow_id: str, instant: datetime) -> dict[str, int]:
    """How many activities a post's workflow scheduled before and after ``instant``, and how many timers: what
    the bare workflow repeats with no-ops."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    before = after = local_after = timers = 0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            timers += 1
        elif (
            event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and event.marker_recorded_event_attributes.marker_name == _LOCAL_ACTIVITY_MARKER
            and event.event_time.ToDatetime(tzinfo=UTC) >= instant
        ):
            local_after += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.event_time.ToDatetime(tzinfo=UTC) < instant:
                before += 1
            else:
                after += 1
    return {
        "activities_before": before,
        "activities_after": after,
        "local_activities_after": local_after,
        "timers": timers,
        "events": len(history.events),
    }


async def timeline(client: Client, workflow_id: str, origin: datetime, *, until_activity: str) -> list[str]:
    """The events from the last timer's firing until ``until_activity`` completed, in milliseconds after
    ``origin`` (the publish time): which step a late post waited in. A post whose preparation ended after its
    publish time never started that timer: its timeline starts at ``origin`` and says so."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    timed = any(event.event_type == EventType.EVENT_TYPE_TIMER_FIRED for event in history.events)
    names: dict[int, str] = {}
    lines: list[str] = [] if timed else ["no timer: the post was still being prepared at its publish time"]
    started = False
    for event in history.events:
        kind = event.event_type
        when = event.event_time.ToDatetime(tzinfo=UTC)
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        if kind == EventType.EVENT_TYPE_TIMER_FIRED:
            started, lines = True, []  # the last timer is the one that waited for the publish time
        elif not timed and not started and when >= origin:
            started = True
        if not started:
            continue
        offset = (when - origin).total_seconds() * 1000
        activity = _activity_of(event, names)
        lines.append(f"{offset:+.0f} ms {_name(kind)}{f' {activity}' if activity else ''}")
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED and activity == until_activity:
            break
    return lines


def _activity_of(event: Any, names: dict[int, str]) -> str:
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return names.get(event.event_id, "")
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        return names.get(event.activity_task_started_event_attributes.scheduled_event_id, "")
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        return names.get(event.activity_task_completed_event_attributes.scheduled_event_id, "")
    return ""


async def activity_times(client: Client, workflow_id: str, activity: str) -> dict[str, Any]:
    """Scheduled-to-started (queueing) and started-to-completed (running) of one activity."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled: dict[int, datetime] = {}
    started: dict[int, datetime] = {}
    for event in history.events:
        when = event.event_time.ToDatetime(tzinfo=UTC)
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == activity:
                scheduled[event.event_id] = when
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = when
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            key = event.activity_task_completed_event_attributes.scheduled_event_id
            if key in scheduled:
                return {
                    "activity": activity,
                    "queued_s": round((started[key] - scheduled[key]).total_seconds(), 3),
                    "run_s": round((when - started[key]).total_seconds(), 3),
                }
    raise LookupError(f"{workflow_id} has no completed {activity}")


_STEP_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_TIMER_FIRED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_MARKER_RECORDED,
}


async def steps_after(
    client: Client, workflow_id: str, origin: datetime, *, before_s: float = 20, limit: int = 60
) -> list[str]:
    """The activities, timers, failures and timeouts of a post's run from ``before_s`` before ``origin`` (its
    publish time) on, in seconds after it: where a late post's time went (a failed call and its retries, a
    re-check's timers, a worker's death)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    names: dict[int, str] = {}
    lines: list[str] = []
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        when = event.event_time.ToDatetime(tzinfo=UTC)
        if (when - origin).total_seconds() < -before_s or kind not in _STEP_EVENTS:
            continue
        detail = _activity_of(event, names)
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failed = event.activity_task_failed_event_attributes
            detail = f"{names.get(failed.scheduled_event_id, '')}: {failed.failure.message[:120]}"
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            detail = names.get(event.activity_task_timed_out_event_attributes.scheduled_event_id, "")
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timer = event.timer_started_event_attributes
            detail = f"{timer.start_to_fire_timeout.ToTimedelta().total_seconds():g} s"
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            detail = event.marker_recorded_event_attributes.marker_name
        lines.append(
            f"{(when - origin).total_seconds():+.1f} s {_name(kind)}{f' {detail}' if detail else ''}"
        )
        if len(lines) >= limit:
            lines.append("...")
            break
    return lines
