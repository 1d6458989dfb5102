"""Typed errors for the Instagram Graph API, classified by what the caller should do next.

``kind`` is the stable :class:`~chronogram.contracts.ErrorType` the activity layer uses as the Temporal ``ApplicationError`` type; ``retryable``
says whether repeating the *same* call can succeed::

    GraphAPIError                 kind                      retryable  caller's next step
    ├─ GraphTransientError        GraphTransientError       yes        back off and retry (1, 2, 5xx, HTML, read timeouts)
    ├─ GraphThrottledError        GraphThrottledError       yes        wait ``retry_after`` (4, 17, 32, 613, 800xx, 368)
    ├─ PublishQuotaReachedError   PublishQuotaReachedError  yes        wait for the rolling 24 h window (9/2207042)
    ├─ ContainerNotReadyError     ContainerNotReadyError    yes        poll the container again (9007/2207027)
    ├─ GraphAuthError             GraphAuthError            no         reconnect the account (190, 102, 104, 3, 10, 2xx)
    ├─ GraphInvalidRequestError   GraphInvalidRequestError  no         show ``user_message``; fix the post
    │  └─ InvalidMediaError       InvalidMediaError         no         fix the media file (format, size, ratio)
    ├─ ContainerUnusableError     ContainerUnusableError    no         create a new container (expired or errored)
    └─ OutcomeUnknownError        OutcomeUnknownError       no         reconcile before anything else

Classification follows the reference's section 6.6: exact ``(code, error_subcode)`` pairs first, then the
subcode alone, then code families, then ``is_transient``, then the HTTP status. Text is never used because
Meta localises it. The operation matters as much as the code: a failed ``media_publish`` or comment counts
as "not done" only for the answers that prove it (not ready, quota, auth, invalid request, connection never
made); everything else is :class:`OutcomeUnknownError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any, ClassVar

import httpx

from chronogram.contracts import ErrorType
from chronogram.enums import AccountStatusReason

__all__ = [
    "ContainerNotReadyError",
    "ContainerUnusableError",
    "ErrorClass",
    "GraphAPIError",
    "GraphAuthError",
    "GraphErrorDetails",
    "GraphInvalidRequestError",
    "GraphThrottledError",
    "GraphTransientError",
    "InvalidMediaError",
    "Operation",
    "OutcomeUnknownError",
    "PublishQuotaReachedError",
    "classify",
    "classify_container_error",
    "error_for",
    "retry_after_from_headers",
]


class ErrorClass(StrEnum):
    TRANSIENT = "transient"
    THROTTLED = "throttled"
    QUOTA_REACHED = "quota_reached"
    NOT_READY = "not_ready"
    AUTH = "auth"
    INVALID_REQUEST = "invalid_request"
    CONTAINER_UNUSABLE = "container_unusable"
    OUTCOME_UNKNOWN = "outcome_unknown"


class Operation(StrEnum):
    """The Graph call that failed. ``unsafe`` calls have side effects that a blind retry would repeat."""

    CREATE_CONTAINER = "create_container"
    CONTAINER_STATUS = "container_status"
    MEDIA_PUBLISH = "media_publish"
    GET_MEDIA = "get_media"
    LIST_MEDIA = "list_media"
    CREATE_COMMENT = "create_comment"
    LIST_COMMENTS = "list_comments"
    PUBLISHING_LIMIT = "publishing_limit"
    GET_ACCOUNT = "get_account"
    REFRESH_TOKEN = "refresh_token"
    EXCHANGE_TOKEN = "exchange_token"
    DEBUG_TOKEN = "debug_token"
    MEDIA_INSIGHTS = "media_insights"
    USER_INSIGHTS = "user_insights"

    @property
    def unsafe(self) -> bool:
        # Creating a container is deliberately absent: an unpublished container is invisible and expires in
        # 24 h, so repeating one only costs a slot of the 400/day container cap.
        return self in (Operation.MEDIA_PUBLISH, Operation.CREATE_COMMENT)


@dataclass(frozen=True, slots=True)
class GraphErrorDetails:
    """Everything known about one failure. Never holds the access token."""

    operation: Operation
    message: str
    http_status: int | None = None
    code: int | None = None
    subcode: int | None = None
    error_type: str | None = None
    is_transient: bool | None = None
    user_title: str | None = None
    user_message: str | None = None
    fbtrace_id: str | None = None
    retry_after: timedelta | None = None
    # For OutcomeUnknownError: how the same failure would have been classified on a call without side effects.
    underlying: ErrorClass | None = None
    # True when ``retry_after`` is this module's default for a throttle that announced no wait of its own.
    retry_after_assumed: bool = False


class GraphAPIError(Exception):
    """Root of the tree. Subclasses fix ``error_class``, ``kind`` and ``retryable``."""

    error_class: ClassVar[ErrorClass]
    kind: ClassVar[ErrorType] = ErrorType.GRAPH_API
    retryable: ClassVar[bool] = False
    _fallback_user_message: ClassVar[str] = "Instagram rejected the request."

    def __init__(self, details: GraphErrorDetails) -> None:
        super().__init__(details)
        self.details = details

    @property
    def operation(self) -> Operation:
        return self.details.operation

    @property
    def message(self) -> str:
        return self.details.message

    @property
    def http_status(self) -> int | None:
        return self.details.http_status

    @property
    def code(self) -> int | None:
        return self.details.code

    @property
    def subcode(self) -> int | None:
        return self.details.subcode

    @property
    def fbtrace_id(self) -> str | None:
        return self.details.fbtrace_id

    @property
    def retry_after(self) -> timedelta | None:
        return self.details.retry_after

    @property
    def user_message(self) -> str:
        """Meta's localised text for end users when it sent one, else a generic sentence for this class."""
        return self.details.user_message or self._fallback_user_message

    def __str__(self) -> str:
        d = self.details
        code = "" if d.code is None else f" (#{d.code}{'' if d.subcode is None else f'/{d.subcode}'})"
        status = "" if d.http_status is None else f" HTTP {d.http_status}"
        trace = "" if d.fbtrace_id is None else f" fbtrace_id={d.fbtrace_id}"
        return f"{self.kind} on {d.operation.value}{status}{code}: {d.message}{trace}"

    def __repr__(self) -> str:
        d = self.details
        return (
            f"{type(self).__name__}(operation={d.operation.value!r}, http_status={d.http_status!r}, "
            f"code={d.code!r}, subcode={d.subcode!r}, message={d.message!r})"
        )


class GraphTransientError(GraphAPIError):
    """Meta or the network failed in a way that a later identical call may not."""

    error_class = ErrorClass.TRANSIENT
    kind = ErrorType.GRAPH_TRANSIENT
    retryable = True
    _fallback_user_message = "Instagram is temporarily unavailable."


class GraphThrottledError(GraphAPIError):
    """A rate limit: stop calling until ``retry_after`` has passed (calling on extends the throttle)."""

    error_class = ErrorClass.THROTTLED
    kind = ErrorType.GRAPH_THROTTLED
    retryable = True
    _fallback_user_message = "Instagram is rate limiting this account."


class PublishQuotaReachedError(GraphAPIError):
    """The account published its quota within the rolling 24 h window; see ``content_publishing_limit``."""

    error_class = ErrorClass.QUOTA_REACHED
    kind = ErrorType.PUBLISH_QUOTA_REACHED
    retryable = True
    _fallback_user_message = "This account reached Instagram's daily publishing limit."


class ContainerNotReadyError(GraphAPIError):
    """``media_publish`` before the container reached FINISHED. Nothing was published."""

    error_class = ErrorClass.NOT_READY
    kind = ErrorType.CONTAINER_NOT_READY
    retryable = True
    _fallback_user_message = "Instagram is still processing the media."


class GraphAuthError(GraphAPIError):
    """The token is invalid, expired or lacks permission. Retrying cannot help; the account must reconnect."""

    error_class = ErrorClass.AUTH
    kind = ErrorType.GRAPH_AUTH
    _fallback_user_message = (
        "The Instagram connection has expired or lost permissions; reconnect the account."
    )

    @property
    def reason(self) -> AccountStatusReason:
        """A withdrawn permission (10, 200-299, 3, or a bare HTTP 403) is told apart from a dead token."""
        code = self.code
        if code in _PERMISSION_CODES or (code is None and self.http_status == 403):
            return AccountStatusReason.PERMISSION_MISSING
        if code == 190 and self.subcode == 463:
            return AccountStatusReason.TOKEN_EXPIRED
        return AccountStatusReason.TOKEN_INVALID

    @property
    def missing_permission(self) -> str | None:
        """The permission Meta's message names, when it names one (e.g. ``instagram_business_content_publish``)."""
        if self.reason is not AccountStatusReason.PERMISSION_MISSING:
            return None
        match = _PERMISSION_NAME.search(self.message)
        return match.group(0) if match else None


class GraphInvalidRequestError(GraphAPIError):
    """Meta refuses this request as sent. ``user_message`` tells the user what to change."""

    error_class = ErrorClass.INVALID_REQUEST
    kind = ErrorType.GRAPH_INVALID_REQUEST
    _fallback_user_message = "Instagram rejected this post; check its caption, tags and settings."


class InvalidMediaError(GraphInvalidRequestError):
    """The image or video breaks Meta's media specification (format, size, aspect ratio, encoding)."""

    kind = ErrorType.INVALID_MEDIA
    _fallback_user_message = "Instagram cannot use this media file; check its format, size and aspect ratio."


class ContainerUnusableError(GraphAPIError):
    """The container expired or failed processing. Repeating the call is pointless; create a new container."""

    error_class = ErrorClass.CONTAINER_UNUSABLE
    kind = ErrorType.CONTAINER_UNUSABLE
    _fallback_user_message = "Instagram discarded the prepared media; it has to be uploaded again."


class OutcomeUnknownError(GraphAPIError):
    """A side-effecting call failed in a way that does not prove it had no effect.

    For ``media_publish`` the post may be live: read the container's ``status_code`` (PUBLISHED means done)
    before any retry, and never create a new container for the same post until that says otherwise.
    """

    error_class = ErrorClass.OUTCOME_UNKNOWN
    kind = ErrorType.OUTCOME_UNKNOWN
    _fallback_user_message = "Instagram did not confirm whether the post went live; it is being checked."

    @property
    def underlying(self) -> ErrorClass | None:
        return self.details.underlying


_CLASS_FOR: dict[ErrorClass, type[GraphAPIError]] = {
    ErrorClass.TRANSIENT: GraphTransientError,
    ErrorClass.THROTTLED: GraphThrottledError,
    ErrorClass.QUOTA_REACHED: PublishQuotaReachedError,
    ErrorClass.NOT_READY: ContainerNotReadyError,
    ErrorClass.AUTH: GraphAuthError,
    ErrorClass.INVALID_REQUEST: GraphInvalidRequestError,
    ErrorClass.CONTAINER_UNUSABLE: ContainerUnusableError,
    ErrorClass.OUTCOME_UNKNOWN: OutcomeUnknownError,
}

# Reference sections 6.4 and 6.5. Subcodes are unique across codes in Meta's table, so they are matched
# alone; the pairs where the code changes the meaning (100/33, 4/2207051) are handled before this table.
_MEDIA_SUBCODES = frozenset({2207004, 2207005, 2207009, 2207026, 2207076, 2207077, 2207085})
_SUBCODE_CLASS: dict[int, ErrorClass] = {
    # Meta: "try again" — the container (or its creation) failed for reasons of its own.
    2207001: ErrorClass.TRANSIENT,
    2207003: ErrorClass.TRANSIENT,
    2207082: ErrorClass.TRANSIENT,
    # Raised when the container is created, so repeating it cannot duplicate anything; a URL that is really
    # broken exhausts the retry budget and the user sees Meta's message (Postiz PR #1900 made the same call).
    2207052: ErrorClass.TRANSIENT,
    2207006: ErrorClass.CONTAINER_UNUSABLE,
    2207008: ErrorClass.CONTAINER_UNUSABLE,
    2207020: ErrorClass.CONTAINER_UNUSABLE,
    2207032: ErrorClass.CONTAINER_UNUSABLE,
    2207053: ErrorClass.CONTAINER_UNUSABLE,
    2207027: ErrorClass.NOT_READY,
    2207042: ErrorClass.QUOTA_REACHED,
    2207010: ErrorClass.INVALID_REQUEST,
    2207023: ErrorClass.INVALID_REQUEST,
    2207028: ErrorClass.INVALID_REQUEST,
    2207035: ErrorClass.INVALID_REQUEST,
    2207036: ErrorClass.INVALID_REQUEST,
    2207037: ErrorClass.INVALID_REQUEST,
    2207040: ErrorClass.INVALID_REQUEST,
    2207050: ErrorClass.INVALID_REQUEST,
    2207057: ErrorClass.INVALID_REQUEST,
    2207081: ErrorClass.INVALID_REQUEST,
    **dict.fromkeys(_MEDIA_SUBCODES, ErrorClass.INVALID_REQUEST),
}
_MEDIA_CODES = frozenset({352, 36000, 36001, 36003})
_PERMISSION_CODES = frozenset({3, 10, *range(200, 300)})
_AUTH_CODES = frozenset({102, 104, 190, *_PERMISSION_CODES})
# Meta's permission names: instagram_business_content_publish, instagram_content_publish, pages_read_engagement, ...
_PERMISSION_NAME = re.compile(r"\b(?:instagram|pages|ads|business)_[a-z_]+\b")
_THROTTLE_CODES = frozenset({4, 17, 32, 341, 368, 613, *range(80001, 80015)})
_TRANSIENT_CODES = frozenset({-2, -1, 1, 2})
_INVALID_CODES = frozenset({25, 100, 352, 506, 9004, 36000, 36001, 36003, 36004})

# How long to stay away when a throttle carries no usable header. Meta says to stop calling entirely, and
# app-level windows roll over an hour, so minutes rather than seconds.
_DEFAULT_THROTTLE_WAIT = timedelta(minutes=5)
_THROTTLE_WAIT_BY_CODE = {613: timedelta(minutes=15), 368: timedelta(hours=1)}


def _base_class(
    code: int | None, subcode: int | None, is_transient: bool | None, http_status: int | None
) -> ErrorClass:
    if code == 100 and subcode == 33:
        # Seen on container/permalink reads during a Meta incident; a persistent one means lost access, which
        # the caller detects by counting attempts.
        return ErrorClass.TRANSIENT
    if subcode is not None and subcode in _SUBCODE_CLASS:
        return _SUBCODE_CLASS[subcode]
    if code is not None:
        if code in _AUTH_CODES:
            return ErrorClass.AUTH
        if code in _THROTTLE_CODES:
            return ErrorClass.THROTTLED
        if code in _TRANSIENT_CODES:
            return ErrorClass.TRANSIENT
        if code == 9007:
            return ErrorClass.NOT_READY
        if code == 24:
            return ErrorClass.CONTAINER_UNUSABLE
        if code in _INVALID_CODES:
            return ErrorClass.INVALID_REQUEST
    if is_transient:
        return ErrorClass.TRANSIENT
    return _class_for_status(http_status)


def _class_for_status(http_status: int | None) -> ErrorClass:
    if http_status is None or http_status >= 500:
        return ErrorClass.TRANSIENT
    if http_status == 429:
        return ErrorClass.THROTTLED
    if http_status in (401, 403):
        return ErrorClass.AUTH
    # An unknown 4xx is most likely a request we built wrong; retrying it would only repeat the failure.
    return ErrorClass.INVALID_REQUEST


def _is_media_error(code: int | None, subcode: int | None) -> bool:
    return (subcode is not None and subcode in _MEDIA_SUBCODES) or (code is not None and code in _MEDIA_CODES)


def error_for(details: GraphErrorDetails) -> GraphAPIError:
    """Build the right exception for a failure described by Meta's error fields.

    ``details.retry_after`` is kept when set; throttles without one get a conservative default.
    """
    d = details
    if d.code == 4 and d.subcode == 2207051:
        # "We restrict certain activity": not a rate limit. On media_publish it has been returned for posts
        # that did go live (Postiz PR #1681); elsewhere the user has to deal with the restriction.
        if d.operation.unsafe:
            return OutcomeUnknownError(replace(d, underlying=ErrorClass.INVALID_REQUEST))
        return GraphInvalidRequestError(d)
    return _build(d, _base_class(d.code, d.subcode, d.is_transient, d.http_status))


def _build(details: GraphErrorDetails, base: ErrorClass) -> GraphAPIError:
    d = details
    if base is ErrorClass.THROTTLED and d.retry_after is None:
        d = replace(
            d,
            retry_after=_THROTTLE_WAIT_BY_CODE.get(d.code or 0, _DEFAULT_THROTTLE_WAIT),
            retry_after_assumed=True,
        )
    if d.operation.unsafe and base in (
        ErrorClass.TRANSIENT,
        ErrorClass.THROTTLED,
        ErrorClass.CONTAINER_UNUSABLE,
    ):
        # The reference's section 8.4: only "not ready", quota, auth and validation errors prove that nothing
        # was published. 24/2207008 is here too, because it is also what a second publish of an
        # already-PUBLISHED container returns.
        return OutcomeUnknownError(replace(d, underlying=base))
    if base is ErrorClass.INVALID_REQUEST and _is_media_error(d.code, d.subcode):
        return InvalidMediaError(d)
    return _CLASS_FOR[base](d)


def retry_after_from_headers(headers: Mapping[str, str]) -> timedelta | None:
    """The longest wait announced by ``Retry-After`` (seconds) or ``X-Business-Use-Case-Usage``.

    ``estimated_time_to_regain_access`` is in minutes. Zero or absent means "no estimate", not "no wait".
    """
    waits: list[timedelta] = []
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = 0.0
        if math.isfinite(seconds) and seconds > 0:
            waits.append(timedelta(seconds=seconds))
    buc = headers.get("x-business-use-case-usage")
    if buc:
        try:
            usage = json.loads(buc)
        except ValueError:
            usage = None
        if isinstance(usage, dict):
            for entries in usage.values():
                for entry in entries if isinstance(entries, list) else []:
                    minutes = (
                        entry.get("estimated_time_to_regain_access") if isinstance(entry, dict) else None
                    )
                    if isinstance(minutes, int | float) and minutes > 0:
                        waits.append(timedelta(minutes=minutes))
    return max(waits) if waits else None


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _as_str(value: Any, secrets: Iterable[str]) -> str | None:
    return _redact(value, secrets) if isinstance(value, str) and value else None


def _graph_error_body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def classify(
    outcome: httpx.Response | httpx.HTTPError,
    *,
    operation: Operation,
    secrets: Iterable[str] = (),
) -> GraphAPIError:
    """Turn a failed Graph call into the exception the caller should handle.

    ``outcome`` is either the response (any status: a 200 whose body is unusable is a failure too) or the
    exception httpx raised. Every string in ``secrets`` is scrubbed from the messages kept on the error.
    """
    secrets = tuple(secrets)
    if isinstance(outcome, httpx.HTTPError):
        return _classify_transport(outcome, operation=operation, secrets=secrets)
    response = outcome
    error = _graph_error_body(response)
    if error is None:
        snippet = " ".join(response.text[:120].split()) if response.content else "empty body"
        details = GraphErrorDetails(
            operation=operation,
            message=f"HTTP {response.status_code} without a Graph error body: {_redact(snippet, secrets)}",
            http_status=response.status_code,
            retry_after=retry_after_from_headers(response.headers),
        )
        # A 2xx whose body is unreadable went through: a hiccup for a read, a probable success for a mutation.
        base = ErrorClass.TRANSIENT if response.is_success else _class_for_status(response.status_code)
        return _build(details, base)
    details = GraphErrorDetails(
        operation=operation,
        message=_as_str(error.get("message"), secrets) or "Graph API error without a message",
        http_status=response.status_code,
        code=_as_int(error.get("code")),
        subcode=_as_int(error.get("error_subcode")),
        error_type=_as_str(error.get("type"), secrets),
        is_transient=error.get("is_transient") if isinstance(error.get("is_transient"), bool) else None,
        user_title=_as_str(error.get("error_user_title"), secrets),
        user_message=_as_str(error.get("error_user_msg"), secrets),
        fbtrace_id=_as_str(error.get("fbtrace_id"), secrets) or response.headers.get("x-fb-trace-id"),
        retry_after=retry_after_from_headers(response.headers),
    )
    return error_for(details)


# The request never left this machine, so even a publish cannot have happened.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _classify_transport(
    exc: httpx.HTTPError, *, operation: Operation, secrets: tuple[str, ...]
) -> GraphAPIError:
    # str(exc) of a transport error is the low-level reason, never the URL; redact anyway in case a proxy
    # or a future httpx version echoes the request.
    reason = _redact(str(exc), secrets) or "no detail"
    details = GraphErrorDetails(operation=operation, message=f"{type(exc).__name__}: {reason}")
    if isinstance(exc, _NOT_SENT) or not operation.unsafe:
        return GraphTransientError(details)
    return OutcomeUnknownError(replace(details, underlying=ErrorClass.TRANSIENT))


_STATUS_SUBCODE = re.compile(r"\b(\d{6,8})\b")
# An ERROR container's status carries no message for the user: Meta's meaning of its subcode (reference 6.4, 6.5).
_UNPROCESSABLE_VIDEO = (
    "Instagram could not process this video. Send an MP4 or MOV file encoded with H.264 or HEVC (sound in AAC), "
    "23 to 60 frames per second, at most 1920 pixels wide, within the post type's duration (reels 3 s to "
    "15 min, stories and carousel videos 3 to 60 s)."
)
_CONTAINER_USER_MESSAGES: dict[int, str] = {
    2207026: _UNPROCESSABLE_VIDEO,
    2207085: _UNPROCESSABLE_VIDEO,
    2207076: _UNPROCESSABLE_VIDEO,
    2207057: "The reel's thumbnail offset must be within the video: at least 0 and less than its duration.",
}


def classify_container_error(
    container_id: str,
    status_code: str,
    status: str | None,
    *,
    operation: Operation = Operation.CONTAINER_STATUS,
) -> GraphAPIError | None:
    """The error a container in ERROR or EXPIRED stands for, or None for any other status.

    An ERROR container's ``status`` carries the subcode ("Error: ... error code 2207026"). Media problems
    become :class:`InvalidMediaError` (re-uploading the same file would fail again); everything else means
    "create a new container".
    """
    if status_code not in ("ERROR", "EXPIRED"):
        return None
    match = _STATUS_SUBCODE.search(status or "") if status_code == "ERROR" else None
    subcode = int(match.group(1)) if match else None
    details = GraphErrorDetails(
        operation=operation,
        message=f"container {container_id} is {status_code}" + (f": {status}" if status else ""),
        subcode=subcode,
        user_message=_CONTAINER_USER_MESSAGES.get(subcode) if subcode is not None else None,
    )
    if subcode is not None and (
        subcode in _MEDIA_SUBCODES or _SUBCODE_CLASS.get(subcode) is ErrorClass.INVALID_REQUEST
    ):
        return InvalidMediaError(details) if subcode in _MEDIA_SUBCODES else GraphInvalidRequestError(details)
    return ContainerUnusableError(details)
