"""ScheduledPostWorkflow: one per post; sleeps until its publish time, then publishes it exactly once.

Workflow code only: deterministic, no I/O. Everything that touches the world is an activity (activities/), and
any change that alters the commands a recorded history expects goes behind ``workflow.patched``.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutError
from temporalio.exceptions import CancelledError as ActivityCancelled
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from chronogram.contracts import (
        DEFAULT_MAX_LATENESS_SECONDS,
        DELAYED_SINCE,
        ERROR_CODE,
        NON_RETRYABLE_ERRORS,
        POST_STATUS,
        PREPARATION_METRIC,
        PUBLISH_AT,
        SCHEDULED_POST_WORKFLOW,
        SIGNAL_INPUTS,
        AccountSignal,
        CancellationRequester,
        CancelRequest,
        ContainerCheck,
        ContainerRef,
        ContainerStatusCode,
        CreateContainerInput,
        ErrorType,
        EventKind,
        EventRecord,
        FinishInput,
        InstagramInterface,
        MediaInterface,
        MediaRef,
        PostMetricsInput,
        PostMetricsStarterInterface,
        PostRef,
        PostSignal,
        PostState,
        PostStatus,
        PostStoreInterface,
        PostType,
        PublishDelay,
        PublishInput,
        PublishNowRequest,
        PublishOutcome,
        PublishPlan,
        PublishResult,
        PublishStep,
        ReconcileInput,
        ReconcileResult,
        RefusedSignal,
        RescheduleRequest,
        RunHistoryInterface,
        RunRef,
        ScheduledPostInput,
        ScheduledPostResult,
        Service,
        SignalOutcome,
        SignalOutcomeQuery,
        SignalRefusal,
        SignalVerdict,
        cap_error_text,
    )

# Retry policies follow the side effect of each call.
_READ_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_DATABASE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))
_NEVER_RETRY_TYPES: list[str] = list(NON_RETRYABLE_ERRORS)
_CREATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=_NEVER_RETRY_TYPES,
)
# Container polling rides on activity retries, which are not written to the history: a 10-minute wait costs
# the same few events as an instant one.
_POLL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=1.5,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=_NEVER_RETRY_TYPES,
)
_CONTAINER_WAIT_BUDGET = timedelta(minutes=10)
_CONTAINER_WAIT_ROUNDS = 3
_CONTAINER_WAIT_PAUSE = timedelta(minutes=5)
# media_publish is irreversible: one attempt per call, and every unclear outcome is settled by reading the container.
_PUBLISH_ONCE = RetryPolicy(maximum_attempts=1)
_MAX_PUBLISH_CALLS = 3
_MAX_CONTAINER_SETS = 3
_RECONCILE_RECHECKS = 4
_RECONCILE_PAUSE = timedelta(seconds=30)
# An unclear media_publish is settled sooner: the container is read at once, then after 2, 4, 8 and 16 s, and a
# container still FINISHED once the commit window has passed since the call failed is taken as not published
# (then the same container is published again; never a new one). The window is the low end of Meta's documented
# "retry within 30 s to 2 min" after a failed media_publish (reference section 8.4), the wait this project already
# gives a throttled publish; a PUBLISHED read ends the check as soon as it is seen. Earlier code re-read four
# times 30 s apart (two minutes) whatever the reads said.
_PROMPT_RECHECK_PATCH = "prompt-publish-recheck"
_COMMIT_WINDOW = timedelta(seconds=30)
_FIRST_RECHECK = timedelta(seconds=2)
_LONGEST_RECHECK = timedelta(seconds=16)
_QUOTA_RECHECK = timedelta(minutes=15)
# Containers live 24 h and videos can take minutes to process: prepared this long before the publish time.
_PREPARE_AHEAD = timedelta(minutes=10)
# Instagram activities heartbeat every 2 s: a worker that dies mid-call is replaced within this, not minutes.
_HEARTBEAT = timedelta(seconds=10)
# Media preparation heartbeats once per media (an image is rendered in a few seconds).
_PREPARE_HEARTBEAT = timedelta(seconds=30)
# Under load a Temporal timer fires up to about a second late (measured in bench/README.md). So the last wait ends
# this much early; marking the post publishing and checking the quota happen meanwhile, and the publish activity
# holds media_publish until publish_at on the worker's clock. The same patch fetches the permalink and posts the
# first comment concurrently. Posts recorded asleep before it keep the old commands.
_WAKE_EARLY = timedelta(seconds=3)
_WAKE_EARLY_PATCH = "wake-early-for-punctual-publish"
_FINISHING_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=_NEVER_RETRY_TYPES)
# A signal with no input or input of the wrong shape (typed by hand) is refused and recorded as an event: the
# recording is a command that earlier code never issued (it failed the workflow task instead).
_MALFORMED_SIGNAL_PATCH = "refuse-malformed-signals"
# A container still processing when a polling round's budget runs out waits for the next round (earlier code
# failed the post after the first round).
_CONTAINER_ROUNDS_PATCH = "container-wait-rounds"
# Publish-now moves the PublishAt search attribute to the moment publishing began.
_PUBLISH_NOW_TIME_PATCH = "publish-now-moves-publish-at"
# A run that ends failed says why in the ErrorCode search attribute (operators list failures by it).
_ERROR_CODE_PATCH = "error-code-search-attribute"
# How many signal requests' outcomes a run keeps for the sender to read back (a post gets a handful).
_KEPT_SIGNAL_OUTCOMES = 100
# Errors after which the publish is documented as not done, and no retry can make it succeed.
_FINAL_PUBLISH_ERRORS = (ErrorType.GRAPH_AUTH, ErrorType.GRAPH_INVALID_REQUEST, ErrorType.INVALID_MEDIA)

# An authentication or permission error (the account's token expired or was revoked, a permission withdrawn)
# makes the post wait for its account to be reconnected, until its deadline, instead of failing it at once: the
# activity has marked the account needs_reconnect, and reconnecting it signals account_reconnected.
_RECONNECT_PATCH = "wait-for-reconnect"

# A cancellation requested through Temporal (the Web UI's "Request Cancellation", `temporal workflow cancel`)
# while the post is scheduled cancels it like the API's cancel: the post ends cancelled, with an event naming who
# asked. Once publishing has begun the run is cancelled as before, and the reconciler hands the post to a fresh run.
_TEMPORAL_CANCEL_PATCH = "temporal-cancellation-cancels-the-post"

# A published post's insights are read at +1 h, +24 h and +7 d by a PostMetricsWorkflow of its own, started by an
# activity once the post is finished, so that this run still ends at publish (issue 17).
_POST_METRICS_PATCH = "post-metrics"
# Since issue 18: the insights workflow is started beside the permalink and first comment calls, one round of
# workflow tasks earlier, and the patch is taken before the publish time (its marker, and the search attribute
# update every patch brings, no longer fall in a burst's busiest seconds). A burst's posts finish in three workflow
# tasks after their publish call, not four.
_INSIGHTS_WITH_FINISHING_PATCH = "start-insights-with-the-finishing-calls"
# Since issue 18: the publish activity reads the new media's permalink right after its call (PublishResult.permalink)
# and fetch_permalink runs only when it came back without one: one activity fewer per post in a burst's busiest
# seconds. Taken with _INSIGHTS_WITH_FINISHING_PATCH, before the publish time; decided on the recorded result.
_PERMALINK_WITH_PUBLISH_PATCH = "permalink-with-the-publish"
# Since issue 18: the held publish's database steps run as local activities, inside the workflow task that asks
# for them: marking the post publishing as it wakes (the quota check is scheduled in the same task), and, once it
# is published, the insights' start and its ending. A burst's posts wake in two workflow tasks, not three, and
# finish in two after their publish call, not three, with three activity tasks fewer each through the server's
# queues. All are short and retried as before (on the worker, the workflow task kept open meanwhile). Taken with
# the two patches above, before the publish time.
_LOCAL_STEPS_PATCH = "short-steps-as-local-activities"
# Since issue 18: a held publish starts the post's insights workflow as it begins publishing, before the publish
# time, for that time (a local activity beside the marking as publishing, in the same workflow task); after the
# call nothing is left to start, unless the post went out more than _INSIGHTS_ON_TIME from that time (rescheduled
# or moved during the hold, or delayed by an outage): then the insights are started anew for the true time
# (restart_post_metrics). A workflow start was about a third of Temporal's work for a post after its publish time in
# a burst (bench/README.md). Taken with the three patches above, before the publish time.
_INSIGHTS_AHEAD_PATCH = "start-insights-ahead"
_INSIGHTS_ON_TIME = timedelta(minutes=1)
# Since issue 18: the insights started ahead belong to this run alone. The start ahead replaces any left by an
# earlier run of the post (a failed post retried, whose run had started them for its own time, would otherwise have
# found them started and kept their timing, or been refused a start once they had ended), and so does a start after
# the call when the one ahead failed; a run that ends cancelled or failed after starting them withdraws them
# (withdraw_post_metrics: terminated with the reason, if still asleep) instead of leaving them asleep for an hour
# with nothing to read. Taken with the patches above, before the publish time.
_INSIGHTS_OWN_RUN_PATCH = "insights-ahead-belong-to-the-run"
# Starting the insights ahead is tried briefly (the workflow task waits for it): failing, they start after the call.
_INSIGHTS_AHEAD_RETRY = RetryPolicy(maximum_attempts=2, non_retryable_error_types=_NEVER_RETRY_TYPES)
_SHORT_STEP_TIMEOUT = timedelta(seconds=30)

# --- Lateness deadline (issue 12), behind one patch taken as preparation begins ---------------------------------
# Transient and throttled failures of Instagram, storage and the database delay a post until its deadline,
# publish_at + max lateness, instead of failing it after a count of attempts. Each call first runs on its usual
# retry policy; when that runs out the post is marked delayed (an event, its step, the DelayedSince search
# attribute) and the same call goes on with the patient policy below until the deadline. Those retries are the
# server's, not history events: a day-long outage costs a post a handful of events.
_DEADLINE_PATCH = "publish-deadline"
_PATIENT_INTERVAL = timedelta(seconds=15)
# 0 lateness means "on time or not at all": on time within this much.
_ON_TIME_GRACE = timedelta(minutes=1)
# With a deadline, a failure before media_publish is sent is retried by the server (the activity re-reads the
# container, and refuses to send if an earlier attempt of it sent the call); everything the call answered goes
# back to the workflow.
_PUBLISH_TIMEOUT = timedelta(seconds=120)
_PUBLISH_BEFORE_CALL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=6,
    non_retryable_error_types=[
        *_NEVER_RETRY_TYPES,
        ErrorType.OUTCOME_UNKNOWN,
        ErrorType.CONTAINER_NOT_READY,
        ErrorType.PUBLISH_QUOTA_REACHED,
        ErrorType.PUBLISH_DEADLINE_PASSED,
    ],
)
_COMMENT_RETRY = RetryPolicy(
    maximum_interval=timedelta(minutes=1), maximum_attempts=10, non_retryable_error_types=_NEVER_RETRY_TYPES
)

# --- Publishing on the second under a burst (issue 18), behind one patch taken as the final wait begins ------------
# A post is marked publishing and its quota checked ahead of its publish time, by a lead that grows with the posts
# due in the same second (counted when its plan is read): a burst's workflow tasks queue for seconds, and all of
# them must be done before the instant. The publish activity then holds media_publish until publish_at on the
# worker's clock. While the call is held, the post shows publishing (step "publishing at the publish time") and
# cancel, reschedule and publish-now are still accepted: the held activity is cancelled (it learns of it by its
# heartbeat, the last one just before the instant) and, as nothing was sent, a cancel ends the post cancelled
# (publishing -> cancelled, one event), a reschedule puts it back to scheduled at its new time, publish-now sends
# the call at once. A signal that reaches the activity only after the call went out came too late: it is refused,
# and recorded as such.
_HOLD_PATCH = "hold-publish-call-until-publish-time"
_HOLD_MIN_LEAD = timedelta(seconds=10)
_HOLD_LEAD_PER_POST = timedelta(milliseconds=20)
_HOLD_MAX_LEAD = timedelta(seconds=60)
# A burst's wake-ups one after the other (see _hold_lead), at the pace the plan gives (a worker setting); plans read
# before the pace was a setting: 40 posts a second, at most 60 s ahead.
_SPREAD_WAKE_PATCH = "spread-burst-wake-ups"
_SPREAD_WAKE_PER_POST = timedelta(milliseconds=25)

_T = TypeVar("_T")
_S = TypeVar("_S")
_I = TypeVar("_I")
# A call's retry policy and its time budget (schedule-to-close), as the deadline logic sets them.
_Call = Callable[[RetryPolicy, timedelta | None], Awaitable[_T]]


async def _false() -> bool:
    """Nothing to wait for, in a gather: no first comment to post (none pending)."""
    return False


def _prompt(policy: RetryPolicy) -> RetryPolicy:
    """A call's first retries with a deadline: about half a minute of them, never more than _PATIENT_INTERVAL
    apart, before the post is marked delayed (the earlier policies waited up to a minute between attempts)."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=_PATIENT_INTERVAL,
        maximum_attempts=6,
        non_retryable_error_types=policy.non_retryable_error_types,
    )


def _patient(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` without a maximum of attempts, at most _PATIENT_INTERVAL apart (longer when a throttle says so):
    the service is probed at a bounded rate and used again within that interval of its recovery."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=_PATIENT_INTERVAL,
        non_retryable_error_types=policy.non_retryable_error_types,
    )


def _retry_hint(error: ActivityError) -> timedelta | None:
    """How long the failed call asked to wait (a throttle's Retry-After or Meta's estimated time to regain
    access), as the activity passed it on."""
    cause = error.cause
    return cause.next_retry_delay if isinstance(cause, ApplicationError) else None


def _gave_up_retrying(error: ActivityError) -> bool:
    """The activity's policy ran out of attempts or time on a failure it would have retried (transient, throttled,
    a timeout): not a failure of the post, only a delay."""
    return error.retry_state in (RetryState.MAXIMUM_ATTEMPTS_REACHED, RetryState.TIMEOUT)


class _Cancelled(Exception):
    """A cancellation arrived while the post waited out an outage during its preparation."""


class _PostFailed(Exception):
    def __init__(self, code: ErrorType, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = cap_error_text(message)


class _HoldBroken(Exception):
    """The held publish activity was cancelled before it sent its call: a signal accepted during the hold."""


class _NeedNewContainer(Exception):
    """The container can no longer be published (ERROR or EXPIRED) and was never published: make another."""


def _error_type(error: BaseException) -> ErrorType:
    cause = error.cause if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError):
        return ErrorType(cause.type or ErrorType.UNEXPECTED)  # an unknown type reads as UNEXPECTED
    if isinstance(cause, TimeoutError):
        return ErrorType.TIMEOUT
    return ErrorType.UNEXPECTED


def _error_message(error: BaseException) -> str:
    cause = error.cause if isinstance(error, ActivityError) else error
    return cap_error_text(str(cause or error))


@workflow.defn(name=SCHEDULED_POST_WORKFLOW)
class ScheduledPostWorkflow:
    """Waits on a durable timer until ``publish_at`` (months are normal), then publishes through activities.

    Signals: ``cancel``, ``reschedule``, ``publish_now``; once publishing has begun they are refused, and the
    refusal is recorded (query ``state`` and the post's events), as is a signal whose input is missing or
    malformed. A signal's ``request_id`` lets its sender read what became of it (query ``signal_outcome``). Ends Completed when published or cancelled, and
    Failed, with a reason a user can act on, when the post cannot be published.
    """

    @workflow.init
    def __init__(self, request: ScheduledPostInput) -> None:
        self._state = PostState(
            post_id=request.post_id,
            status=PostStatus.SCHEDULED,
            publish_at=request.publish_at,
            step=PublishStep.SCHEDULED,
        )
        self._wake = False
        self._cancel: CancelRequest | None = None
        self._publish_now = False
        # The publish time a publish-now set after the post began publishing (its call held), for its ending.
        self._moved_while_held: datetime | None = None
        self._event_sequence = 0
        self._signal_outcomes: dict[str, SignalOutcome] = {}
        self._publish_not_before: datetime | None = None
        self._patched_for_punctuality = False
        self._deadline_mode = False
        self._lateness: timedelta | None = None
        self._step_before_delay = PublishStep.SCHEDULED
        # How many times the account was reconnected during this run (signal account_reconnected).
        self._reconnects = 0
        # The held publish (_HOLD_PATCH): until when its call is held, and the signal accepted meanwhile.
        self._hold_mode = False
        self._insights_with_finishing = False
        self._permalink_with_publish = False
        self._local_steps = False
        self._insights_ahead = False
        self._insights_own_run = False
        # The publish time the insights workflow was started ahead for (_INSIGHTS_AHEAD_PATCH), once it was.
        self._insights_started_for: datetime | None = None
        # The permalink the publish activity read after its call (PublishResult.permalink), if it could.
        self._published_permalink: str | None = None
        self._holding_until: datetime | None = None
        self._hold_broken_by: tuple[PostSignal, str] | None = None
        self._publish_task_queue: str | None = None
        # When Instagram answered the publish call that made the post live (PublishResult.published_at).
        self._went_live_at: datetime | None = None

    # --- messages --------------------------------------------------------------------------------------------

    @workflow.query
    def state(self) -> PostState:
        return self._state

    @workflow.query
    def signal_outcome(self, request: SignalOutcomeQuery) -> SignalOutcome:
        return self._signal_outcomes.get(request.request_id) or SignalOutcome(
            request_id=request.request_id, verdict=SignalVerdict.UNKNOWN, status=self._state.status
        )

    # Each signal takes its input as it came (any number of values): a missing or malformed input is then the
    # workflow's to refuse and record, where a typed parameter would fail the workflow task, again and again.

    @workflow.signal(name=PostSignal.CANCEL)
    async def cancel(self, *request: object) -> None:
        accepted = await self._receive(PostSignal.CANCEL, request)
        if not isinstance(accepted, CancelRequest):
            return
        self._cancel = accepted
        self._wake = True

    @workflow.signal(name=PostSignal.RESCHEDULE)
    async def reschedule(self, *request: object) -> None:
        accepted = await self._receive(PostSignal.RESCHEDULE, request)
        if not isinstance(accepted, RescheduleRequest):
            return
        previous = self._state.publish_at
        self._state.publish_at = accepted.publish_at
        self._wake = True
        workflow.upsert_search_attributes([PUBLISH_AT.value_set(accepted.publish_at)])
        self._show_details()
        await self._record(
            EventKind.TRANSITION,
            f"rescheduled from {_iso(previous)} to {_iso(accepted.publish_at)}",
            publish_at=accepted.publish_at,
        )

    @workflow.signal(name=PostSignal.PUBLISH_NOW)
    async def publish_now(self, *request: object) -> None:
        if isinstance(await self._receive(PostSignal.PUBLISH_NOW, request), PublishNowRequest):
            self._publish_now = True
            self._wake = True

    @workflow.signal(name=AccountSignal.ACCOUNT_RECONNECTED)
    def account_reconnected(self, *_request: object) -> None:
        # Sent by the API to the account's open posts once it is reconnected; any input will do.
        self._reconnects += 1

    async def _receive(
        self, signal: PostSignal, values: tuple[object, ...]
    ) -> CancelRequest | RescheduleRequest | PublishNowRequest | None:
        """The signal's request if it is accepted; else None, with the refusal recorded. The outcome is kept
        before the first await, so that a query sent after the signal always sees it."""
        request = _decode_signal(signal, values)
        if request is None:
            self._refuse(signal, "", SignalRefusal.MALFORMED_INPUT)
            if workflow.patched(_MALFORMED_SIGNAL_PATCH):
                expected = SIGNAL_INPUTS[signal].__name__
                await self._record(EventKind.ERROR, f"{signal.value} refused: its input is not a {expected}")
            return None
        # "Scheduled" ends the moment the final wait ends, before the publishing activity is even scheduled; a
        # held publish call stays open to signals until its publish time.
        open_to_signals = self._state.status is PostStatus.SCHEDULED or self._call_held()
        if open_to_signals and self._cancel is None:
            self._keep_outcome(request.request_id, SignalVerdict.ACCEPTED)
            if self._call_held():
                self._hold_broken_by = (signal, request.request_id)
            return request
        refusal = SignalRefusal.BEING_CANCELLED if open_to_signals else SignalRefusal.NOT_SCHEDULED
        self._refuse(signal, request.request_id, refusal)
        why = (
            "is being cancelled"
            if refusal is SignalRefusal.BEING_CANCELLED
            else f"is already {self._state.status.value}"
        )
        await self._record(EventKind.ERROR, f"{signal.value} refused: the post {why}")
        return None

    def _refuse(self, signal: PostSignal, request_id: str, refusal: SignalRefusal) -> None:
        self._state.refused_signals.append(
            RefusedSignal(
                signal=signal, status=self._state.status, received_at=workflow.now(), reason=refusal
            )
        )
        self._keep_outcome(request_id, SignalVerdict.REFUSED, refusal)

    def _keep_outcome(
        self, request_id: str, verdict: SignalVerdict, refusal: SignalRefusal | None = None
    ) -> None:
        if not request_id:
            return  # typed by hand: nobody will ask
        if len(self._signal_outcomes) >= _KEPT_SIGNAL_OUTCOMES:
            del self._signal_outcomes[next(iter(self._signal_outcomes))]
        self._signal_outcomes[request_id] = SignalOutcome(
            request_id=request_id, verdict=verdict, status=self._state.status, refusal=refusal
        )

    # --- main line -------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: ScheduledPostInput) -> ScheduledPostResult:
        self._show_details()
        try:
            result = await self._schedule_and_publish()
        except asyncio.CancelledError:
            if self._state.status is not PostStatus.SCHEDULED or not workflow.patched(_TEMPORAL_CANCEL_PATCH):
                raise
            result = await self._finish_cancelled(await self._temporal_cancellation())
        except _PostFailed as failure:
            await self._finish_failed(failure)
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(failure.message, type=failure.code, non_retryable=True) from None
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _schedule_and_publish(self) -> ScheduledPostResult:
        # Media checks and Instagram's processing happen ahead of time, so that at publish_at only the
        # media_publish call is left: posts go out on the second, and a bad media fails the post early.
        await self._wait_until(lambda: self._state.publish_at - _PREPARE_AHEAD)
        if cancel := self._cancel_request():
            return await self._finish_cancelled(cancel)
        self._deadline_mode = workflow.patched(_DEADLINE_PATCH)
        try:
            plan, container_id = await self._prepare()
        except _Cancelled:
            return await self._finish_cancelled(self._cancel or CancelRequest())
        except ActivityError as error:
            await self._begin_publishing("preparing the media failed")
            raise _PostFailed(_error_type(error), _error_message(error)) from None
        except _PostFailed:
            await self._begin_publishing("preparing the media failed")
            raise
        self._set_step(PublishStep.WAITING)
        self._patched_for_punctuality = workflow.patched(_WAKE_EARLY_PATCH)
        self._hold_mode = (
            self._patched_for_punctuality and self._deadline_mode and workflow.patched(_HOLD_PATCH)
        )
        if self._hold_mode:
            self._insights_with_finishing = workflow.patched(_INSIGHTS_WITH_FINISHING_PATCH)
            self._permalink_with_publish = workflow.patched(_PERMALINK_WITH_PUBLISH_PATCH)
            self._local_steps = workflow.patched(_LOCAL_STEPS_PATCH)
            self._insights_ahead = self._local_steps and workflow.patched(_INSIGHTS_AHEAD_PATCH)
            self._insights_own_run = self._insights_ahead and workflow.patched(_INSIGHTS_OWN_RUN_PATCH)
            try:
                media_id = await self._publish_held(plan, container_id)
            except _Cancelled:
                return await self._finish_cancelled(self._cancel or CancelRequest())
            except ActivityError as error:
                raise _PostFailed(_error_type(error), _error_message(error)) from None
        else:
            lead = _WAKE_EARLY if self._patched_for_punctuality else timedelta(0)
            await self._wait_until(lambda: self._state.publish_at - lead)
            if cancel := self._cancel_request():  # accepted while the media was being prepared
                return await self._finish_cancelled(cancel)
            if lead and not self._publish_now:
                self._publish_not_before = self._state.publish_at
            if self._publish_now:
                await self._begin_publishing("publish-now requested", publish_at=self._publish_at_now())
            else:
                await self._begin_publishing("publish time reached")
            try:
                media_id = await self._publish_exactly_once(plan, container_id)
            except ActivityError as error:
                raise _PostFailed(_error_type(error), _error_message(error)) from None
        published_at = workflow.now()
        if self._deadline_mode:
            result = await self._finish_published_until_deadline(plan, media_id, published_at)
        else:
            result = await self._finish_published(plan, media_id)
        if media_id and not self._insights_with_finishing and workflow.patched(_POST_METRICS_PATCH):
            await self._start_post_metrics(published_at)
        return result

    async def _start_post_metrics(self, published_at: datetime) -> None:
        # The post is published all the same; it only goes without insights.
        if self._insights_own_run:
            # Nothing this run started: whatever an earlier run of the post left is replaced.
            await self._restart_post_metrics(published_at, "start reading its insights")
            return
        await self._insights_step(
            PostMetricsStarterInterface.start_post_metrics,
            published_at,
            retry_policy=_FINISHING_RETRY,
            summary="start reading its insights",
            local=self._local_steps,
        )

    async def _start_post_metrics_ahead(self) -> None:
        """The insights' start for the post's planned time, as it begins publishing (_INSIGHTS_AHEAD_PATCH); failing,
        they are started once the post is published instead. Under _INSIGHTS_OWN_RUN_PATCH it replaces any that an
        earlier run of the post left."""
        planned = self._state.publish_at
        if await self._insights_step(
            PostMetricsStarterInterface.restart_post_metrics
            if self._insights_own_run
            else PostMetricsStarterInterface.start_post_metrics,
            planned,
            retry_policy=_INSIGHTS_AHEAD_RETRY,
            summary="start reading its insights, ahead",
            local=True,
        ):
            self._insights_started_for = planned

    async def _restart_post_metrics(self, published_at: datetime, summary: str) -> None:
        await self._insights_step(
            PostMetricsStarterInterface.restart_post_metrics,
            published_at,
            retry_policy=_FINISHING_RETRY,
            summary=summary,
            local=True,
        )

    async def _withdraw_post_metrics(self) -> None:
        """The post ended without going out: the insights this run started ahead have nothing to read
        (_INSIGHTS_OWN_RUN_PATCH). Best effort: left, they find nothing at their first reading, and end."""
        if not self._insights_own_run or self._insights_started_for is None:
            return
        try:
            await self._short_step(
                PostMetricsStarterInterface.withdraw_post_metrics,
                PostRef(self._state.post_id),
                retry_policy=_INSIGHTS_AHEAD_RETRY,
                summary="withdraw its insights' reading: it did not go out",
                local=True,
            )
        except ActivityError:
            return
        self._insights_started_for = None

    async def _settle_post_metrics(self, published_at: datetime) -> None:
        """After the call: the insights' start, unless it was started ahead for (about) this time; started ahead for
        another time, they start anew for this one (failing that, the post is live all the same; its insights are
        read at the planned time's offsets, if at all)."""
        planned = self._insights_started_for
        if planned is None:
            await self._start_post_metrics(published_at)
        elif abs(published_at - planned) > _INSIGHTS_ON_TIME:
            await self._restart_post_metrics(
                published_at, "start reading its insights again, for when it went out"
            )

    async def _insights_step(
        self,
        step: Callable[[_S, PostMetricsInput], Any],
        published_at: datetime,
        *,
        retry_policy: RetryPolicy,
        summary: str,
        local: bool,
    ) -> bool:
        """One start of the post's insights, best effort: whether it was done."""
        try:
            await self._short_step(
                step,
                PostMetricsInput(self._state.post_id, published_at),
                retry_policy=retry_policy,
                summary=summary,
                local=local,
            )
        except ActivityError:
            return False
        return True

    async def _temporal_cancellation(self) -> CancelRequest:
        info = workflow.info()
        try:
            requester: CancellationRequester = await workflow.execute_activity_method(
                RunHistoryInterface.who_cancelled,
                RunRef(workflow_id=info.workflow_id, run_id=info.run_id),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="who asked for the cancellation?",
            )
        except ActivityError:
            requester = CancellationRequester()
        who = f" by {requester.identity}" if requester.identity else ""
        why = f" ({requester.cause})" if requester.cause else ""
        return CancelRequest(reason=f"cancelled in Temporal{who}{why}")

    # --- the held publish (_HOLD_PATCH) ----------------------------------------------------------------------

    def _hold_lead(self, plan: PublishPlan) -> timedelta:
        """How long before publish_at the post begins publishing: enough for the workflow tasks of every post due
        in the same second to be done by then, from the counts in the plan (an activity result, so the same on
        replay). Spread (_SPREAD_WAKE_PATCH): a fixed floor and more per post due together created before it, so
        that a burst's posts wake one after the other at a pace the worker keeps, the first created last. Before
        it, all by the count due together: posts whose plans were read late woke at the same instant, their
        workflow tasks outlasted the sticky queue's timeout and went to full replays on the shared queue."""
        longest = _HOLD_MAX_LEAD
        if workflow.patched(_SPREAD_WAKE_PATCH):
            spacing = (
                _SPREAD_WAKE_PER_POST
                if plan.wake_spacing_ms is None
                else timedelta(milliseconds=plan.wake_spacing_ms)
            )
            if plan.wake_lead_max_seconds is not None:
                longest = timedelta(seconds=plan.wake_lead_max_seconds)
            grown = _HOLD_MIN_LEAD + spacing * plan.due_before
        else:
            grown = _HOLD_MIN_LEAD + _HOLD_LEAD_PER_POST * max(plan.due_together - 1, 0)
        return min(grown, longest)

    async def _publish_held(self, plan: PublishPlan, container_id: str) -> str | None:
        """Marks the post publishing and checks its quota a lead ahead of publish_at, then publishes with the call
        held until publish_at. A signal accepted during the hold withdraws the held call: cancel raises
        _Cancelled, publish-now publishes at once, a reschedule puts the post back to scheduled and waits again."""
        lead = self._hold_lead(plan)
        self._publish_task_queue = plan.publish_task_queue
        while True:
            await self._wait_until(lambda: self._state.publish_at - lead)
            if self._cancel_request():
                raise _Cancelled()
            if self._state.status is PostStatus.SCHEDULED:
                if self._publish_now:
                    begin = self._begin_publishing("publish-now requested", publish_at=self._publish_at_now())
                else:
                    begin = self._begin_publishing(
                        f"publishing at {_iso(self._state.publish_at)}: the call is held until then"
                    )
                if self._insights_ahead and self._insights_started_for is None:
                    await asyncio.gather(begin, self._start_post_metrics_ahead())
                else:
                    await begin
            elif self._publish_now:
                # Already publishing: the database learns the moved time with the ending.
                self._moved_while_held = self._publish_at_now()
            self._publish_not_before = None if self._publish_now else self._state.publish_at
            try:
                return await self._publish_exactly_once(plan, container_id)
            except _HoldBroken:
                pass
            if self._cancel_request() is None and not self._publish_now:
                await self._release_hold()

    def _call_held(self) -> bool:
        return self._holding_until is not None and workflow.now() < self._holding_until

    def _held(self, call: _Call[PublishResult]) -> _Call[PublishResult]:
        """The publish call, held until publish_at by the activity, and withdrawn if a signal is accepted first."""
        until = self._publish_not_before
        if not self._hold_mode or until is None:
            return call

        def held(policy: RetryPolicy, budget: timedelta | None) -> Awaitable[PublishResult]:
            return self._run_held(call(policy, budget), until)

        return held

    async def _run_held(self, attempt: Awaitable[PublishResult], until: datetime) -> PublishResult:
        task = asyncio.ensure_future(attempt)
        self._holding_until = until
        self._hold_broken_by = None
        self._set_step(PublishStep.HOLDING)
        try:
            await workflow.wait_condition(lambda: task.done() or self._signal_during_hold() is not None)
        finally:
            self._holding_until = None
        if not task.done():
            # The activity hears of it by its next heartbeat; this waits for its answer (cancelled, or done).
            task.cancel()
        broken_by = self._signal_during_hold()
        try:
            result = await task
        except ActivityError as error:
            if broken_by is not None and isinstance(error.cause, ActivityCancelled):
                raise _HoldBroken() from None
            raise
        self._set_step(PublishStep.PUBLISHING)
        if broken_by is not None:
            await self._came_too_late(broken_by, until)
        return result

    def _signal_during_hold(self) -> tuple[PostSignal, str] | None:
        return self._hold_broken_by  # read through a call: a signal may have set it during any await

    async def _came_too_late(self, broken_by: tuple[PostSignal, str], held_until: datetime) -> None:
        """A signal accepted during the hold reached the activity only after it had sent its call: the post is
        being published, and the signal is refused after all (its sender reads that back)."""
        signal, request_id = broken_by
        self._hold_broken_by = None
        self._cancel = None
        self._publish_now = False
        self._refuse(signal, request_id, SignalRefusal.NOT_SCHEDULED)
        moved_back = held_until if self._state.publish_at != held_until else None
        if moved_back is not None:
            self._state.publish_at = held_until
            workflow.upsert_search_attributes([PUBLISH_AT.value_set(held_until)])
        await self._record(
            EventKind.ERROR,
            f"{signal.value} came too late: media_publish had been sent at {_iso(held_until)}; the post is "
            "published",
            publish_at=moved_back,
        )

    async def _release_hold(self) -> None:
        """Rescheduled during the hold, its call withdrawn unsent: back to scheduled, to wait for its new time."""
        self._hold_broken_by = None
        self._set_status(PostStatus.SCHEDULED)
        self._set_step(PublishStep.WAITING)
        await workflow.execute_activity_method(
            PostStoreInterface.record_event,
            EventRecord(
                post_id=self._state.post_id,
                kind=EventKind.TRANSITION,
                message=f"scheduled again for {_iso(self._state.publish_at)}: the held publish call was not sent",
                sequence=self._next_sequence(),
                status_from=PostStatus.PUBLISHING,
                status_to=PostStatus.SCHEDULED,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_DATABASE_RETRY,
            summary="mark scheduled again",
        )

    def _cancel_request(self) -> CancelRequest | None:
        return self._cancel  # read through a call: a signal may have set it during any await

    async def _wait_until(self, deadline: Callable[[], datetime]) -> None:
        while self._cancel is None and not self._publish_now:
            remaining = deadline() - workflow.now()
            if remaining <= timedelta(0):
                return
            self._wake = False
            try:
                # One durable timer; a reschedule or publish-now wakes the loop, which re-reads the deadline.
                await workflow.wait_condition(
                    lambda: self._wake, timeout=remaining, timeout_summary=f"until {_iso(deadline())}"
                )
            except builtins.TimeoutError:
                pass

    async def _prepare(self) -> tuple[PublishPlan, str]:
        began = workflow.now()
        plan, container_id = await self._prepare_media_and_containers()
        # A metric, not a command: it is not recorded in the history, and replaying emits nothing.
        workflow.metric_meter().create_histogram_timedelta(
            PREPARATION_METRIC,
            description="Time from the start of a post's preparation to its containers being ready",
            unit="duration",
        ).with_additional_attributes({"post_type": plan.post_type.value}).record(workflow.now() - began)
        return plan, container_id

    async def _prepare_media_and_containers(self) -> tuple[PublishPlan, str]:
        self._set_step(PublishStep.PREPARING_MEDIA)
        plan: PublishPlan = await workflow.execute_activity_method(
            PostStoreInterface.load_plan,
            PostRef(self._state.post_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_DATABASE_RETRY,
            summary="load post",
        )
        if self._deadline_mode:
            lateness = plan.max_lateness_seconds
            self._lateness = timedelta(seconds=DEFAULT_MAX_LATENESS_SECONDS if lateness is None else lateness)
        await self._persist(
            Service.STORAGE,
            lambda policy, budget: workflow.execute_activity_method(
                MediaInterface.prepare_media,
                PostRef(self._state.post_id),
                start_to_close_timeout=timedelta(minutes=5),
                schedule_to_close_timeout=budget,
                # It heartbeats before each media: a worker that dies rendering is replaced in seconds, not minutes.
                heartbeat_timeout=_PREPARE_HEARTBEAT if self._deadline_mode else None,
                retry_policy=policy,
                summary=f"validate and render {len(plan.media)} media",
            ),
            RetryPolicy(maximum_attempts=5, non_retryable_error_types=_NEVER_RETRY_TYPES),
        )
        return plan, await self._create_containers(plan)

    def _publish_at_now(self) -> datetime:
        """Publish-now moves the post's time to the moment it goes out, so that lists by date place it there."""
        now = workflow.now()
        self._state.publish_at = now
        if workflow.patched(_PUBLISH_NOW_TIME_PATCH):
            workflow.upsert_search_attributes([PUBLISH_AT.value_set(now)])
        return now

    async def _begin_publishing(self, reason: str, *, publish_at: datetime | None = None) -> None:
        self._set_status(PostStatus.PUBLISHING)
        transition = EventRecord(
            post_id=self._state.post_id,
            kind=EventKind.TRANSITION,
            message=reason,
            sequence=self._next_sequence(),
            status_from=PostStatus.SCHEDULED,
            status_to=PostStatus.PUBLISHING,
            publish_at=publish_at,
        )
        await self._short_step(
            PostStoreInterface.begin_publishing,
            transition,
            retry_policy=_DATABASE_RETRY,
            summary="mark publishing",
            local=self._local_steps,
        )

    async def _finish_published(self, plan: PublishPlan, media_id: str | None) -> ScheduledPostResult:
        self._set_step(PublishStep.FINISHING)
        self._state.media_id = media_id
        permalink: str | None = None
        if media_id and plan.has_first_comment and self._patched_for_punctuality:
            # Independent calls (each writes its own column): together they take one round of tasks, not two.
            permalink, _ = await asyncio.gather(
                self._fetch_permalink(media_id), self._post_first_comment(media_id)
            )
        else:
            permalink = await self._fetch_permalink(media_id) if media_id else None
            if media_id and plan.has_first_comment:
                await self._post_first_comment(media_id)
        self._state.permalink = permalink
        await self._store_ending(
            FinishInput(
                post_id=self._state.post_id,
                status=PostStatus.PUBLISHED,
                media_id=media_id,
                permalink=permalink,
                publish_at=self._moved_while_held,
                published_at=self._went_live_at,
            )
        )
        self._set_status(PostStatus.PUBLISHED)
        self._set_step(PublishStep.DONE)
        return ScheduledPostResult(
            post_id=self._state.post_id, status=PostStatus.PUBLISHED, media_id=media_id, permalink=permalink
        )

    # --- exactly-once publishing (reference §8.4) ------------------------------------------------------------

    async def _publish_exactly_once(self, plan: PublishPlan, container_id: str) -> str | None:
        for _ in range(_MAX_CONTAINER_SETS):
            await self._wait_for_quota()
            try:
                if self._deadline_mode:
                    return await self._publish_container_until_deadline(container_id)
                return await self._publish_container(container_id)
            except _NeedNewContainer:
                container_id = await self._create_containers(plan)
        raise _PostFailed(
            ErrorType.CONTAINER_UNUSABLE, "Instagram rejected the media containers three times in a row"
        )

    async def _wait_for_quota(self) -> None:
        while True:
            quota_policy = RetryPolicy(
                maximum_interval=timedelta(seconds=60),
                # With a deadline, a few minutes of failures mark the post delayed before it retries on.
                maximum_attempts=8 if self._deadline_mode else 0,
                non_retryable_error_types=_NEVER_RETRY_TYPES,
            )
            quota = await self._persist(
                Service.INSTAGRAM,
                lambda policy, budget: workflow.execute_activity_method(
                    InstagramInterface.get_publishing_quota,
                    PostRef(self._state.post_id),
                    start_to_close_timeout=timedelta(seconds=60),
                    schedule_to_close_timeout=budget,
                    heartbeat_timeout=_HEARTBEAT,
                    retry_policy=policy,
                    summary="check publishing quota",
                ),
                quota_policy,
            )
            if quota.usage < quota.total:
                return
            self._set_step(PublishStep.WAITING_FOR_QUOTA)
            self._state.last_error = f"publishing quota used up ({quota.usage}/{quota.total} in 24 h)"
            pause = _QUOTA_RECHECK
            if self._deadline_mode:
                left = self._time_left()
                if left <= timedelta(0):
                    raise self._deadline_failure("the account's publishing quota stayed used up")
                pause = min(pause, left)
            await workflow.sleep(pause, summary="publishing quota used up; re-checking")

    async def _create_containers(self, plan: PublishPlan) -> str:
        self._set_step(PublishStep.CREATING_CONTAINERS)
        children: list[str] = []
        if plan.post_type is PostType.CAROUSEL:
            refs = await asyncio.gather(
                *(
                    self._create_container(CreateContainerInput(post_id=plan.post_id, position=item.position))
                    for item in plan.media
                )
            )
            children = [ref.container_id for ref in refs]
            self._set_step(PublishStep.WAITING_FOR_CONTAINERS)
            await asyncio.gather(*(self._wait_until_ready(child) for child in children))
            self._set_step(PublishStep.CREATING_CONTAINERS)
        container = await self._create_container(
            CreateContainerInput(post_id=plan.post_id, children=children)
        )
        self._set_step(PublishStep.WAITING_FOR_CONTAINERS)
        await self._wait_until_ready(container.container_id)
        return container.container_id

    async def _create_container(self, request: CreateContainerInput) -> ContainerRef:
        what = "carousel item" if request.position is not None else "container"
        ref = await self._persist(
            Service.INSTAGRAM,
            lambda policy, budget: workflow.execute_activity_method(
                InstagramInterface.create_container,
                request,
                start_to_close_timeout=timedelta(seconds=90),
                schedule_to_close_timeout=budget,
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=policy,
                summary=f"create {what}"
                + (f" #{request.position + 1}" if request.position is not None else ""),
            ),
            _CREATE_RETRY,
        )
        self._state.container_ids.append(ref.container_id)
        return ref

    async def _wait_until_ready(self, container_id: str) -> None:
        round_number = 0
        while round_number < _CONTAINER_WAIT_ROUNDS:
            round_number += 1
            budget = _CONTAINER_WAIT_BUDGET
            started = workflow.now()
            if self._deadline_mode:
                left = self._time_left()
                if left <= timedelta(0):
                    raise self._deadline_failure(f"Instagram was still processing container {container_id}")
                budget = min(budget, left)
            try:
                await workflow.execute_activity_method(
                    InstagramInterface.check_container_ready,
                    ContainerCheck(post_id=self._state.post_id, container_id=container_id),
                    start_to_close_timeout=timedelta(seconds=30),
                    heartbeat_timeout=_HEARTBEAT,
                    schedule_to_close_timeout=budget,
                    retry_policy=_POLL_RETRY,
                    summary=f"wait for container {container_id}",
                )
                await self._resumed()
                return
            except ActivityError as error:
                if self._deadline_mode and _gave_up_retrying(error):
                    if _error_type(error) is not ErrorType.CONTAINER_NOT_READY:
                        # Instagram failed, not the container: a delay, and this round does not count.
                        cut_by_deadline = budget < _CONTAINER_WAIT_BUDGET
                        await self._delayed(Service.INSTAGRAM, error, started, patient=cut_by_deadline)
                        round_number -= 1
                        continue
                elif not self._round_ran_out(error):
                    raise
                if round_number == _CONTAINER_WAIT_ROUNDS:
                    raise _PostFailed(
                        ErrorType.CONTAINER_NOT_READY,
                        f"Instagram was still processing the media of container {container_id} after "
                        f"{_CONTAINER_WAIT_ROUNDS} rounds of {_minutes(_CONTAINER_WAIT_BUDGET)} minutes; the post "
                        "was not published. A shorter or smaller video usually processes faster: retry the post "
                        "or schedule it again with other media",
                    ) from None
                # Still IN_PROGRESS is not a failure: the container stays valid for 24 h.
                await workflow.sleep(_CONTAINER_WAIT_PAUSE, summary="Instagram still processing; waiting")
        raise AssertionError("unreachable")

    @staticmethod
    def _round_ran_out(error: ActivityError) -> bool:
        """Whether a round of container polling ended on its time budget. The schedule-to-close timeout surfaces
        as the last attempt's error (still processing) with retry state TIMEOUT; earlier code only knew a bare
        timeout, and failed the post after one round."""
        if _error_type(error) is ErrorType.TIMEOUT:
            return True
        return error.retry_state is RetryState.TIMEOUT and workflow.patched(_CONTAINER_ROUNDS_PATCH)

    async def _publish_container(self, container_id: str) -> str | None:
        while True:
            self._set_step(PublishStep.PUBLISHING)
            self._state.publish_attempts += 1
            attempted_at = workflow.now()
            try:
                published = await workflow.execute_activity_method(
                    InstagramInterface.publish,
                    PublishInput(
                        post_id=self._state.post_id,
                        container_id=container_id,
                        attempt=self._state.publish_attempts,
                        not_before=self._publish_not_before,
                    ),
                    start_to_close_timeout=timedelta(seconds=120),
                    heartbeat_timeout=_HEARTBEAT,
                    retry_policy=_PUBLISH_ONCE,
                    summary=f"publish container {container_id} (attempt {self._state.publish_attempts})",
                )
            except ActivityError as error:
                kind = _error_type(error)
                self._state.last_error = f"{kind}: {_error_message(error)}"
                if kind is ErrorType.CONTAINER_NOT_READY:
                    await self._wait_until_ready(container_id)  # 9007/2207027: documented as not published
                    continue
                status_code, media_id = await self._reconcile(container_id, attempted_at)
                if status_code is ContainerStatusCode.PUBLISHED:
                    return media_id
                if status_code in (ContainerStatusCode.ERROR, ContainerStatusCode.EXPIRED):
                    raise _NeedNewContainer() from None
                if kind in _FINAL_PUBLISH_ERRORS:
                    raise _PostFailed(kind, _error_message(error)) from None
                if self._state.publish_attempts >= _MAX_PUBLISH_CALLS:
                    raise _PostFailed(
                        ErrorType.PUBLISH_OUTCOME_UNKNOWN,
                        f"Instagram did not confirm the publish after {self._state.publish_attempts} attempts; "
                        f"the post was not published (container {container_id} is unpublished)",
                    ) from None
                if kind is ErrorType.PUBLISH_QUOTA_REACHED:
                    await self._wait_for_quota()
                if status_code is ContainerStatusCode.IN_PROGRESS:
                    await self._wait_until_ready(container_id)
                continue
            if published.outcome is PublishOutcome.ALREADY_PUBLISHED and published.media_id is None:
                _status, media_id = await self._reconcile(container_id, attempted_at)
                return media_id
            self._went_live_at = published.published_at
            return published.media_id

    async def _publish_container_until_deadline(self, container_id: str) -> str | None:
        """The exactly-once publish, bounded by the post's deadline instead of a count of calls. Only a call that
        was really sent and answered unclearly is settled by re-reading the container for a while; a failure
        before the call, or an answer documenting that nothing was published, is a plain retry."""
        while True:
            self._set_step(PublishStep.PUBLISHING)
            self._state.publish_attempts += 1
            attempt = self._state.publish_attempts
            attempted_at = workflow.now()
            deadline = self._deadline()
            request = PublishInput(
                post_id=self._state.post_id,
                container_id=container_id,
                attempt=attempt,
                not_before=self._publish_not_before,
                deadline=deadline,
            )
            try:
                published = await self._persist(
                    Service.INSTAGRAM,
                    self._held(_publish_call(request, self._publish_task_queue)),
                    _PUBLISH_BEFORE_CALL_RETRY,
                )
            except _PostFailed as failure:
                if failure.code is ErrorType.PUBLISH_DEADLINE_PASSED:
                    # An attempt cut short by the deadline may have sent its call: read before failing.
                    status_code, media_id = await self._reconcile(container_id, attempted_at, attempt)
                    if status_code is ContainerStatusCode.PUBLISHED:
                        return media_id
                raise
            except ActivityError as error:
                kind = _error_type(error)
                self._state.last_error = f"{kind}: {_error_message(error)}"
                if kind is ErrorType.PUBLISH_DEADLINE_PASSED:
                    raise self._deadline_failure(_error_message(error)) from None
                if kind is ErrorType.CONTAINER_NOT_READY:
                    await self._wait_until_ready(container_id)  # 9007/2207027: documented as not published
                    continue
                if kind is ErrorType.PUBLISH_QUOTA_REACHED:
                    await self._wait_for_quota()  # 9/2207042: documented as not published
                    continue
                if kind is ErrorType.CONTAINER_UNUSABLE:
                    raise _NeedNewContainer() from None  # read before the call: ERROR or EXPIRED, unpublished
                if kind is not ErrorType.OUTCOME_UNKNOWN:
                    raise  # final (auth, invalid request, media): documented as not done
                status_code, media_id = await self._reconcile(container_id, attempted_at, attempt)
                if status_code is ContainerStatusCode.PUBLISHED:
                    return media_id
                if status_code in (ContainerStatusCode.ERROR, ContainerStatusCode.EXPIRED):
                    raise _NeedNewContainer() from None
                if status_code is ContainerStatusCode.IN_PROGRESS:
                    await self._wait_until_ready(container_id)
                continue
            if published.outcome is PublishOutcome.ALREADY_PUBLISHED and published.media_id is None:
                _status, media_id = await self._reconcile(container_id, attempted_at)
                return media_id
            self._went_live_at = published.published_at
            self._published_permalink = published.permalink
            return published.media_id

    async def _reconcile(
        self, container_id: str, attempted_at: datetime, attempt: int | None = None
    ) -> tuple[ContainerStatusCode, str | None]:
        """Settle an unclear publish by reading the container; FINISHED is re-read for a while, as a publish may
        still be committing on Meta's side, unless the attempt asked about never sent its call. With the
        prompt re-check, PUBLISHED is seen within seconds, and FINISHED is concluded once _COMMIT_WINDOW has passed
        since the unclear answer (this method is entered right after it)."""
        self._set_step(PublishStep.RECONCILING)
        answered_at = workflow.now()
        prompt: bool | None = None  # decided at the first re-check, where the recorded commands differ
        pause = _FIRST_RECHECK
        check = 0
        while True:
            result = await self._read_container(container_id, attempted_at, attempt)
            if result.status_code is not ContainerStatusCode.FINISHED or result.call_sent is False:
                return result.status_code, result.media_id
            if prompt is None:
                prompt = workflow.patched(_PROMPT_RECHECK_PATCH)
            if not prompt:
                if check == _RECONCILE_RECHECKS:
                    return result.status_code, result.media_id
                check += 1
                await workflow.sleep(_RECONCILE_PAUSE, summary="container not published yet; re-checking")
                continue
            left = answered_at + _COMMIT_WINDOW - workflow.now()
            if left <= timedelta(0):
                return result.status_code, result.media_id
            await workflow.sleep(min(pause, left), summary="container not published yet; re-checking")
            pause = min(pause * 2, _LONGEST_RECHECK)

    async def _read_container(
        self, container_id: str, attempted_at: datetime, attempt: int | None
    ) -> ReconcileResult:
        return await self._persist(
            Service.INSTAGRAM,
            lambda policy, budget: workflow.execute_activity_method(
                InstagramInterface.reconcile_publish,
                ReconcileInput(
                    post_id=self._state.post_id,
                    container_id=container_id,
                    attempted_at=attempted_at,
                    attempt=attempt,
                ),
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=_HEARTBEAT,
                schedule_to_close_timeout=budget,
                retry_policy=policy,
                summary=f"did container {container_id} go live?",
            ),
            _READ_RETRY,
            timedelta(minutes=30),
            # Settling a call that may have gone out is never cut short by the deadline.
            bounded=False,
        )

    # --- the lateness deadline -------------------------------------------------------------------------------

    async def _persist(
        self,
        service: Service,
        call: _Call[_T],
        policy: RetryPolicy,
        budget: timedelta | None = None,
        *,
        bounded: bool = True,
    ) -> _T:
        """``call`` on ``policy`` (with ``budget`` as its schedule-to-close timeout); with a deadline, until it
        succeeds, fails for good, or the deadline passes: once the policy gives up on a transient failure the
        post is marked delayed and the call goes on with the patient policy. ``bounded`` False: the call goes on
        past the deadline (settling an unclear publish)."""
        if not self._deadline_mode:
            return await call(policy, budget)
        started = workflow.now()
        while True:
            delayed = self._state.delay is not None
            left = self._time_left() if bounded else None
            limit = budget if not delayed else None
            if left is not None:
                limit = left if limit is None else min(limit, left)
            attempt = call(_patient(policy) if delayed else _prompt(policy), limit)
            reconnects = self._reconnects
            try:
                result = await (self._unless_cancelled(attempt) if delayed else attempt)
            except ActivityError as error:
                if (
                    _error_type(error) is ErrorType.GRAPH_AUTH
                    and bounded
                    and workflow.patched(_RECONNECT_PATCH)
                ):
                    await self._wait_for_reconnect(error, reconnects)
                    continue
                if not _gave_up_retrying(error):
                    raise
                await self._delayed(service, error, started, bounded=bounded, patient=delayed)
                continue
            await self._resumed()
            return result

    async def _wait_for_reconnect(self, error: ActivityError, reconnects: int) -> None:
        """Instagram refused the account's token (expired, revoked, a permission withdrawn): wait, until the post's
        deadline, for the account to be reconnected, then try the call again (an authentication error means the
        call did nothing). A reconnect that came while the call was out counts at once."""
        message = _error_message(error)
        self._state.last_error = cap_error_text(f"{ErrorType.GRAPH_AUTH}: {message}")
        if self._reconnects > reconnects:
            return
        since = workflow.now()
        step_before = self._state.step
        self._set_step(PublishStep.WAITING_FOR_RECONNECT)
        workflow.upsert_search_attributes([DELAYED_SINCE.value_set(since)])
        deadline = self._deadline()
        await self._record(
            EventKind.ERROR,
            f"waiting for the account to be reconnected (Instagram refused its token: {message}); the post goes "
            f"on once it is, until {_iso(deadline) if deadline else 'its publish time'}",
            error_code=ErrorType.GRAPH_AUTH,
        )
        left = self._time_left()
        reconnected = False
        if left > timedelta(0):
            try:
                # A cancellation ends the wait while one can still be accepted (before publishing).
                await workflow.wait_condition(
                    lambda: self._reconnects > reconnects or self._cancel_request() is not None,
                    timeout=left,
                    timeout_summary="waiting for the account to be reconnected",
                )
                reconnected = self._reconnects > reconnects
            except builtins.TimeoutError:
                pass
        workflow.upsert_search_attributes([DELAYED_SINCE.value_unset()])
        if not reconnected:
            if self._cancel_request() is not None and self._state.status is PostStatus.SCHEDULED:
                raise _Cancelled()
            raise _PostFailed(
                ErrorType.GRAPH_AUTH,
                f"Instagram refused the account's token ({message}) and the account was not reconnected before "
                f"this post's deadline, {_iso(deadline) if deadline else 'its publish time'}, so it was not "
                "published. Reconnect the account (POST /v1/accounts with a new token), then retry the post.",
            )
        self._set_step(step_before)
        await self._record(
            EventKind.ATTEMPT,
            f"resumed: the account was reconnected after {_span(workflow.now() - since)}",
            error_code=ErrorType.PUBLISH_RESUMED,
        )

    async def _unless_cancelled(self, attempt: Awaitable[_T]) -> _T:
        """A delayed call, given up when the post is cancelled meanwhile (only possible before publishing)."""
        task = asyncio.ensure_future(attempt)
        await workflow.wait_condition(lambda: task.done() or self._cancel_request() is not None)
        if task.done():
            return task.result()
        task.cancel()
        try:
            await task
        except (ActivityError, asyncio.CancelledError):
            pass
        raise _Cancelled()

    def _deadline(self) -> datetime | None:
        if self._lateness is None:
            return None
        deadline = self._state.publish_at + max(self._lateness, _ON_TIME_GRACE)
        self._state.deadline = deadline
        return deadline

    def _time_left(self) -> timedelta:
        deadline = self._deadline()
        return timedelta.max if deadline is None else deadline - workflow.now()

    def _deadline_failure(self, what: str) -> _PostFailed:
        deadline = self._deadline()
        lateness = self._lateness or timedelta(0)
        last = f" Last error: {self._state.last_error}." if self._state.last_error else ""
        return _PostFailed(
            ErrorType.PUBLISH_DEADLINE_PASSED,
            f"{what} until this post's deadline, {_iso(deadline) if deadline else 'its publish time'} (its publish "
            f"time plus {_span(lateness)} of allowed lateness), so it was not published.{last} Schedule it again "
            "when the service is back, or allow more lateness (max_lateness_seconds) on the post or its account.",
        )

    async def _delayed(
        self,
        service: Service,
        error: ActivityError,
        started: datetime,
        *,
        bounded: bool = True,
        patient: bool = False,
    ) -> None:
        """A call's retries ran out on a transient failure: past the deadline the post fails; before it the post
        is delayed, which is announced once per outage (an event, the step, a search attribute). A throttle's
        wait is kept before the call goes on; when the wait, or the next patient retry, would end past the
        deadline, the post waits for the deadline and fails then (never before it, never calling meanwhile)."""
        message = f"{_error_type(error)}: {_error_message(error)}"
        self._state.last_error = cap_error_text(message)
        since = self._state.delay.since if self._state.delay else started
        if bounded and self._time_left() <= timedelta(0):
            raise self._deadline_failure(f"{service.value} was unavailable from {_iso(since)}")
        if self._state.delay is None:
            await self._announce_delay(service, started, message)
        else:
            self._state.delay.last_error = self._state.last_error
            self._show_details()
        wait = _retry_hint(error)
        left = self._time_left() if bounded else None
        out_of_time = patient and error.retry_state is RetryState.TIMEOUT
        if left is not None and ((wait is not None and wait >= left) or out_of_time):
            await self._pause(left, "waiting until the post's deadline")
            raise self._deadline_failure(f"{service.value} was unavailable from {_iso(since)}")
        if wait is not None:
            await self._pause(wait, f"{service.value} asked to wait")

    async def _pause(self, span: timedelta, summary: str) -> None:
        """A durable wait that a cancellation ends, while one can still be accepted (before publishing)."""
        if self._state.status is not PostStatus.SCHEDULED:
            await workflow.sleep(span, summary=summary)
            return
        try:
            await workflow.wait_condition(
                lambda: self._cancel_request() is not None, timeout=span, timeout_summary=summary
            )
        except builtins.TimeoutError:
            return
        raise _Cancelled()

    async def _announce_delay(self, service: Service, started: datetime, message: str) -> None:
        self._state.delay = PublishDelay(
            service=service, since=started, last_error=self._state.last_error or ""
        )
        self._step_before_delay = self._state.step
        self._set_step(PublishStep.DELAYED)
        workflow.upsert_search_attributes([DELAYED_SINCE.value_set(started)])
        deadline = self._deadline()
        until = f"retrying until {_iso(deadline)}" if deadline else "retrying"
        await self._record(
            EventKind.ERROR,
            f"{self._state.delay.describe()}; {until} (last error: {message})",
            error_code=ErrorType.PUBLISH_DELAYED,
        )

    async def _resumed(self) -> None:
        delay = self._state.delay
        if delay is None:
            return
        self._state.delay = None
        workflow.upsert_search_attributes([DELAYED_SINCE.value_unset()])
        self._set_step(self._step_before_delay)
        await self._record(
            EventKind.ATTEMPT,
            f"resumed: {delay.service.value} answered again after {_span(workflow.now() - delay.since)}",
            error_code=ErrorType.PUBLISH_RESUMED,
        )

    # --- after publishing: best effort, never fails a live post -----------------------------------------------

    async def _finish_published_until_deadline(
        self, plan: PublishPlan, media_id: str | None, published_at: datetime
    ) -> ScheduledPostResult:
        """Permalink and first comment together (and the insights' start, _INSIGHTS_WITH_FINISHING_PATCH); a first
        comment that Instagram keeps failing transiently is retried (it looks for itself before each attempt)
        until the post's deadline, after the post is marked published; only a refusal, or the deadline, leaves the
        post without it, recorded as such."""
        self._set_step(PublishStep.FINISHING)
        self._state.media_id = media_id
        comment_pending = False
        if media_id and self._insights_with_finishing:
            permalink, comment_pending, _ = await asyncio.gather(
                self._permalink(media_id),
                self._first_comment(media_id, _COMMENT_RETRY, None) if plan.has_first_comment else _false(),
                self._settle_post_metrics(published_at),
            )
        elif media_id and plan.has_first_comment:
            permalink, comment_pending = await asyncio.gather(
                self._fetch_permalink(media_id), self._first_comment(media_id, _COMMENT_RETRY, None)
            )
        else:
            permalink = await self._fetch_permalink(media_id) if media_id else None
        self._state.permalink = permalink
        await self._store_ending(
            FinishInput(
                post_id=self._state.post_id,
                status=PostStatus.PUBLISHED,
                media_id=media_id,
                permalink=permalink,
                publish_at=self._moved_while_held,
                published_at=self._went_live_at,
            )
        )
        self._set_status(PostStatus.PUBLISHED)
        if comment_pending and media_id:
            left = self._time_left()
            if left > timedelta(0) and await self._first_comment(media_id, _patient(_COMMENT_RETRY), left):
                await self._record(
                    EventKind.ERROR,
                    f"first comment not posted: Instagram kept failing until the post's deadline "
                    f"(last error: {self._state.last_error}); the post is live without it",
                    error_code=ErrorType.FIRST_COMMENT_REFUSED,
                )
            elif left <= timedelta(0):
                await self._record(
                    EventKind.ERROR,
                    "first comment not posted: the post's deadline had passed; the post is live without it",
                    error_code=ErrorType.FIRST_COMMENT_REFUSED,
                )
        self._set_step(PublishStep.DONE)
        return ScheduledPostResult(
            post_id=self._state.post_id, status=PostStatus.PUBLISHED, media_id=media_id, permalink=permalink
        )

    async def _first_comment(self, media_id: str, policy: RetryPolicy, budget: timedelta | None) -> bool:
        """Posts the first comment; True when the policy gave up on transient failures (it may be tried again),
        False when done or refused for good (recorded)."""
        try:
            await workflow.execute_activity_method(
                InstagramInterface.post_first_comment,
                MediaRef(post_id=self._state.post_id, media_id=media_id),
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=budget,
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=policy,
                summary="post first comment",
            )
        except ActivityError as error:
            self._state.last_error = f"first comment failed: {_error_message(error)}"
            if _gave_up_retrying(error):
                return True
            await self._record(
                EventKind.ERROR,
                f"first comment not posted: Instagram refused it ({_error_message(error)}); the post is live "
                "without it",
                error_code=ErrorType.FIRST_COMMENT_REFUSED,
            )
        return False

    async def _permalink(self, media_id: str) -> str | None:
        """The permalink the publish activity read (_PERMALINK_WITH_PUBLISH_PATCH), else fetched."""
        if self._permalink_with_publish and self._published_permalink:
            return self._published_permalink
        return await self._fetch_permalink(media_id)

    async def _fetch_permalink(self, media_id: str) -> str | None:
        try:
            result = await workflow.execute_activity_method(
                InstagramInterface.fetch_permalink,
                MediaRef(post_id=self._state.post_id, media_id=media_id),
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=_FINISHING_RETRY,
                summary="fetch permalink",
            )
        except ActivityError as error:
            await self._record(
                EventKind.ERROR,
                f"permalink unavailable: {_error_message(error)}",
                error_code=_error_type(error),
            )
            return None
        return result.permalink

    async def _post_first_comment(self, media_id: str) -> None:
        try:
            await workflow.execute_activity_method(
                InstagramInterface.post_first_comment,
                MediaRef(post_id=self._state.post_id, media_id=media_id),
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(minutes=1),
                    maximum_attempts=10,
                    non_retryable_error_types=_NEVER_RETRY_TYPES,
                ),
                summary="post first comment",
            )
        except ActivityError as error:
            self._state.last_error = f"first comment failed: {_error_message(error)}"
            await self._record(EventKind.ERROR, self._state.last_error, error_code=_error_type(error))

    # --- endings ---------------------------------------------------------------------------------------------

    async def _finish_cancelled(self, request: CancelRequest) -> ScheduledPostResult:
        await self._store_ending(
            FinishInput(
                post_id=self._state.post_id,
                status=PostStatus.CANCELLED,
                error_message=request.reason or None,
                # Cancelled during the hold: publishing, its call never sent.
                withdrawn=self._state.status is PostStatus.PUBLISHING,
            )
        )
        self._set_status(PostStatus.CANCELLED)
        await self._withdraw_post_metrics()
        self._set_step(PublishStep.DONE)
        return ScheduledPostResult(post_id=self._state.post_id, status=PostStatus.CANCELLED)

    async def _finish_failed(self, failure: _PostFailed) -> None:
        self._state.last_error = f"{failure.code}: {failure.message}"
        await self._store_ending(
            FinishInput(
                post_id=self._state.post_id,
                status=PostStatus.FAILED,
                error_code=failure.code,
                error_message=failure.message,
            )
        )
        self._set_status(PostStatus.FAILED)
        if workflow.patched(_ERROR_CODE_PATCH):
            workflow.upsert_search_attributes([ERROR_CODE.value_set(failure.code.value)])
        await self._withdraw_post_metrics()
        self._set_step(PublishStep.DONE)

    # --- bookkeeping -----------------------------------------------------------------------------------------

    async def _store_ending(self, ending: FinishInput) -> None:
        await self._short_step(
            PostStoreInterface.finish,
            ending,
            retry_policy=_DATABASE_RETRY,
            summary=f"mark {ending.status.value}",
            local=self._local_steps and ending.status is PostStatus.PUBLISHED,
        )

    async def _short_step(
        self,
        step: Callable[[_S, _I], Any],
        request: _I,
        *,
        retry_policy: RetryPolicy,
        summary: str,
        local: bool,
    ) -> None:
        """A short step (a database write, a workflow start): as a local activity when ``local``
        (_LOCAL_STEPS_PATCH), run inside the workflow task that asks for it; otherwise an activity task."""
        if local:
            await workflow.execute_local_activity_method(
                step,
                request,
                start_to_close_timeout=_SHORT_STEP_TIMEOUT,
                retry_policy=retry_policy,
                summary=summary,
            )
        else:
            await workflow.execute_activity_method(
                step,
                request,
                start_to_close_timeout=_SHORT_STEP_TIMEOUT,
                retry_policy=retry_policy,
                summary=summary,
            )

    async def _record(
        self,
        kind: EventKind,
        message: str,
        *,
        error_code: ErrorType | None = None,
        publish_at: datetime | None = None,
    ) -> None:
        await workflow.execute_activity_method(
            PostStoreInterface.record_event,
            EventRecord(
                post_id=self._state.post_id,
                kind=kind,
                message=cap_error_text(message),
                sequence=self._next_sequence(),
                error_code=error_code,
                publish_at=publish_at,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_DATABASE_RETRY,
            summary=f"record {kind.value}",
        )

    def _next_sequence(self) -> int:
        self._event_sequence += 1
        return self._event_sequence

    def _set_status(self, status: PostStatus) -> None:
        self._state.status = status
        workflow.upsert_search_attributes([POST_STATUS.value_set(status.value)])
        self._show_details()

    def _set_step(self, step: PublishStep) -> None:
        self._state.step = step
        self._show_details()

    def _show_details(self) -> None:
        state = self._state
        lines = [
            f"**Status:** {state.status.value}",
            f"**Step:** {state.step.value}",
            f"**Publish at:** {_iso(state.publish_at)}",
        ]
        if state.container_ids:
            lines.append(f"**Containers:** {', '.join(state.container_ids)}")
        if state.media_id:
            lines.append(f"**Media:** {state.media_id}")
        if state.delay is not None:
            lines.append(f"**{state.delay.describe()}**")
        if state.deadline is not None:
            lines.append(f"**Deadline:** {_iso(state.deadline)}")
        if state.last_error:
            lines.append(f"**Last error:** {state.last_error}")
        workflow.set_current_details("\n\n".join(lines))


def _publish_call(request: PublishInput, task_queue: str | None = None) -> _Call[PublishResult]:
    # A held call's activity runs for its hold too; cancelled during it, it answers whether it sent the call.
    hold = max(request.not_before - workflow.now(), timedelta(0)) if request.not_before else timedelta(0)

    def call(policy: RetryPolicy, budget: timedelta | None) -> Awaitable[PublishResult]:
        return workflow.execute_activity_method(
            InstagramInterface.publish,
            request,
            start_to_close_timeout=_PUBLISH_TIMEOUT + hold,
            task_queue=task_queue,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            if request.not_before
            else ActivityCancellationType.TRY_CANCEL,
            heartbeat_timeout=_HEARTBEAT,
            # An attempt begun before the deadline may finish: the activity sends no call after it.
            schedule_to_close_timeout=None if budget is None else budget + _PUBLISH_TIMEOUT,
            retry_policy=policy,
            summary=f"publish container {request.container_id} (attempt {request.attempt})",
        )

    return call


def _decode_signal(
    signal: PostSignal, values: tuple[object, ...]
) -> CancelRequest | RescheduleRequest | PublishNowRequest | None:
    """The signal's one input as its type, or None when it is missing, one of several, or not of that shape.
    The values came decoded as plain JSON: encoded again, they decode into the type as any typed input would."""
    if len(values) != 1 or not isinstance(values[0], dict):
        return None
    converter = workflow.payload_converter()
    try:
        request = converter.from_payload(converter.to_payload(values[0]), SIGNAL_INPUTS[signal])
    except Exception:  # whatever the converter refuses is malformed input
        return None
    return request if isinstance(request, SIGNAL_INPUTS[signal]) else None


def _span(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return f"{int(span.total_seconds())} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
