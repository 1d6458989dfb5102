"""Recorded histories replay against the current workflow code: a change that would break a sleeping post fails here.

Re-record with `make record-histories` (tests/replay/record.py) only when a change is meant to alter histories,
and then behind workflow.patched().
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from chronogram.contracts import ScheduledPostInput, ScheduledPostResult
from chronogram.temporal import DATA_CONVERTER
from tests.replay.scenarios import SCENARIOS
from workflows import ScheduledPostWorkflow
from workflows.scheduled_post import (
    _CONTAINER_ROUNDS_PATCH,
    _DEADLINE_PATCH,
    _ERROR_CODE_PATCH,
    _HOLD_PATCH,
    _INSIGHTS_AHEAD_PATCH,
    _INSIGHTS_ON_TIME,
    _INSIGHTS_OWN_RUN_PATCH,
    _INSIGHTS_WITH_FINISHING_PATCH,
    _LOCAL_STEPS_PATCH,
    _MALFORMED_SIGNAL_PATCH,
    _PERMALINK_WITH_PUBLISH_PATCH,
    _POST_METRICS_PATCH,
    _PROMPT_RECHECK_PATCH,
    _PUBLISH_NOW_TIME_PATCH,
    _RECONNECT_PATCH,
    _SPREAD_WAKE_PATCH,
    _TEMPORAL_CANCEL_PATCH,
    _WAKE_EARLY_PATCH,
)

HISTORY_DIR = Path(__file__).with_name("histories")
# histories/*.json: the current code, one per scenario. histories/<before-a-patch>/: recorded by earlier code and
# kept forever, because a post asleep since then wakes into the code of today.
CURRENT = sorted(HISTORY_DIR.glob("*.json"))
HISTORIES = sorted(HISTORY_DIR.rglob("*.json"))
# Recorded just before the post-metrics patch: the same patches as the current histories, without that one. The
# marker-set tests below predate it and count the other folders only.
BEFORE_POST_METRICS = HISTORY_DIR / "before-post-metrics"
# Recorded just before the spread wake-ups, by the held publish's runs: the same patches as the current histories
# but that one; like before-post-metrics, not counted by the marker-set tests of older patches.
BEFORE_SPREAD_WAKE = HISTORY_DIR / "before-spread-wake"
# Recorded just before the insights were started beside the finishing calls: the same patches as the current
# histories, with post-metrics in place of that one; not counted by the marker-set tests of older patches either.
BEFORE_INSIGHTS_WITH_FINISHING = HISTORY_DIR / "before-insights-with-finishing"
# Recorded just before the publish read its media's permalink: the same patches as the current histories but that
# one; not counted by the marker-set tests of older patches either.
BEFORE_PERMALINK_WITH_PUBLISH = HISTORY_DIR / "before-permalink-with-publish"
# Recorded just before the held publish's database steps ran as local activities: the same patches as the current
# histories but that one; not counted by the marker-set tests of older patches either.
BEFORE_LOCAL_STEPS = HISTORY_DIR / "before-local-steps"
# Recorded just before the held publish started the insights ahead: the same patches as the current histories but
# that one; not counted by the marker-set tests of older patches either.
BEFORE_INSIGHTS_AHEAD = HISTORY_DIR / "before-insights-ahead"
# Recorded just before the insights started ahead belonged to their run (replaced what an earlier run of the post
# left, withdrawn when the post did not go out): the same patches as the current histories but that one; not
# counted by the marker-set tests of older patches either.
BEFORE_INSIGHTS_OWN_RUN = HISTORY_DIR / "before-insights-own-run"
PATCHED_BEFORE = [
    path
    for path in HISTORIES
    if path.parent
    not in (
        BEFORE_POST_METRICS,
        BEFORE_SPREAD_WAKE,
        BEFORE_INSIGHTS_WITH_FINISHING,
        BEFORE_PERMALINK_WITH_PUBLISH,
        BEFORE_LOCAL_STEPS,
        BEFORE_INSIGHTS_AHEAD,
        BEFORE_INSIGHTS_OWN_RUN,
    )
]


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))


def test_every_scenario_has_a_recorded_history() -> None:
    assert {path.stem for path in CURRENT} == {scenario.name for scenario in SCENARIOS}


def _patches(path: Path) -> set[str]:
    markers = [
        event["markerRecordedEventAttributes"]
        for event in json.loads(path.read_text())["events"]
        if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
    ]
    return {
        json.loads(base64.b64decode(marker["details"]["patch-data"]["payloads"][0]["data"]))["id"]
        for marker in markers
        if marker["markerName"] == "core_patch"
    }


def test_both_sides_of_the_wake_early_patch_are_recorded() -> None:
    """Posts asleep since before the patch replay the old timer; new ones record the marker."""
    before = sorted((HISTORY_DIR / "before-wake-early").glob("*.json"))
    assert before and all(_WAKE_EARLY_PATCH not in _patches(path) for path in before)
    published_now = [path for path in CURRENT if path.stem.startswith("published")]
    assert published_now and all(_WAKE_EARLY_PATCH in _patches(path) for path in published_now)


def test_histories_from_before_signal_outcomes_replay_beside_new_ones() -> None:
    """Recorded before signals carried request ids and events sequences; the malformed-signal refusal records
    its marker only where a signal was malformed."""
    before = sorted((HISTORY_DIR / "before-signal-outcomes").glob("*.json"))
    added_since = {
        "malformed_signals_refused",
        "container_waited_for_further_rounds",
        *_ADDED_WITH_DEADLINES,
        *_ADDED_SINCE_DEADLINES,
    }
    assert {path.stem for path in before} == (
        {s.name for s in SCENARIOS} - added_since
    ) | _GONE_WITH_DEADLINES
    assert all(_MALFORMED_SIGNAL_PATCH not in _patches(path) for path in before)
    with_marker = {path.stem for path in CURRENT if _MALFORMED_SIGNAL_PATCH in _patches(path)}
    assert with_marker == {"malformed_signals_refused"}


# Scenarios the publish deadline added, and the one it ended (three failed publishes no longer fail a post).
_ADDED_WITH_DEADLINES = {
    "published_after_failed_publishes",
    "delayed_then_published",
    "delayed_while_publishing_then_published",
    "failed_deadline_passed",
    "first_comment_retried",
}
_GONE_WITH_DEADLINES = {"failed_after_unconfirmed_publishes"}
_ADDED_SINCE_DEADLINES = {
    "published_after_reconnect",
    "cancelled_in_temporal",
    "cancelled_during_hold",
    "rescheduled_during_hold",
    "failed_during_hold",
}
# Scenarios recorded since the insights started ahead belong to their run (before-insights-own-run/ lacks them).
_ADDED_WITH_INSIGHTS_OWN_RUN = {"failed_during_hold"}
_ADDED_WITH_THE_HOLD = {"cancelled_during_hold", "rescheduled_during_hold"}
# before-* folders recorded by code that had the deadline already
_KEPT_SINCE_DEADLINES = ("before-prompt-publish-recheck", "before-publish-hold")


def test_both_sides_of_the_deadline_patch_are_recorded() -> None:
    """Posts recorded before the deadline replay the attempt counts; every post prepared since records it."""
    before = sorted((HISTORY_DIR / "before-publish-deadline").glob("*.json"))
    assert {path.stem for path in before} == (
        {s.name for s in SCENARIOS} - _ADDED_WITH_DEADLINES - _ADDED_SINCE_DEADLINES
    ) | _GONE_WITH_DEADLINES
    older = [
        path for path in PATCHED_BEFORE if path.parent.name not in (HISTORY_DIR.name, *_KEPT_SINCE_DEADLINES)
    ]
    assert all(_DEADLINE_PATCH not in _patches(path) for path in older)
    with_marker = {path.stem for path in CURRENT if _DEADLINE_PATCH in _patches(path)}
    assert with_marker == {path.stem for path in CURRENT} - {"cancelled", "cancelled_in_temporal"}  # asleep


def test_publish_now_histories_from_both_sides_of_its_time_patch_are_recorded() -> None:
    with_marker = {
        str(path.relative_to(HISTORY_DIR))
        for path in PATCHED_BEFORE
        if _PUBLISH_NOW_TIME_PATCH in _patches(path)
    }
    assert with_marker == {
        "publish_now.json",
        "before-publish-deadline/publish_now.json",
        "before-publish-hold/publish_now.json",
    }
    assert (HISTORY_DIR / "before-signal-outcomes" / "publish_now.json").exists()


def test_only_a_container_still_processing_after_a_round_records_the_rounds_patch() -> None:
    with_marker = {path.stem for path in PATCHED_BEFORE if _CONTAINER_ROUNDS_PATCH in _patches(path)}
    assert with_marker == {"container_waited_for_further_rounds"}


def test_failed_runs_record_the_error_code_patch_and_the_older_ones_still_replay() -> None:
    """Runs that ended failed upsert ErrorCode behind the patch; the same scenarios recorded before it are kept
    (before-error-code/) and replay below."""
    with_marker = {path.stem for path in CURRENT if _ERROR_CODE_PATCH in _patches(path)}
    assert with_marker == {path.stem for path in CURRENT if path.stem.startswith("failed")}
    before = sorted((HISTORY_DIR / "before-error-code").glob("*.json"))
    # The failed scenarios of the time (failed_after_unconfirmed_publishes became a publish with the deadline).
    assert {path.stem for path in before} == {
        "failed_after_unconfirmed_publishes",
        "failed_auth",
        "failed_container_error",
        "failed_media_rejected",
    }
    assert all(_ERROR_CODE_PATCH not in _patches(path) for path in before)
    upserted = [
        event["upsertWorkflowSearchAttributesEventAttributes"]["searchAttributes"]["indexedFields"]
        for event in json.loads((HISTORY_DIR / "failed_auth.json").read_text())["events"]
        if event["eventType"] == "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"
    ]
    assert any("ErrorCode" in fields for fields in upserted)


def test_only_an_authentication_error_records_the_reconnect_patch() -> None:
    """A refused token waits for the account's reconnect (published_after_reconnect), or for the deadline
    (failed_auth); an earlier failed_auth failed at once and still replays (before-*/failed_auth.json)."""
    with_marker = {
        str(path.relative_to(HISTORY_DIR)) for path in PATCHED_BEFORE if _RECONNECT_PATCH in _patches(path)
    }
    assert with_marker == {
        "failed_auth.json",
        "published_after_reconnect.json",
        "before-publish-hold/failed_auth.json",
        "before-publish-hold/published_after_reconnect.json",
    }
    assert (HISTORY_DIR / "before-publish-deadline" / "failed_auth.json").exists()


def test_only_a_cancellation_requested_in_temporal_records_its_patch() -> None:
    with_marker = {
        str(path.relative_to(HISTORY_DIR))
        for path in PATCHED_BEFORE
        if _TEMPORAL_CANCEL_PATCH in _patches(path)
    }
    assert with_marker == {"cancelled_in_temporal.json", "before-publish-hold/cancelled_in_temporal.json"}


def test_both_sides_of_the_hold_patch_are_recorded() -> None:
    """Posts prepared before the held publish replay the 3 s wake; every post that reached its final wait since
    records the marker (a cancel or reschedule during the hold among them)."""
    before = sorted((HISTORY_DIR / "before-publish-hold").glob("*.json"))
    assert {path.stem for path in before} == (
        {s.name for s in SCENARIOS} - _ADDED_WITH_THE_HOLD - _ADDED_WITH_INSIGHTS_OWN_RUN
    )
    assert all(_HOLD_PATCH not in _patches(path) for path in PATCHED_BEFORE if path.parent != HISTORY_DIR)
    with_marker = {path.stem for path in CURRENT if _HOLD_PATCH in _patches(path)}
    assert with_marker == {path.stem for path in CURRENT if _WAKE_EARLY_PATCH in _patches(path)}
    assert _ADDED_WITH_THE_HOLD <= with_marker


def test_both_sides_of_the_post_metrics_patch_are_recorded() -> None:
    """Every run that published records the marker and the start_post_metrics activity (runs that failed or were
    cancelled do not); the same scenarios recorded just before it (before-post-metrics/) replay without them.
    The runs of then are those of before-insights-with-finishing/ (the runs of today take that patch instead)."""
    then = sorted(BEFORE_INSIGHTS_WITH_FINISHING.glob("*.json"))
    with_marker = {path.stem for path in then if _POST_METRICS_PATCH in _patches(path)}
    unpublished = {path.stem for path in then if path.stem.startswith(("failed", "cancelled"))}
    assert with_marker == {path.stem for path in then} - unpublished
    before = sorted(BEFORE_POST_METRICS.glob("*.json"))
    assert {path.stem for path in before} == with_marker - _ADDED_WITH_THE_HOLD  # scenarios recorded since
    assert all(_POST_METRICS_PATCH not in _patches(path) for path in before)
    assert all("start_post_metrics" in path.read_text() for path in then if path.stem in with_marker)
    assert all("start_post_metrics" not in path.read_text() for path in before)


def _scheduled(path: Path, *, local: bool | None = None) -> list[str]:
    """The activities a run scheduled or ran as local activities, in order; ``local``: only those run locally
    (True), only those scheduled through the server (False)."""
    names = []
    for event in json.loads(path.read_text())["events"]:
        if event["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" and local is not True:
            names.append(event["activityTaskScheduledEventAttributes"]["activityType"]["name"])
        elif event["eventType"] == "EVENT_TYPE_MARKER_RECORDED" and local is not False:
            marker = event["markerRecordedEventAttributes"]
            if marker["markerName"] == "core_local_activity":
                data = json.loads(base64.b64decode(marker["details"]["data"]["payloads"][0]["data"]))
                names.append(data["activity_type"])
    return names


def _events(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(path.read_text())["events"]
    return events


def _payload(payloads: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(payloads["payloads"][0]["data"]))
    return decoded


def _ended_published(path: Path) -> bool:
    last = _events(path)[-1]
    if last["eventType"] != "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED":
        return False
    return bool(
        _payload(last["workflowExecutionCompletedEventAttributes"]["result"])["status"] == "published"
    )


def _instant(text: str) -> datetime:
    # Temporal writes up to nine digits of fractions; Python reads six.
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00")))


def _went_out_after_planned(path: Path) -> timedelta:
    """How long after the publish time in its input the run learned its post was live: the start of the workflow
    task after its last publish call's completion (or the last reading of its container, for an unclear call)."""
    events = _events(path)
    planned = _instant(_payload(events[0]["workflowExecutionStartedEventAttributes"]["input"])["publish_at"])
    publishes = {
        str(event["eventId"])
        for event in events
        if event["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
        and event["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        in ("publish", "reconcile_publish")
    }
    completed = max(
        index
        for index, event in enumerate(events)
        if event["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"
        and str(event["activityTaskCompletedEventAttributes"]["scheduledEventId"]) in publishes
    )
    learned = next(
        event for event in events[completed:] if event["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_STARTED"
    )
    return _instant(learned["eventTime"]) - planned


def _signalled(path: Path) -> bool:
    return any(event["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" for event in _events(path))


def test_both_sides_of_the_insights_ahead_patch_are_recorded() -> None:
    """Every run that held its call takes the patch before its publish time, and starts its insights as it first
    begins publishing, in the workflow task that marks it so (before its publish call is even scheduled). After
    the call only a run that went out more than _INSIGHTS_ON_TIME from that time starts them again, for the true
    time (restart_post_metrics). Recorded just before it, the same runs started them after the call, and still
    replay. (The runs of then are those of before-insights-own-run/: the runs of today start them ahead by a
    restart, test below.)"""
    then = sorted(BEFORE_INSIGHTS_OWN_RUN.glob("*.json"))
    held_then = {path.stem for path in then if _HOLD_PATCH in _patches(path)}
    assert {path.stem for path in then if _INSIGHTS_AHEAD_PATCH in _patches(path)} == held_then
    restarted = set()
    for path in then:
        names = _scheduled(path)
        if path.stem not in held_then or "begin_publishing" not in _scheduled(path, local=True):
            assert "start_post_metrics" not in names and "restart_post_metrics" not in names, path.stem
            continue
        assert names.count("start_post_metrics") == 1, path.stem
        assert names.index("start_post_metrics") < names.index("publish"), path.stem
        if "restart_post_metrics" in names:
            restarted.add(path.stem)
            assert names.count("restart_post_metrics") == 1, path.stem
            assert names.index("publish") < names.index("restart_post_metrics") < names.index("finish"), (
                path.stem
            )
        if _ended_published(path) and not _signalled(path):
            late = _went_out_after_planned(path) > _INSIGHTS_ON_TIME
            assert late == (path.stem in restarted), path.stem
    assert restarted == _WENT_OUT_LATE
    assert not {path.stem for path in then if not _ended_published(path)} & restarted
    assert "start_post_metrics" in _scheduled(BEFORE_INSIGHTS_OWN_RUN / "cancelled_during_hold.json")
    before = sorted(BEFORE_INSIGHTS_AHEAD.glob("*.json"))
    assert {path.stem for path in before} == {path.stem for path in then}
    assert all(_INSIGHTS_AHEAD_PATCH not in _patches(path) for path in before)
    for path in before:
        names = _scheduled(path)
        assert "restart_post_metrics" not in names, path.stem
        assert ("start_post_metrics" in names) == _ended_published(path), path.stem
        if _ended_published(path):
            assert names.index("publish") < names.index("start_post_metrics"), path.stem


# Waiting for a container's further round, for the quota, and out an outage: later than planned.
_WENT_OUT_LATE = {
    "container_waited_for_further_rounds",
    "delayed_then_published",
    "delayed_while_publishing_then_published",
    "quota_wait",
}


def test_both_sides_of_the_insights_own_run_patch_are_recorded() -> None:
    """Every current run that held its call takes the patch with the insights-ahead one. Its start ahead is a
    restart (whatever an earlier run of the post left is replaced), once, in the task that first marks it
    publishing; a run that went out late restarts them once more after its call; a run that ended without going
    out (cancelled or failed during its hold) withdraws them after its ending; start_post_metrics is gone from
    held runs. Recorded just before it, no run withdrew anything, and those runs still replay."""
    held_now = {path.stem for path in CURRENT if _HOLD_PATCH in _patches(path)}
    assert {path.stem for path in CURRENT if _INSIGHTS_OWN_RUN_PATCH in _patches(path)} == held_now
    withdrawn, began_unpublished = set(), set()
    for path in CURRENT:
        names = _scheduled(path)
        local = _scheduled(path, local=True)
        if path.stem not in held_now or "begin_publishing" not in local:
            assert not {"start_post_metrics", "restart_post_metrics", "withdraw_post_metrics"} & set(names)
            continue
        if not _ended_published(path):
            began_unpublished.add(path.stem)
        assert "start_post_metrics" not in names, path.stem
        restarts = [index for index, name in enumerate(names) if name == "restart_post_metrics"]
        assert restarts and restarts[0] < names.index("publish"), path.stem
        assert len(restarts) == (2 if path.stem in _WENT_OUT_LATE else 1), path.stem
        if "withdraw_post_metrics" in names:
            withdrawn.add(path.stem)
            assert names[-1] == "withdraw_post_metrics" and names.count("withdraw_post_metrics") == 1
            assert names.index("finish") < names.index("withdraw_post_metrics"), path.stem
    assert withdrawn == began_unpublished
    assert withdrawn == {"cancelled_during_hold", "failed_during_hold"}
    before = sorted(BEFORE_INSIGHTS_OWN_RUN.glob("*.json"))
    assert all(_INSIGHTS_OWN_RUN_PATCH not in _patches(path) for path in before)
    assert all("withdraw_post_metrics" not in _scheduled(path) for path in before)


def test_both_sides_of_the_insights_with_finishing_patch_are_recorded() -> None:
    """Every current run that held its call takes the patch before its publish time, and those that published
    start their insights beside the permalink, before the post's ending is stored, without the post-metrics
    marker; recorded just before it, the same runs started them after the ending, and still replay. (The
    permalink's own activity is seen in the runs recorded before the publish read it.)"""
    held_now = {path.stem for path in CURRENT if _HOLD_PATCH in _patches(path)}
    assert {path.stem for path in CURRENT if _INSIGHTS_WITH_FINISHING_PATCH in _patches(path)} == held_now
    assert all(_POST_METRICS_PATCH not in _patches(path) for path in CURRENT if path.stem in held_now)
    before = sorted(BEFORE_INSIGHTS_WITH_FINISHING.glob("*.json"))
    assert before and all(_INSIGHTS_WITH_FINISHING_PATCH not in _patches(path) for path in before)
    now = sorted(BEFORE_PERMALINK_WITH_PUBLISH.glob("*.json"))
    assert {path.stem for path in now if _INSIGHTS_WITH_FINISHING_PATCH in _patches(path)} == (
        held_now - _ADDED_WITH_INSIGHTS_OWN_RUN
    )
    published_now = {path.stem: _scheduled(path) for path in now if "start_post_metrics" in _scheduled(path)}
    published_then = {
        path.stem: _scheduled(path) for path in before if "start_post_metrics" in _scheduled(path)
    }
    assert published_now and set(published_now) == set(published_then)
    for stem, activities in published_now.items():
        assert activities.index("fetch_permalink") < activities.index("start_post_metrics"), stem
        assert activities.index("start_post_metrics") < activities.index("finish"), stem
    assert all(
        activities.index("start_post_metrics") > activities.index("finish")
        for activities in published_then.values()
    )


def test_both_sides_of_the_permalink_with_publish_patch_are_recorded() -> None:
    """Every current run that held its call takes the patch before its publish time; those that published have
    their permalink from the publish's answer, and fetch it only when that answer is not theirs (an unclear
    publish settled by reading the container). Recorded just before it, every published run fetched it."""
    held_now = {path.stem for path in CURRENT if _HOLD_PATCH in _patches(path)}
    assert {path.stem for path in CURRENT if _PERMALINK_WITH_PUBLISH_PATCH in _patches(path)} == held_now
    before = sorted(BEFORE_PERMALINK_WITH_PUBLISH.glob("*.json"))
    assert {path.stem for path in before} == {path.stem for path in CURRENT} - _ADDED_WITH_INSIGHTS_OWN_RUN
    assert all(_PERMALINK_WITH_PUBLISH_PATCH not in _patches(path) for path in before)
    published = {path.stem for path in CURRENT if _ended_published(path)}
    fetched_now = {path.stem for path in CURRENT if "fetch_permalink" in _scheduled(path)}
    assert fetched_now == {"published_but_response_lost", "published_despite_publish_error"}
    assert published and {path.stem for path in before if "fetch_permalink" in _scheduled(path)} == published


def test_both_sides_of_the_local_steps_patch_are_recorded() -> None:
    """Every current run that held its call takes the patch before its publish time. Its database steps run as
    local activities (markers, no activity task): marking it publishing as it wakes (again after a reschedule
    during the hold), and, once published, the insights' start and the ending; nothing else runs locally (a
    cancelled or failed run's ending is still an activity). Recorded just before it, the same runs scheduled
    them all through the server, and still replay. (The runs of then are those of before-insights-ahead/: the
    runs of today start the insights earlier, test below.)"""
    held_now = {path.stem for path in CURRENT if _HOLD_PATCH in _patches(path)}
    assert {path.stem for path in CURRENT if _LOCAL_STEPS_PATCH in _patches(path)} == held_now
    then = sorted(BEFORE_INSIGHTS_AHEAD.glob("*.json"))
    assert {path.stem for path in then if _LOCAL_STEPS_PATCH in _patches(path)} == (
        held_now - _ADDED_WITH_INSIGHTS_OWN_RUN
    )
    published = {path.stem for path in then if _ended_published(path)}
    assert published and published <= held_now
    for path in then:
        local = _scheduled(path, local=True)
        through_server = _scheduled(path, local=False)
        if path.stem in published:
            wakes = 2 if path.stem == "rescheduled_during_hold" else 1
            assert local == ["begin_publishing"] * wakes + ["start_post_metrics", "finish"], path.stem
            assert not {"begin_publishing", "start_post_metrics", "finish"} & set(through_server), path.stem
        else:
            assert set(local) <= {"begin_publishing"}, path.stem
    cancelled_while_held = BEFORE_INSIGHTS_AHEAD / "cancelled_during_hold.json"
    assert _scheduled(cancelled_while_held, local=True) == ["begin_publishing"]
    assert _scheduled(cancelled_while_held, local=False)[-1] == "finish"
    before = sorted(BEFORE_LOCAL_STEPS.glob("*.json"))
    assert {path.stem for path in before} == {path.stem for path in CURRENT} - _ADDED_WITH_INSIGHTS_OWN_RUN
    assert all(_LOCAL_STEPS_PATCH not in _patches(path) for path in before)
    assert all(_scheduled(path, local=True) == [] for path in before)
    assert {
        path.stem for path in before if "start_post_metrics" in _scheduled(path, local=False)
    } == published
    assert {path.stem for path in before if "begin_publishing" in _scheduled(path, local=False)} >= published


def test_only_an_unclear_publish_left_finished_records_the_prompt_recheck_patch() -> None:
    """The container re-read within seconds and concluded after the commit window; the run recorded with four
    re-reads 30 s apart still replays (before-prompt-publish-recheck/)."""
    with_marker = {
        str(path.relative_to(HISTORY_DIR))
        for path in PATCHED_BEFORE
        if _PROMPT_RECHECK_PATCH in _patches(path)
    }
    assert with_marker == {"republished_same_container_after_unknown_outcome.json"}
    before = (
        HISTORY_DIR
        / "before-prompt-publish-recheck"
        / "republished_same_container_after_unknown_outcome.json"
    )
    assert before.exists() and _PROMPT_RECHECK_PATCH not in _patches(before)


@pytest.mark.parametrize("path", HISTORIES, ids=[str(path.relative_to(HISTORY_DIR)) for path in HISTORIES])
async def test_history_replays_with_current_code(path: Path) -> None:
    replayer = Replayer(workflows=[ScheduledPostWorkflow], data_converter=DATA_CONVERTER)
    await replayer.replay_workflow(_history(path))


# A stand-in for a careless edit: the same workflow type with one more durable step before the real work.
@workflow.defn(name="ScheduledPostWorkflow", sandboxed=False)
class _EditedWithoutPatch(ScheduledPostWorkflow):
    @workflow.run
    async def run(self, request: ScheduledPostInput) -> ScheduledPostResult:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(request)


@workflow.defn(name="ScheduledPostWorkflow", sandboxed=False)
class _EditedBehindPatch(ScheduledPostWorkflow):
    @workflow.run
    async def run(self, request: ScheduledPostInput) -> ScheduledPostResult:
        if workflow.patched("pause-before-start"):
            await workflow.sleep(timedelta(seconds=1))
        return await super().run(request)


async def test_an_unpatched_change_fails_replay() -> None:
    replayer = Replayer(workflows=[_EditedWithoutPatch], data_converter=DATA_CONVERTER)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(HISTORIES[0]))


async def test_the_same_change_behind_patched_replays() -> None:
    replayer = Replayer(workflows=[_EditedBehindPatch], data_converter=DATA_CONVERTER)
    for path in HISTORIES:
        await replayer.replay_workflow(_history(path))


def _decoded_text(path: Path) -> str:
    """The history with every payload decoded: payload data is base64, where a plain text search sees nothing."""
    parts = [path.read_text()]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                parts.append(base64.b64decode(data).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(parts[0]))
    return "\n".join(parts)


def test_histories_hold_no_secrets() -> None:
    # The tokens the sandbox and the tests use, and anything shaped like a Graph token or a presigned URL. Graph
    # tokens begin with capitals: matched regardless of case, a hex host name in a sticky queue's name (this
    # machine's is "vm-9040b89eaa734ff9...") looks like one.
    forbidden = re.compile(
        r"(?i:sandbox-demo-token|access_token|X-Amz-Signature)|EAA[A-Za-z0-9]{20,}|IGQ[A-Za-z0-9_-]{20,}"
    )
    assert forbidden.search("EAAB" + "x1" * 12) and forbidden.search("...X-AMZ-SIGNATURE=...")
    for path in HISTORIES:
        text = _decoded_text(path)
        assert "publish_at" in text, "payloads were not decoded"  # the scan must see inside payloads
        assert not forbidden.search(text), f"{path.name} contains a secret-looking value"


def test_both_sides_of_the_spread_wake_patch_are_recorded() -> None:
    """Every current run that held its call spreads its wake-up by its rank (the marker); the held runs recorded
    before it woke by the count due together, and still replay."""
    before = sorted(BEFORE_SPREAD_WAKE.glob("*.json"))
    assert before and all(_SPREAD_WAKE_PATCH not in _patches(path) for path in before)
    assert all(_HOLD_PATCH in _patches(path) for path in before)
    held_now = {path.stem for path in CURRENT if _HOLD_PATCH in _patches(path)}
    assert {path.stem for path in before} <= held_now
    assert {path.stem for path in CURRENT if _SPREAD_WAKE_PATCH in _patches(path)} == held_now
