"""Instagram activities: containers, polling, the exactly-once publish, permalink and first comment.

Tokens are read and decrypted here, per call, and never leave these methods: workflow inputs, results and
histories only ever hold post ids and Instagram object ids. Every Graph API error is translated at this edge into
an ``ApplicationError`` whose type is the error's stable ``kind``, so workflows branch on types, not messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from minio import Minio
from pydantic import SecretStr
from sqlalchemy import Engine, bindparam
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.account_status import marks_account_on_auth_error
from activities.held_calls import HeldCalls
from activities.media import rendition_key
from activities.publish_records import Column, PublishRecords
from activities.rows import post_media, post_not_found
from chronogram import lifecycle
from chronogram.contracts import (
    ContainerCheck,
    ContainerRef,
    ContainerReport,
    CreateContainerInput,
    ErrorType,
    FirstCommentResult,
    InstagramInterface,
    MediaRef,
    PermalinkResult,
    PostRef,
    PublishInput,
    PublishOutcome,
    PublishResult,
    QuotaReport,
    ReconcileInput,
    ReconcileResult,
    cap_error_text,
)
from chronogram.crypto import TokenCipher
from chronogram.enums import PostType
from chronogram.instagram import (
    CarouselImageItemSpec,
    CarouselSpec,
    CarouselVideoItemSpec,
    ContainerSpec,
    ContainerStatusCode,
    ErrorClass,
    GraphAPIError,
    GraphClient,
    ImageSpec,
    OutcomeUnknownError,
    ReelSpec,
    StorySpec,
    UserTag,
)
from chronogram.models import InstagramAccount, MediaAsset, Post, PostMedia
from chronogram.observability.logs import remember_account
from chronogram.observability.metrics import QUOTA_WAITS, observe_publish_lag

# Meta fetches the media while the container is IN_PROGRESS; a day covers that and the container's own lifetime.
_PRESIGNED_URL_TTL = timedelta(hours=24)
# Instagram's default when it sends no rate-limit hint.
_DEFAULT_QUOTA_TOTAL = 100
# How far around a publish attempt a media found in the account's feed may be the one we published.
_RECONCILE_WINDOW = timedelta(minutes=2)


_HEARTBEAT_EVERY = 2.0
# The workflow wakes ahead of the publish time (more ahead the more posts are due with it: a burst) and the publish
# activity holds media_publish until then. A longer hold than this means the worker's clock and Temporal's
# disagree, and then publishing a little early beats stalling until the activity times out.
_LONGEST_HOLD = timedelta(seconds=90)
# While it holds, the activity heartbeats this often, on a schedule that ends with one beat _LAST_CALL before the
# publish time: the reply to that beat is the last moment at which a cancellation (a cancel, reschedule or
# publish-now the workflow accepted during the hold) still stops the call. Within the workflow's 10 s heartbeat
# timeout, counting the regular beat's 2 s before the hold; not more often, as a burst of 1,000 held calls costs
# the server 1,000 heartbeats per interval. The worker of held publishes sends every beat at once (its throttle is
# below both: chronogram.temporal.HEARTBEAT_THROTTLE).
_HOLD_BEAT_EVERY = timedelta(seconds=6)
_LAST_CALL = timedelta(seconds=0.5)
# A throttled media_publish is retried by an attempt that reads the container first (PUBLISHED: nothing is sent
# again), after the wait the throttle announced, or this long when it announced none: the low end of Meta's
# "retry within 30 s to 2 min" (reference §8.4), rather than the minutes a throttle on a read is given.
_THROTTLED_PUBLISH_WAIT = timedelta(seconds=30)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass
class _Beats:
    """Whether the regular heartbeat of the running activity is paused (the hold beats on its own schedule)."""

    paused: bool = False


_BEATS: ContextVar[_Beats | None] = ContextVar("chronogram_activity_beats", default=None)


def keeps_heartbeat(method: F) -> F:
    """Heartbeat while the wrapped activity runs, so that a worker that dies mid-call (even by SIGKILL) is
    noticed within the workflow's heartbeat timeout instead of the whole start-to-close timeout."""

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        beats = _Beats()
        token = _BEATS.set(beats)

        async def beat() -> None:
            # The heartbeat timeout runs from the start, so the first beat can wait: a call that is done within
            # the interval (nearly all of them) costs Temporal no heartbeat at all.
            while True:
                await asyncio.sleep(_HEARTBEAT_EVERY)
                if not beats.paused:
                    activity.heartbeat()

        beating = asyncio.create_task(beat())
        try:
            return await method(*args, **kwargs)
        finally:
            beating.cancel()
            _BEATS.reset(token)

    return cast(F, wrapper)


def _hold_beats(now: datetime, end: datetime) -> list[datetime]:
    """When a hold from ``now`` until ``end`` heartbeats: _HOLD_BEAT_EVERY apart counted from the hold's start,
    then once more _LAST_CALL before ``end``. Counted from the start, the beats of a burst's holds (which begin
    one after the other, see workflows/scheduled_post.py) are spread over time; counted back from the shared
    instant, a thousand of them reached the server at the same moments, every _HOLD_BEAT_EVERY, while the rest
    of the burst was waking."""
    last = end - _LAST_CALL
    if last <= now:
        return []
    beats: list[datetime] = []
    beat = now + _HOLD_BEAT_EVERY
    while beat < last:
        beats.append(beat)
        beat += _HOLD_BEAT_EVERY
    beats.append(last)
    return beats


# A held call answered waits for the others held for the same instant at most until this long after it
# (activities/held_calls.py), and heartbeats not meanwhile: the hold's last beat (_LAST_CALL before the instant)
# plus this stay within the workflow's 10 s heartbeat timeout.
_SETTLE_AT_MOST = timedelta(seconds=5)
# How long before a held call's instant its token is read again (see InstagramActivities.publish).
_TOKEN_READ_AHEAD = timedelta(seconds=1)
# How long a publish waits at most for its new media's permalink before leaving it to the workflow's own call.
_PERMALINK_AFTER_PUBLISH_AT_MOST = timedelta(seconds=5)
# A held publish's silence after its instant ends this long before its heartbeat timeout would.
_SILENCE_MARGIN = timedelta(seconds=1)


@contextlib.contextmanager
def _beats_paused() -> Iterator[None]:
    """The running activity's regular heartbeat (keeps_heartbeat) stops meanwhile."""
    beats = _BEATS.get()
    if beats is not None:
        beats.paused = True
    try:
        yield
    finally:
        if beats is not None:
            beats.paused = False


def _silent_until(instant: datetime) -> datetime:
    """How long a held publish may go on without a heartbeat after its instant: until _SILENCE_MARGIN before the
    heartbeat timeout, counted from the hold's last beat (_LAST_CALL before the instant)."""
    timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
    if not timeout:
        return instant + _SETTLE_AT_MOST + _PERMALINK_AFTER_PUBLISH_AT_MOST
    return instant - _LAST_CALL + timeout - _SILENCE_MARGIN


async def _hold_until(instant: datetime | None) -> None:
    """Sleeps until ``instant`` on this worker's clock (at most _LONGEST_HOLD). Inside an activity it heartbeats
    meanwhile, so that a cancellation of the activity (asyncio.CancelledError, raised here) reaches it before the
    call is sent."""
    if instant is None:
        return
    now = datetime.now(UTC)
    end = min(instant, now + _LONGEST_HOLD)
    if end <= now:
        return
    beats = _BEATS.get()
    heartbeats = activity.in_activity() and beats is not None
    if beats is not None:
        beats.paused = True
    try:
        for beat in _hold_beats(now, end) if heartbeats else []:
            await asyncio.sleep(max((beat - datetime.now(UTC)).total_seconds(), 0.0))
            activity.heartbeat()
        remaining = (end - datetime.now(UTC)).total_seconds()
        if remaining > 0:
            await asyncio.sleep(remaining)
    finally:
        if beats is not None:
            beats.paused = False


def as_application_error(error: GraphAPIError, *, retryable: bool | None = None) -> ApplicationError:
    """One translation for every activity: the type is the error's kind; throttles carry Meta's wait time.
    ``retryable`` overrides the error's own verdict (the token refresh retries every refusal)."""
    return ApplicationError(
        cap_error_text(f"{error.user_message} [{error}]"),
        type=error.kind,
        non_retryable=not (error.retryable if retryable is None else retryable),
        next_retry_delay=error.retry_after,
    )


def _checked_retry(error: GraphAPIError, *, unannounced_wait: timedelta | None = None) -> ApplicationError:
    """An unclear answer to a call that the next attempt checks before repeating (the publish reads the container,
    the comment looks for itself first): retried as the transient or throttled failure it was, never as final.
    ``unannounced_wait`` replaces the default wait of a throttle that announced none."""
    throttled = isinstance(error, OutcomeUnknownError) and error.underlying is ErrorClass.THROTTLED
    wait = error.retry_after
    if throttled and error.details.retry_after_assumed and unannounced_wait is not None:
        wait = unannounced_wait
    return ApplicationError(
        cap_error_text(f"{error.user_message} [{error}]"),
        type=ErrorType.GRAPH_THROTTLED if throttled else ErrorType.GRAPH_TRANSIENT,
        next_retry_delay=wait,
    )


def _publish_call(attempt: int) -> str:
    """What posts.last_publish_call holds for this workflow run's publish ``attempt``."""
    return f"{activity.info().workflow_run_id}/{attempt}"


# One query for the post and its account, since every Graph call at publish time starts here; built once, so
# SQLAlchemy does not rebuild and re-key the statement on every call.
_CONTEXT_QUERY = (
    select(
        Post, InstagramAccount.ig_user_id, InstagramAccount.username, InstagramAccount.access_token_ciphertext
    )
    .outerjoin(InstagramAccount, InstagramAccount.id == Post.account_id)  # type: ignore[arg-type]
    .where(Post.id == bindparam("post_id"))
)
_CREDENTIALS_QUERY = select(
    InstagramAccount.id, InstagramAccount.ig_user_id, InstagramAccount.access_token_ciphertext
).where(InstagramAccount.id.in_(bindparam("ids", expanding=True)))  # type: ignore[union-attr]


def _account_disconnected(post_id: int) -> ApplicationError:
    return ApplicationError(
        f"the Instagram account of post {post_id} was disconnected",
        type=ErrorType.GRAPH_AUTH,
        non_retryable=True,
    )


@dataclass(frozen=True)
class _Credentials:
    ig_user_id: str
    token: SecretStr


class _CredentialReads:
    """Reads accounts' Instagram user ids and tokens again just before held calls, by group read: the requests
    that arrive while one read runs go together in the next, one query and one decryption per account. At a
    burst's instant a thousand held calls over a few dozen accounts then wait for a few reads, not a thousand;
    every caller still gets a read begun after it asked (a token refreshed or replaced before that is the one
    it sends)."""

    def __init__(self, engine: Engine, cipher: TokenCipher) -> None:
        self._engine = engine
        self._cipher = cipher
        self._pending: dict[int, list[asyncio.Future[_Credentials | None]]] = {}
        self._reading: asyncio.Task[None] | None = None

    async def read(self, account_id: int) -> _Credentials | None:
        """None: the account was disconnected (or deleted) meanwhile."""
        done: asyncio.Future[_Credentials | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(account_id, []).append(done)
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read_pending())
        return await done

    async def _read_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                found = await asyncio.to_thread(self._read, set(batch))
            except Exception as error:  # the batch's callers fail alike, as each would have alone
                for waiting in batch.values():
                    for done in waiting:
                        if not done.done():
                            done.set_exception(error)
                continue
            for account_id, waiting in batch.items():
                for done in waiting:
                    if not done.done():  # else its activity was cancelled meanwhile
                        done.set_result(found.get(account_id))

    def _read(self, account_ids: set[int]) -> dict[int, _Credentials]:
        with Session(self._engine) as session:
            rows = session.exec(_CREDENTIALS_QUERY, params={"ids": list(account_ids)}).all()
        return {
            account_id: _Credentials(ig_user_id=ig_user_id, token=self._cipher.decrypt(ciphertext))
            for account_id, ig_user_id, ciphertext in rows
            if account_id is not None and ig_user_id is not None and ciphertext is not None
        }


@dataclass(frozen=True)
class _PostContext:
    post: Post
    ig_user_id: str
    username: str
    token: SecretStr
    items: list[tuple[PostMedia, MediaAsset]]


class InstagramActivities(InstagramInterface):
    def __init__(
        self, graph: GraphClient, engine: Engine, storage: Minio, bucket: str, cipher: TokenCipher
    ) -> None:
        self._graph = graph
        self._engine = engine
        self._storage = storage
        self._bucket = bucket
        self._cipher = cipher
        self._records = PublishRecords(engine)
        self._held = HeldCalls()
        self._credentials = _CredentialReads(engine, cipher)

    # --- reads: retried freely by the workflow's policies ------------------------------------------------------

    @activity.defn
    @marks_account_on_auth_error
    @keeps_heartbeat
    async def get_publishing_quota(self, request: PostRef) -> QuotaReport:
        context = await self._context(request.post_id)
        try:
            limit = await self._graph.get_publishing_limit(
                ig_user_id=context.ig_user_id, access_token=self._token(context)
            )
        except GraphAPIError as error:
            raise as_application_error(error) from None
        report = QuotaReport(usage=limit.quota_usage, total=limit.quota_total or _DEFAULT_QUOTA_TOTAL)
        if report.usage >= report.total:  # the workflow waits on exactly this answer
            QUOTA_WAITS.inc()
        return report

    @activity.defn
    @marks_account_on_auth_error
    @keeps_heartbeat
    async def check_container_ready(self, request: ContainerCheck) -> ContainerReport:
        """Returns once the container is FINISHED; raises a retryable "not ready" while it is IN_PROGRESS, so
        the retry policy is the polling loop."""
        context = await self._context(request.post_id)
        try:
            status = await self._graph.get_container(
                container_id=request.container_id, access_token=self._token(context)
            )
        except GraphAPIError as error:
            raise as_application_error(error) from None
        if status.status_code is ContainerStatusCode.IN_PROGRESS:
            raise ApplicationError(
                f"container {request.container_id} is still processing",
                type=ErrorType.CONTAINER_NOT_READY,
                category=ApplicationErrorCategory.BENIGN,
            )
        unusable = status.error()
        if unusable is not None:
            raise as_application_error(unusable)
        return ContainerReport(container_id=status.id, status_code=status.status_code)

    @activity.defn
    @marks_account_on_auth_error
    @keeps_heartbeat
    async def reconcile_publish(self, request: ReconcileInput) -> ReconcileResult:
        """Whether a publish whose outcome is unknown went live: the container's status is the documented truth.
        Given the attempt, also whether that attempt's media_publish call was sent at all."""
        context = await self._context(request.post_id)
        token = self._token(context)
        call_sent = (
            None
            if request.attempt is None
            else context.post.last_publish_call == _publish_call(request.attempt)
        )
        try:
            status = await self._graph.get_container(container_id=request.container_id, access_token=token)
            if status.status_code is not ContainerStatusCode.PUBLISHED:
                return ReconcileResult(status_code=status.status_code, call_sent=call_sent)
            media_id = context.post.ig_media_id or await self._find_published_media(context, request, token)
        except GraphAPIError as error:
            raise as_application_error(error) from None
        if media_id and not context.post.ig_media_id:
            await self._records.published(request.post_id, Column.MEDIA_ID, media_id)
        return ReconcileResult(status_code=status.status_code, media_id=media_id, call_sent=call_sent)

    async def _find_published_media(
        self, context: _PostContext, request: ReconcileInput, token: str
    ) -> str | None:
        # Match on exact caption and time window; without a unique match, leave the id unknown rather than bind
        # someone else's post (never take the newest media blindly).
        if context.post.type is PostType.STORIES:
            return None  # stories are not listed by /media
        recent = await self._graph.list_media(
            ig_user_id=context.ig_user_id, access_token=token, since=request.attempted_at - _RECONCILE_WINDOW
        )
        candidates = [
            media.id
            for media in recent
            if (media.caption or "") == (context.post.caption or "")
            and (media.timestamp is None or media.timestamp >= request.attempted_at - _RECONCILE_WINDOW)
        ]
        return candidates[0] if len(candidates) == 1 else None

    @activity.defn
    @marks_account_on_auth_error
    @keeps_heartbeat
    async def fetch_permalink(self, request: MediaRef) -> PermalinkResult:
        context = await self._context(request.post_id)
        try:
            media = await self._graph.get_media(media_id=request.media_id, access_token=self._token(context))
        except GraphAPIError as error:
            raise as_application_error(error) from None
        if media.permalink:
            await self._records.published(request.post_id, Column.PERMALINK, media.permalink)
        return PermalinkResult(permalink=media.permalink)

    # --- mutations ---------------------------------------------------------------------------------------------

    @activity.defn
    @marks_account_on_auth_error
    @keeps_heartbeat
    async def create_container(self, request: CreateContainerInput) -> ContainerRef:
        """Creates the container for one slot (a carousel item, or the post itself) and stores its id before
        returning. A slot whose stored container is still usable is not created again: a second container next
        to a FINISHED or PUBLISHED one is how duplicates begin."""
        context = await self._context(request.post_id, with_media=True)
        token = self._token(context)
        existing = self._stored_container(context, request.position)
        try:
            if existing is not None:
                status = await self._graph.get_container(container_id=existing, access_token=token)
                if status.status_code not in (ContainerStatusCode.ERROR, ContainerStatusCode.EXPIRED):
                    return ContainerRef(container_id=existing)
            ref = await self._graph.create_container(
                ig_user_id=context.ig_user_id, spec=self._spec(context, request), access_token=token
            )
        except GraphAPIError as error:
            raise as_application_error(error) from None
        await asyncio.to_thread(self._save_container, request.post_id, request.position, ref.id)
        return ContainerRef(container_id=ref.id)

    @activity.defn
    @marks_account_on_auth_error
    @keeps_heartbeat
    async def publish(self, request: PublishInput) -> PublishResult:
        """Calls media_publish at most once per activity (the workflow never retries this activity). Checks
        first: a container that is already PUBLISHED is never published again. Every failure before the call is
        raised as what it was (a plain retry for the workflow); the call is recorded as sent before it is sent.
        A throttled call is retried no sooner than Meta's commit window, by a new attempt that reads first."""
        context = await self._context(request.post_id)
        ig_user_id, token = context.ig_user_id, self._token(context)
        try:
            status = await self._graph.get_container(container_id=request.container_id, access_token=token)
        except GraphAPIError as error:
            raise as_application_error(error) from None
        if status.status_code is ContainerStatusCode.PUBLISHED:
            return PublishResult(outcome=PublishOutcome.ALREADY_PUBLISHED, media_id=context.post.ig_media_id)
        if status.status_code is ContainerStatusCode.IN_PROGRESS:
            raise ApplicationError(
                f"container {request.container_id} is still processing", type=ErrorType.CONTAINER_NOT_READY
            )
        unusable = status.error()  # prepared ahead of time, it may have expired while the post waited
        if unusable is not None:
            raise as_application_error(unusable)
        call = _publish_call(request.attempt)
        if activity.info().attempt > 1 and context.post.last_publish_call == call:
            # An earlier attempt of this activity sent the call and died: only the workflow may settle that.
            raise ApplicationError(
                f"an earlier attempt sent media_publish for container {request.container_id} without an answer",
                type=ErrorType.OUTCOME_UNKNOWN,
                non_retryable=True,
            )
        instant = request.not_before
        # Counted from the hold until the answer: see activities/held_calls.py.
        with self._held.call(instant) if instant is not None else contextlib.nullcontext():
            if instant is not None and instant - datetime.now(UTC) > 2 * _TOKEN_READ_AHEAD:
                # A long hold: the token read above may be refreshed or replaced (a reconnect) before the instant,
                # so it is read again just ahead of it, off the instant itself.
                await _hold_until(instant - _TOKEN_READ_AHEAD)
                credentials = await self._credentials.read(context.post.account_id)
                if credentials is None:
                    raise _account_disconnected(request.post_id)
                ig_user_id, token = credentials.ig_user_id, credentials.token.get_secret_value()
            await _hold_until(instant)
            if request.deadline is not None and datetime.now(UTC) > request.deadline:
                raise ApplicationError(
                    f"the post's deadline {request.deadline:%Y-%m-%d %H:%M:%S} UTC passed before media_publish was "
                    "sent; nothing was published",
                    type=ErrorType.PUBLISH_DEADLINE_PASSED,
                    non_retryable=True,
                )
            # Recorded after the hold (a worker killed while holding sent nothing, and its retry knows it), in
            # one transaction with the other calls of the same moment: a burst's calls wait for a few writes.
            await self._records.call_about_to_be_sent(request.post_id, call)
            try:
                media = await self._graph.publish(
                    ig_user_id=ig_user_id, container_id=request.container_id, access_token=token
                )
            except OutcomeUnknownError as error:
                if error.underlying is ErrorClass.THROTTLED:
                    raise _checked_retry(error, unannounced_wait=_THROTTLED_PUBLISH_WAIT) from None
                raise as_application_error(error) from None
            except GraphAPIError as error:
                raise as_application_error(error) from None
        answered = datetime.now(UTC)
        observe_publish_lag(context.post.publish_at, answered)
        # The media id is the proof of publication: it is stored before anything else can fail.
        await self._records.published(request.post_id, Column.MEDIA_ID, media.id)
        if instant is None:
            permalink = await self._permalink_after_publish(request.post_id, media.id, token)
        else:
            # Without heartbeats (a thousand of them at a burst's instant cost the server a thousand writes): the
            # hold's last beat was _LAST_CALL before the instant, and the heartbeat timeout counts from it.
            with _beats_paused():
                await self._after_the_other_held_calls(instant)
                permalink = await self._permalink_after_publish(
                    request.post_id, media.id, token, until=_silent_until(instant)
                )
        return PublishResult(
            outcome=PublishOutcome.PUBLISHED, media_id=media.id, published_at=answered, permalink=permalink
        )

    async def _permalink_after_publish(
        self, post_id: int, media_id: str, token: str, *, until: datetime | None = None
    ) -> str | None:
        """The new media's permalink, read and stored right after its publish (once the other calls held for the
        same instant are answered), so that the workflow needs no activity of its own for it; given up at
        ``until`` (_PERMALINK_AFTER_PUBLISH_AT_MOST at most). Nothing here may fail the publish, whose answer the
        workflow must have: a refusal, a slow answer, a failed write or a cancellation (the post is live) leave the
        permalink to the workflow's fetch_permalink, which retries."""
        now = datetime.now(UTC)
        latest = now + _PERMALINK_AFTER_PUBLISH_AT_MOST
        seconds = ((latest if until is None else min(until, latest)) - now).total_seconds()
        if seconds <= 0:
            return None
        try:
            async with asyncio.timeout(seconds):
                media = await self._graph.get_media(media_id=media_id, access_token=token)
                if media.permalink:
                    await self._records.published(post_id, Column.PERMALINK, media.permalink)
        except (GraphAPIError, SQLAlchemyError, TimeoutError, asyncio.CancelledError):
            return None
        return media.permalink

    async def _after_the_other_held_calls(self, instant: datetime) -> None:
        """Waits until the other calls held for ``instant`` in this process are answered (_SETTLE_AT_MOST after it
        at most; the caller pauses the heartbeats, see _silent_until). A cancellation is not for this activity any
        more: the post is live, and its workflow must have the answer."""
        try:
            await self._held.all_answered(instant, at_most_until=instant + _SETTLE_AT_MOST)
        except asyncio.CancelledError:
            pass

    @activity.defn
    @marks_account_on_auth_error
    @keeps_heartbeat
    async def post_first_comment(self, request: MediaRef) -> FirstCommentResult:
        """Exactly once: a comment id already stored, or our own identical comment already on the media, means
        an earlier attempt got through. Each call is counted before it is sent (posts.first_comment_calls), so
        the media is searched only when an earlier attempt, of this run or an earlier one (failed after commenting,
        then retried), can have left the comment without its id stored; the first call of a post is one request."""
        context = await self._context(request.post_id)
        if context.post.ig_first_comment_id:
            return FirstCommentResult(comment_id=context.post.ig_first_comment_id, created=False)
        message = context.post.first_comment or ""
        token = self._token(context)
        try:
            if (
                context.post.first_comment_calls != 0
            ):  # None: a post from before the count, which may have one
                for comment in await self._graph.list_comments(media_id=request.media_id, access_token=token):
                    if comment.text == message and comment.username in (None, context.username):
                        await self._records.published(request.post_id, Column.FIRST_COMMENT_ID, comment.id)
                        return FirstCommentResult(comment_id=comment.id, created=False)
            await self._records.first_comment_about_to_be_sent(request.post_id)
            comment = await self._graph.create_comment(
                media_id=request.media_id, message=message, access_token=token
            )
        except OutcomeUnknownError as error:
            # The next attempt looks for this comment before creating one: an unclear answer is a safe retry.
            raise _checked_retry(error) from None
        except GraphAPIError as error:
            raise as_application_error(error) from None
        await self._records.published(request.post_id, Column.FIRST_COMMENT_ID, comment.id)
        return FirstCommentResult(comment_id=comment.id, created=True)

    # --- helpers -----------------------------------------------------------------------------------------------

    def _token(self, context: _PostContext) -> str:
        return context.token.get_secret_value()

    async def _context(self, post_id: int, *, with_media: bool = False) -> _PostContext:
        return await asyncio.to_thread(self._load_context, post_id, with_media)

    def _load_context(self, post_id: int, with_media: bool) -> _PostContext:
        with Session(self._engine) as session:
            row = session.exec(_CONTEXT_QUERY, params={"post_id": post_id}).first()
            if row is None:
                raise post_not_found(post_id)
            post, ig_user_id, username, ciphertext = row
            remember_account(post_id, post.account_id)
            if ig_user_id is None or username is None or ciphertext is None:
                raise _account_disconnected(post_id)
            # Only creating containers reads the media; the other calls run at publish time, where every query counts.
            items = post_media(session, post_id) if with_media else []
            session.expunge_all()
        return _PostContext(
            post=post,
            ig_user_id=ig_user_id,
            username=username,
            token=self._cipher.decrypt(ciphertext),
            items=items,
        )

    @staticmethod
    def _stored_container(context: _PostContext, position: int | None) -> str | None:
        if position is None:
            return context.post.ig_container_id
        return next(
            (item.ig_container_id for item, _asset in context.items if item.position == position), None
        )

    def _url(self, asset: MediaAsset) -> str:
        return self._storage.presigned_get_object(
            self._bucket, rendition_key(asset), expires=_PRESIGNED_URL_TTL
        )

    def _spec(self, context: _PostContext, request: CreateContainerInput) -> ContainerSpec:
        post = context.post
        tags = tuple(
            UserTag(username=tag["username"], x=tag.get("x"), y=tag.get("y")) for tag in post.user_tags
        )
        if request.position is not None:
            item, asset = next((i, a) for i, a in context.items if i.position == request.position)
            if asset.is_video:
                return CarouselVideoItemSpec(video_url=self._url(asset))
            item_tags = tuple(
                UserTag(username=t["username"], x=t.get("x"), y=t.get("y")) for t in item.user_tags
            )
            return CarouselImageItemSpec(
                image_url=self._url(asset), user_tags=item_tags, alt_text=item.alt_text
            )
        options = post.reel_options or {}
        collaborators = tuple(options.get("collaborators", ()))
        if post.type is PostType.CAROUSEL:
            return CarouselSpec(
                children=tuple(request.children),
                caption=post.caption,
                location_id=post.location_id,
                collaborators=collaborators,
            )
        _item, asset = context.items[0]
        if post.type is PostType.REELS:
            return ReelSpec(
                video_url=self._url(asset),
                caption=post.caption,
                location_id=post.location_id,
                user_tags=tags,
                collaborators=collaborators,
                share_to_feed=options.get("share_to_feed"),
                cover_url=options.get("cover_url"),
                thumb_offset_ms=options.get("thumb_offset_ms"),
            )
        if post.type is PostType.STORIES:
            if asset.is_video:
                return StorySpec(video_url=self._url(asset), user_tags=tags)
            return StorySpec(image_url=self._url(asset), user_tags=tags)
        return ImageSpec(
            image_url=self._url(asset),
            caption=post.caption,
            location_id=post.location_id,
            user_tags=tags,
            alt_text=post.alt_text,
        )

    def _save_container(self, post_id: int, position: int | None, container_id: str) -> None:
        with self._engine.begin() as connection:
            try:
                lifecycle.record_container(
                    connection, post_id=post_id, position=position, container_id=container_id
                )
            except lifecycle.PostMissing as missing:
                raise post_not_found(missing.post_id) from None
