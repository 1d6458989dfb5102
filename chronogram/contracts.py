"""Types and names shared by the API, the worker and the workflows: everything that crosses a Temporal boundary.

Kept light (no I/O, no heavy imports) because workflow code imports it inside the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from temporalio import activity
from temporalio.common import SearchAttributeKey

# Re-exported: workflow code takes every value it needs from this module alone.
from chronogram.enums import EventKind as EventKind
from chronogram.enums import MetricsCheckpoint as MetricsCheckpoint
from chronogram.enums import PostStatus as PostStatus
from chronogram.enums import PostType as PostType

TASK_QUEUE = "chronogram-posts"
# The held publishes (the publish activity, held until publish_at): a queue of their own, on a worker of their own in
# the same process, so that a burst of held calls takes none of the slots the other activities run in.
PUBLISH_TASK_QUEUE = "chronogram-publish"
# The published posts' insights (PostMetricsWorkflow and its activity): a queue of their own, on a worker of their own
# in the same process with a small workflow cache, so that a burst's thousand new insights workflows, which then sleep
# for an hour, never push the burst's posts out of the posts' cache (a post pushed out is replayed from its whole
# history at its next step). PostMetricsWorkflows started before it run on TASK_QUEUE, which still registers them.
INSIGHTS_TASK_QUEUE = "chronogram-insights"
# The workflow's registered name: the API and the command line start it by this name, so that neither they nor
# the core import the workflow code.
SCHEDULED_POST_WORKFLOW = "ScheduledPostWorkflow"


class MediaKind(StrEnum):
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


class ErrorType(StrEnum):
    """Every error type that crosses the workflow boundary: the ``ApplicationError`` types activities raise (the
    Graph API kinds of chronogram.instagram.errors and our own), the workflow's failure types, and the
    ``error_code`` a failed post stores and the API shows. The values are wire values: recorded histories and
    stored rows hold them, so a value never changes."""

    # The Graph API error tree's kinds (chronogram.instagram.errors).
    GRAPH_API = "GraphAPIError"
    GRAPH_TRANSIENT = "GraphTransientError"
    GRAPH_THROTTLED = "GraphThrottledError"
    PUBLISH_QUOTA_REACHED = "PublishQuotaReachedError"
    CONTAINER_NOT_READY = "ContainerNotReadyError"
    GRAPH_AUTH = "GraphAuthError"
    GRAPH_INVALID_REQUEST = "GraphInvalidRequestError"
    INVALID_MEDIA = "InvalidMediaError"
    CONTAINER_UNUSABLE = "ContainerUnusableError"
    OUTCOME_UNKNOWN = "OutcomeUnknownError"
    # Raised by our activities.
    MEDIA_REJECTED = "MediaRejected"
    POST_NOT_FOUND = "PostNotFound"
    ILLEGAL_TRANSITION = "IllegalTransition"
    # Decided by the workflow.
    PUBLISH_OUTCOME_UNKNOWN = "PublishOutcomeUnknown"
    # Transient failures (Instagram, storage, database) lasted past the post's deadline (publish_at + max lateness).
    PUBLISH_DEADLINE_PASSED = "PublishDeadlinePassed"
    # The code of the event recorded when a post starts waiting out such failures, and of the one when it resumes.
    PUBLISH_DELAYED = "PublishDelayed"
    PUBLISH_RESUMED = "PublishResumed"
    # Instagram refused the first comment for good (a live post is left without it).
    FIRST_COMMENT_REFUSED = "FirstCommentRefused"
    TIMEOUT = "Timeout"
    # Notifications: an attempt that will be retried (chronogram.notifications).
    WEBHOOK_DELIVERY_FAILED = "WebhookDeliveryFailed"
    EMAIL_DELIVERY_FAILED = "EmailDeliveryFailed"
    # Anything else an activity raised (an unexpected exception's class name is not a stable code).
    UNEXPECTED = "UnexpectedError"

    @classmethod
    def _missing_(cls, value: object) -> ErrorType:
        # An unknown type (e.g. an unexpected exception's class name) reads as UNEXPECTED, wherever it is decoded.
        return cls.UNEXPECTED


# Errors no retry can fix: the retry policies of every activity whose failure is final list these.
NON_RETRYABLE_ERRORS: tuple[ErrorType, ...] = (
    ErrorType.GRAPH_AUTH,
    ErrorType.GRAPH_INVALID_REQUEST,
    ErrorType.INVALID_MEDIA,
    ErrorType.CONTAINER_UNUSABLE,
    ErrorType.MEDIA_REJECTED,
    ErrorType.POST_NOT_FOUND,
    ErrorType.ILLEGAL_TRANSITION,
)


class ContainerStatusCode(StrEnum):
    """A media container's ``status_code`` in the Graph API (reference §5)."""

    IN_PROGRESS = "IN_PROGRESS"
    FINISHED = "FINISHED"
    PUBLISHED = "PUBLISHED"
    ERROR = "ERROR"
    EXPIRED = "EXPIRED"


# Custom search attributes operators filter on in the Web UI, e.g.
#   WorkflowType='ScheduledPostWorkflow' AND PostStatus='scheduled' AND AccountId='42'
POST_STATUS = SearchAttributeKey.for_keyword("PostStatus")
POST_TYPE = SearchAttributeKey.for_keyword("PostType")
ACCOUNT_ID = SearchAttributeKey.for_keyword("AccountId")
PUBLISH_AT = SearchAttributeKey.for_datetime("PublishAt")
# Set at the workflow's start (docs/operations.md): the post's owner (users.id) and its account's @username.
USER_ID = SearchAttributeKey.for_keyword("UserId")
USERNAME = SearchAttributeKey.for_keyword("Username")
# Set by a run that ends failed: why (an ErrorType value). A retried post's new run starts without it.
ERROR_CODE = SearchAttributeKey.for_keyword("ErrorCode")
# Set while a post waits out an outage (since when); unset once the service answers again:
#   DelayedSince IS NOT NULL  lists every delayed post.
DELAYED_SINCE = SearchAttributeKey.for_datetime("DelayedSince")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    POST_STATUS,
    POST_TYPE,
    ACCOUNT_ID,
    PUBLISH_AT,
    USER_ID,
    USERNAME,
    ERROR_CODE,
    DELAYED_SINCE,
)

# The workflow's own metric (through the Temporal SDK's metric meter, served on the worker's metrics port with
# the SDK's): the time from the start of a post's preparation to its containers being ready, by post type.
PREPARATION_METRIC = "chronogram_preparation"

# How late a post may go out when outages delay it, unless its account or the post says otherwise.
DEFAULT_MAX_LATENESS_SECONDS = 24 * 3600


def post_workflow_id(post_id: int | str) -> str:
    return f"post-{post_id}"


# Error text that enters a history (failures, query results) is capped: histories stay small and no provider dump
# of unknown content is copied into them.
MAX_ERROR_TEXT = 500


def cap_error_text(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


# --- ScheduledPostWorkflow: input, result, signals, query -----------------------------------------------------


@dataclass(frozen=True)
class ScheduledPostInput:
    """Ids only: the content lives in the database and the token never leaves the activities."""

    post_id: int
    publish_at: datetime


@dataclass(frozen=True)
class ScheduledPostResult:
    post_id: int
    status: PostStatus
    media_id: str | None = None
    permalink: str | None = None


class PostSignal(StrEnum):
    """The signals a post's workflow takes; the values are the signal names operators type."""

    CANCEL = "cancel"
    RESCHEDULE = "reschedule"
    PUBLISH_NOW = "publish_now"


# Each signal carries an optional ``request_id``: the workflow records that request's outcome, which the sender
# reads back with the ``signal_outcome`` query. Operators typing a signal by hand may leave it out.


@dataclass(frozen=True)
class CancelRequest:
    reason: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class RescheduleRequest:
    publish_at: datetime
    request_id: str = ""


@dataclass(frozen=True)
class PublishNowRequest:
    reason: str = ""
    request_id: str = ""


SIGNAL_INPUTS: dict[PostSignal, type[CancelRequest | RescheduleRequest | PublishNowRequest]] = {
    PostSignal.CANCEL: CancelRequest,
    PostSignal.RESCHEDULE: RescheduleRequest,
    PostSignal.PUBLISH_NOW: PublishNowRequest,
}


class SignalRefusal(StrEnum):
    NOT_SCHEDULED = "not_scheduled"  # publishing has begun, or the post is done
    BEING_CANCELLED = "being_cancelled"  # a cancellation was accepted first
    MALFORMED_INPUT = "malformed_input"  # no input, or input that is not the signal's type


@dataclass(frozen=True)
class RefusedSignal:
    signal: PostSignal
    status: PostStatus
    received_at: datetime
    reason: SignalRefusal | None = None  # None in states recorded before reasons were kept


class SignalVerdict(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"  # no signal with this request id has reached the workflow


@dataclass(frozen=True)
class SignalOutcomeQuery:
    request_id: str


@dataclass(frozen=True)
class SignalOutcome:
    """What became of one signal request: the answer of the ``signal_outcome`` query."""

    request_id: str
    verdict: SignalVerdict
    # The post's status when the workflow handled the signal (for UNKNOWN: its status now).
    status: PostStatus
    refusal: SignalRefusal | None = None


class PublishStep(StrEnum):
    SCHEDULED = "waiting to prepare"
    PREPARING_MEDIA = "preparing media"
    WAITING_FOR_QUOTA = "waiting for publishing quota"
    CREATING_CONTAINERS = "creating containers"
    WAITING_FOR_CONTAINERS = "waiting for Instagram to process media"
    WAITING = "ready; waiting for publish time"
    # Marked publishing ahead of the publish time, media_publish waits for it: cancel, reschedule and publish-now
    # still stop the call until then.
    HOLDING = "publishing at the publish time; the call is held until then"
    PUBLISHING = "publishing"
    RECONCILING = "checking whether the post went live"
    DELAYED = "delayed"
    FINISHING = "fetching permalink and posting first comment"
    # The account's token failed (AccountSignal.ACCOUNT_RECONNECTED resumes the post): see AccountReconnected.
    WAITING_FOR_RECONNECT = "waiting for reconnect"
    DONE = "done"


class Service(StrEnum):
    """What a delayed post is waiting for: the words of "delayed: Instagram unavailable since ..."."""

    INSTAGRAM = "Instagram"
    STORAGE = "media storage"


@dataclass
class PublishDelay:
    service: Service
    since: datetime
    last_error: str

    def describe(self) -> str:
        return f"delayed: {self.service.value} unavailable since {self.since.astimezone(UTC).strftime('%H:%M UTC')}"


@dataclass
class PostState:
    """What the workflow's query answers: the live state of one post."""

    post_id: int
    status: PostStatus
    publish_at: datetime
    step: PublishStep
    container_ids: list[str] = field(default_factory=list)
    media_id: str | None = None
    permalink: str | None = None
    publish_attempts: int = 0
    last_error: str | None = None
    refused_signals: list[RefusedSignal] = field(default_factory=list)
    # While the post waits out an outage: what is unavailable, since when, and the latest failure.
    delay: PublishDelay | None = None
    # The latest moment the post may go out (publish_at + max lateness), known once preparation has begun.
    deadline: datetime | None = None


# --- Activities ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostRef:
    post_id: int


@dataclass(frozen=True)
class PlannedMedia:
    position: int
    media_id: int
    kind: MediaKind


@dataclass(frozen=True)
class PublishPlan:
    """What the workflow needs to drive a publish; read from the database when publishing begins."""

    post_id: int
    account_id: int
    post_type: PostType
    media: list[PlannedMedia]
    has_first_comment: bool
    # The post's, else its account's, else the default; None only in plans recorded before deadlines.
    max_lateness_seconds: int | None = None
    # How many open posts (this one included) are due within a second of its publish time, when the plan was read:
    # the workflow wakes the earlier the more of them there are. 0 in plans recorded before it was counted.
    due_together: int = 0
    # How many of those were created before it (smaller ids): its rank in the burst, known as soon as it exists,
    # whichever moment the plan is read. The wake-ups of a burst are spread by it. 0 in plans recorded before it.
    due_before: int = 0
    # The pace of a burst's wake-ups: each post wakes this much earlier per post ranked before it
    # (CHRONOGRAM_WORKER_BURST_WAKE_SPACING_MS), and at most this long ahead
    # (CHRONOGRAM_WORKER_BURST_WAKE_LEAD_MAX_SECONDS). None in plans recorded before they were settings: 25 ms, 60 s.
    wake_spacing_ms: int | None = None
    wake_lead_max_seconds: int | None = None
    # Where the worker runs held publishes (PUBLISH_TASK_QUEUE); None: on the workflow's own queue (test workers).
    publish_task_queue: str | None = None


@dataclass(frozen=True)
class EventRecord:
    """An event of a post's workflow run. ``sequence`` numbers the run's events, so that recording one is
    idempotent under activity retries (chronogram.lifecycle turns it into the dedupe key). ``dedupe_key`` is
    what workflows recorded before the sequence: only read from activity tasks scheduled by that code.
    ``publish_at`` set: the post's new time (a reschedule; or, as publishing begins, publish-now's moment)."""

    post_id: int
    kind: EventKind
    message: str
    sequence: int | None = None
    dedupe_key: str = ""
    status_from: PostStatus | None = None
    status_to: PostStatus | None = None
    publish_at: datetime | None = None
    error_code: ErrorType | None = None


@dataclass(frozen=True)
class PreparedMedia:
    position: int
    rendition_key: str
    kind: MediaKind


@dataclass(frozen=True)
class PreparedMediaList:
    items: list[PreparedMedia]


@dataclass(frozen=True)
class CreateContainerInput:
    """``position`` None is the post's own container (the carousel parent, or the single image/reel/story)."""

    post_id: int
    position: int | None = None
    children: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContainerRef:
    container_id: str


@dataclass(frozen=True)
class ContainerCheck:
    post_id: int
    container_id: str


@dataclass(frozen=True)
class ContainerReport:
    container_id: str
    status_code: ContainerStatusCode
    detail: str = ""


@dataclass(frozen=True)
class QuotaReport:
    usage: int
    total: int

    @property
    def exhausted(self) -> bool:
        return self.usage >= self.total


@dataclass(frozen=True)
class PublishInput:
    post_id: int
    container_id: str
    attempt: int
    # The publish time, when the workflow woke before it: the activity holds media_publish until then.
    not_before: datetime | None = None
    # The post's deadline: the activity sends no media_publish call after it.
    deadline: datetime | None = None


class PublishOutcome(StrEnum):
    PUBLISHED = "published"
    ALREADY_PUBLISHED = "already_published"  # the container was PUBLISHED before this call: nothing was sent


@dataclass(frozen=True)
class PublishResult:
    outcome: PublishOutcome
    media_id: str | None
    # When Instagram's answer to this media_publish call came back: when the post went live. None when nothing was
    # sent (ALREADY_PUBLISHED) and in results recorded before it.
    published_at: datetime | None = None
    # The new media's permalink, read (and stored) by the same activity right after the call; None when that read
    # failed or nothing was sent, and in results recorded before it: then the workflow fetches it (fetch_permalink).
    permalink: str | None = None


@dataclass(frozen=True)
class ReconcileInput:
    post_id: int
    container_id: str
    attempted_at: datetime
    # The publish attempt whose outcome is unclear: the answer says whether its media_publish call was sent.
    attempt: int | None = None


@dataclass(frozen=True)
class ReconcileResult:
    status_code: ContainerStatusCode
    media_id: str | None = None
    # False when the attempt asked about never sent its media_publish call (a worker died before it): then a
    # FINISHED container is a plain retry. None when not asked (no attempt given).
    call_sent: bool | None = None


@dataclass(frozen=True)
class MediaRef:
    post_id: int
    media_id: str


@dataclass(frozen=True)
class PermalinkResult:
    permalink: str | None


@dataclass(frozen=True)
class FirstCommentResult:
    comment_id: str
    created: bool


@dataclass(frozen=True)
class FinishInput:
    post_id: int
    status: PostStatus
    media_id: str | None = None
    permalink: str | None = None
    error_code: ErrorType | None = None
    error_message: str | None = None
    # Cancelled while publishing, before its media_publish call was sent (the call was held until the publish time).
    withdrawn: bool = False
    # Published: the publish time the run ended with, when a publish-now accepted while the call was held moved it
    # (the database had it already otherwise). None from runs recorded before it was sent.
    publish_at: datetime | None = None
    # Published: when Instagram answered the media_publish call (PublishResult.published_at); None when it is not
    # known (the outcome was settled by reading the container), and the post is then published as of its marking.
    published_at: datetime | None = None


# --- Activity interfaces -----------------------------------------------------------------------------------------
# What the workflow calls, declared here so that workflow code imports no activity code: each method's name is the
# activity's registered name, with its one input and one result type. The classes in activities/ subclass these,
# so that mypy holds every implementation to its declaration.


class PostStoreInterface:
    @activity.defn
    def load_plan(self, request: PostRef) -> PublishPlan:
        raise NotImplementedError

    @activity.defn
    def begin_publishing(self, event: EventRecord) -> None:
        raise NotImplementedError

    @activity.defn
    def record_event(self, event: EventRecord) -> None:
        raise NotImplementedError

    @activity.defn
    async def finish(self, request: FinishInput) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class RunRef:
    workflow_id: str
    run_id: str


@dataclass(frozen=True)
class CancellationRequester:
    """Who asked Temporal to cancel a run, as its history says (empty when it does not)."""

    identity: str = ""
    cause: str = ""


class RunHistoryInterface:
    @activity.defn
    async def who_cancelled(self, request: RunRef) -> CancellationRequester:
        raise NotImplementedError


class MediaInterface:
    @activity.defn
    def prepare_media(self, request: PostRef) -> PreparedMediaList:
        raise NotImplementedError


class InstagramInterface:
    @activity.defn
    async def get_publishing_quota(self, request: PostRef) -> QuotaReport:
        raise NotImplementedError

    @activity.defn
    async def check_container_ready(self, request: ContainerCheck) -> ContainerReport:
        raise NotImplementedError

    @activity.defn
    async def reconcile_publish(self, request: ReconcileInput) -> ReconcileResult:
        raise NotImplementedError

    @activity.defn
    async def fetch_permalink(self, request: MediaRef) -> PermalinkResult:
        raise NotImplementedError

    @activity.defn
    async def create_container(self, request: CreateContainerInput) -> ContainerRef:
        raise NotImplementedError

    @activity.defn
    async def publish(self, request: PublishInput) -> PublishResult:
        raise NotImplementedError

    @activity.defn
    async def post_first_comment(self, request: MediaRef) -> FirstCommentResult:
        raise NotImplementedError


# --- AccountTokensWorkflow: one per connected account, refreshing its token ahead of expiry --------------------

ACCOUNT_TOKENS_WORKFLOW = "AccountTokensWorkflow"


def account_tokens_workflow_id(account_id: int | str) -> str:
    return f"account-tokens-{account_id}"


@dataclass(frozen=True)
class AccountTokensInput:
    """The account id only: the workflow's activities read and write the (encrypted) token themselves.
    ``refreshes`` counts the refreshes of earlier runs (the workflow continues as new after each one)."""

    account_id: int
    refreshes: int = 0


@dataclass(frozen=True)
class AccountTokensResult:
    account_id: int
    refreshes: int


class AccountSignal(StrEnum):
    # To the account's workflow (signal-with-start on every connect and reconnect): the token was replaced, so
    # plan again.
    TOKEN_REPLACED = "token_replaced"
    # To each scheduled post of an account that needed reconnecting, once it is reconnected: a post waiting for
    # reconnect (PublishStep.WAITING_FOR_RECONNECT) goes on at once.
    ACCOUNT_RECONNECTED = "account_reconnected"


@dataclass(frozen=True)
class TokenReplaced:
    request_id: str = ""


@dataclass(frozen=True)
class AccountReconnected:
    account_id: int
    reconnected_at: datetime


@dataclass(frozen=True)
class AccountRef:
    account_id: int


@dataclass(frozen=True)
class RefreshPlan:
    """``gone``: the account was deleted or is being disconnected, the workflow ends. ``refresh_at`` None: nothing
    to refresh until the token is replaced (it needs reconnecting, or Facebook Login, which has no refresh)."""

    gone: bool
    refresh_at: datetime | None = None


class RefreshOutcome(StrEnum):
    REFRESHED = "refreshed"
    # Not refreshed, and nothing is wrong: the token was replaced meanwhile, or is younger than Meta allows.
    NOT_DUE = "not_due"
    NEEDS_RECONNECT = "needs_reconnect"
    GONE = "gone"


@dataclass(frozen=True)
class RefreshResult:
    outcome: RefreshOutcome
    token_expires_at: datetime | None = None


class AccountTokensInterface:
    @activity.defn
    def plan_token_refresh(self, request: AccountRef) -> RefreshPlan:
        raise NotImplementedError

    @activity.defn
    async def refresh_token(self, request: AccountRef) -> RefreshResult:
        raise NotImplementedError


# --- PostMetricsWorkflow: one per published post, reading its insights at +1 h, +24 h and +7 d ---------------
# Started by an activity of the post's workflow when the post is published (start_post_metrics), so that the
# post's own workflow still ends there. Its input and history hold the post id and times only: the activity reads the token itself.

POST_METRICS_WORKFLOW = "PostMetricsWorkflow"


def post_metrics_workflow_id(post_id: int | str) -> str:
    return f"post-metrics-{post_id}"


@dataclass(frozen=True)
class PostMetricsInput:
    post_id: int
    published_at: datetime


@dataclass(frozen=True)
class PostMetricsResult:
    post_id: int
    captured: list[MetricsCheckpoint] = field(default_factory=list)
    # Readings that ended without values: Instagram kept failing or refused, or had no data yet.
    missed: list[MetricsCheckpoint] = field(default_factory=list)


class CaptureOutcome(StrEnum):
    CAPTURED = "captured"
    # Instagram answered an empty data set (data not ready yet, or no longer kept, as for a story after 24 h).
    UNAVAILABLE = "unavailable"
    # Instagram refused, or kept failing until the last attempt; the error is stored with the reading.
    FAILED = "failed"
    # The post was deleted, or its account disconnected: no reading now or later.
    GONE = "gone"


@dataclass(frozen=True)
class CaptureMetricsInput:
    post_id: int
    checkpoint: MetricsCheckpoint
    # The attempt (the workflow's retry policy's maximum) on which a transient failure is stored instead of raised.
    final_attempt: int = 1


@dataclass(frozen=True)
class CaptureMetricsResult:
    outcome: CaptureOutcome


class PostMetricsInterface:
    @activity.defn
    async def capture_metrics(self, request: CaptureMetricsInput) -> CaptureMetricsResult:
        raise NotImplementedError


class PostMetricsStarterInterface:
    @activity.defn
    async def start_post_metrics(self, request: PostMetricsInput) -> None:
        """Starts the post's PostMetricsWorkflow; does nothing if it was already started."""
        raise NotImplementedError

    @activity.defn
    async def restart_post_metrics(self, request: PostMetricsInput) -> None:
        """Starts the post's PostMetricsWorkflow for ``request.published_at`` in place of the one started ahead
        for its planned time (terminated if still open): the post went out at another time."""
        raise NotImplementedError

    @activity.defn
    async def withdraw_post_metrics(self, request: PostRef) -> None:
        """Terminates the post's PostMetricsWorkflow if it is still open (started ahead for a post that then did not
        go out: cancelled, or failed); does nothing if there is none."""
        raise NotImplementedError


# --- SeriesWorkflow: one per recurring series, creating its occurrences as posts ahead of time -----------------

SERIES_WORKFLOW = "SeriesWorkflow"
# How far ahead a series' occurrences become posts.
SERIES_HORIZON_DAYS = 30


def series_workflow_id(series_id: int | str) -> str:
    return f"series-{series_id}"


@dataclass(frozen=True)
class SeriesInput:
    """The series id only: the activities read the series. ``rounds`` counts earlier runs' rounds (the workflow
    continues as new)."""

    series_id: int
    rounds: int = 0


@dataclass(frozen=True)
class SeriesResult:
    series_id: int
    rounds: int


class SeriesSignal(StrEnum):
    # Signal-with-start on every create, edit and cancel of the series: read it again.
    CHANGED = "series_changed"


@dataclass(frozen=True)
class SeriesChanged:
    request_id: str = ""


@dataclass(frozen=True)
class OccurrencesInput:
    """Create the series' occurrences after ``now`` (the workflow's clock) and up to ``horizon_days`` ahead."""

    series_id: int
    now: datetime
    horizon_days: int = SERIES_HORIZON_DAYS


@dataclass(frozen=True)
class OccurrencesResult:
    """``ended``: the series was cancelled or deleted, or its rule has no occurrence beyond the horizon (all
    created). ``next_check_at``: when the next occurrence enters the horizon."""

    ended: bool
    created_post_ids: list[int] = field(default_factory=list)
    next_check_at: datetime | None = None


class SeriesInterface:
    @activity.defn
    async def create_occurrences(self, request: OccurrencesInput) -> OccurrencesResult:
        raise NotImplementedError


ACTIVITY_INTERFACES: tuple[type, ...] = (
    PostStoreInterface,
    MediaInterface,
    InstagramInterface,
    AccountTokensInterface,
    RunHistoryInterface,
    PostMetricsInterface,
    PostMetricsStarterInterface,
    SeriesInterface,
)


# --- Notifications: webhook and email delivery (workflows/webhook_delivery.py, activities/notifications.py) ------
# On a task queue of their own, so that no delivery ever takes a slot a post's publish needs.

NOTIFICATIONS_TASK_QUEUE = "chronogram-notifications"
WEBHOOK_ENDPOINT_WORKFLOW = "WebhookEndpointWorkflow"
EMAIL_NOTIFICATION_WORKFLOW = "EmailNotificationWorkflow"
WEBHOOK_WAKE_SIGNAL = "wake"


def webhook_endpoint_workflow_id(endpoint_id: int) -> str:
    return f"webhook-endpoint-{endpoint_id}"


def email_workflow_id(delivery_id: int) -> str:
    return f"email-delivery-{delivery_id}"


@dataclass(frozen=True)
class RetrySchedule:
    """One delivery's retries: exponential from ``initial_seconds``, each wait capped at
    ``max_interval_seconds``, for at most ``window_seconds`` in all (chronogram.settings)."""

    initial_seconds: float
    max_interval_seconds: float
    window_seconds: float
    request_timeout_seconds: float


@dataclass(frozen=True)
class WebhookEndpointInput:
    """The workflow of one endpoint: delivers its pending deliveries, each post's events in order."""

    endpoint_id: int
    retry: RetrySchedule


class EndpointStop(StrEnum):
    IDLE = "idle"  # nothing left to deliver
    DISABLED = "disabled"  # disabled, deleted, answered 410 Gone, or failing for the whole retry window


@dataclass(frozen=True)
class WebhookEndpointResult:
    endpoint_id: int
    delivered: int
    stop: EndpointStop


@dataclass(frozen=True)
class WakeSignal:
    """New deliveries may be pending: look again."""

    reason: str = ""


@dataclass(frozen=True)
class EmailNotificationInput:
    delivery_id: int
    retry: RetrySchedule


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"  # the endpoint answered 410 Gone: it is disabled
    SKIPPED = "skipped"  # nothing to send: delivered already, or the endpoint is disabled or deleted
    FAILED = "failed"  # retries spent
    # A first attempt in a batch failed (no answer, or neither 2xx nor 410), recorded with its next retry: the
    # delivery goes on alone, retried on its schedule (WebhookDeliveryInterface.deliver_due).
    RETRY = "retry"


@dataclass(frozen=True)
class EmailNotificationResult:
    delivery_id: int
    outcome: DeliveryOutcome


@dataclass(frozen=True)
class DueDeliveriesInput:
    endpoint_id: int
    limit: int


@dataclass(frozen=True)
class DueDeliveries:
    """Pending deliveries in event order; ``ordering_keys[i]`` says which must go in order with which (a post's
    id for its events: one post's events are delivered one after the other, different posts' side by side)."""

    delivery_ids: list[int]
    ordering_keys: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class DeliveryRef:
    delivery_id: int
    retry: RetrySchedule


@dataclass(frozen=True)
class DeliveryReport:
    outcome: DeliveryOutcome


@dataclass(frozen=True)
class DeliverDueInput:
    """Send the first attempt of the endpoint's due deliveries, at most ``limit``, side by side: for each ordering
    key the oldest pending delivery only (a post's events go one after the other), none of ``busy_keys`` (their
    earlier delivery is being retried)."""

    endpoint_id: int
    busy_keys: list[int]
    limit: int
    retry: RetrySchedule


@dataclass(frozen=True)
class DeliverDueReport:
    """The deliveries attempted, each with its ordering key and outcome (DELIVERED, GONE, SKIPPED, or RETRY: it
    failed, its next retry is recorded); ``more``: due deliveries were left for the next round."""

    delivery_ids: list[int]
    ordering_keys: list[int]
    outcomes: list[DeliveryOutcome]
    more: bool


@dataclass(frozen=True)
class DueHeadsInput:
    """What may go out now (read only): for each ordering key but ``busy_keys`` (a delivery of theirs is out or
    being retried), its oldest pending delivery, at most ``limit``."""

    endpoint_id: int
    busy_keys: list[int]
    limit: int


@dataclass(frozen=True)
class DueHeads:
    """The deliveries that may go out now, in event order, each with its ordering key; ``more``: more is due than
    was taken (a key's later delivery, or past the limit)."""

    delivery_ids: list[int]
    ordering_keys: list[int]
    more: bool


@dataclass(frozen=True)
class FirstAttemptsInput:
    """Send the first attempt of each of these deliveries (the workflow took them with ``due_heads``), side by
    side; one that is no longer pending is left out (SKIPPED)."""

    endpoint_id: int
    delivery_ids: list[int]
    retry: RetrySchedule


@dataclass(frozen=True)
class FirstAttemptsReport:
    """Each delivery's outcome, in the order of the input's (DELIVERED, GONE, SKIPPED, or RETRY: it failed, its
    next retry is recorded)."""

    outcomes: list[DeliveryOutcome]


@dataclass(frozen=True)
class PumpInput:
    """Deliver the endpoint's events as they come, for up to ``max_seconds`` or ``max_deliveries``, and until none
    came for ``linger_seconds``: each post's oldest pending delivery, side by side, none of a post whose earlier
    delivery is being retried (its attempts recorded) or is out. ``retrying_ids``: the deliveries the workflow
    retries; any other pending delivery with an attempt behind it (a pump lost after recording it) is reported
    for the workflow to retry."""

    endpoint_id: int
    retry: RetrySchedule
    retrying_ids: list[int]
    linger_seconds: float
    max_seconds: float
    max_deliveries: int


@dataclass(frozen=True)
class PumpReport:
    """What a pump delivered; the deliveries whose first attempt failed (each with its ordering key), for the
    workflow to retry alone; whether the endpoint answered 410 (it is disabled); ``idle``: it ended because
    nothing came for its linger, not to hand over retries or at its limits."""

    delivered: int
    retry_ids: list[int]
    retry_keys: list[int]
    gone: bool
    idle: bool


@dataclass(frozen=True)
class GiveUpInput:
    """A delivery whose retries are spent; ``endpoint_id`` set: the endpoint is disabled and its owner told."""

    delivery_id: int
    endpoint_id: int | None = None


class WebhookDeliveryInterface:
    @activity.defn
    async def due_deliveries(self, request: DueDeliveriesInput) -> DueDeliveries:
        raise NotImplementedError

    @activity.defn
    async def deliver_webhook(self, request: DeliveryRef) -> DeliveryReport:
        raise NotImplementedError

    @activity.defn
    async def give_up_delivery(self, request: GiveUpInput) -> None:
        raise NotImplementedError

    @activity.defn
    async def deliver_due(self, request: DeliverDueInput) -> DeliverDueReport:
        raise NotImplementedError

    @activity.defn
    async def due_heads(self, request: DueHeadsInput) -> DueHeads:
        raise NotImplementedError

    @activity.defn
    async def send_first_attempts(self, request: FirstAttemptsInput) -> FirstAttemptsReport:
        raise NotImplementedError

    @activity.defn
    async def pump_deliveries(self, request: PumpInput) -> PumpReport:
        raise NotImplementedError


class EmailInterface:
    @activity.defn
    def send_email(self, request: DeliveryRef) -> DeliveryReport:
        raise NotImplementedError


NOTIFICATION_ACTIVITY_INTERFACES: tuple[type, ...] = (WebhookDeliveryInterface, EmailInterface)


def activity_names(interface: type) -> list[str]:
    """The activities an interface declares, in declaration order (their method names are their names)."""
    return [
        name for name, member in vars(interface).items() if hasattr(member, "__temporal_activity_definition")
    ]
