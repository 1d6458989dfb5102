"""The client's error classification, table-tested against the codes in the reference (sections 6.3-6.6, 8.4).

These build httpx responses by hand: the point is the mapping from Meta's bytes to a class, independent of
the sandbox (which is checked against the same expectations over the wire in test_client_faults.py).
"""

from __future__ import annotations

import json
import pickle
from datetime import timedelta

import httpx
import pytest

from chronogram.instagram import (
    ContainerNotReadyError,
    ContainerStatus,
    ContainerStatusCode,
    ContainerUnusableError,
    ErrorClass,
    GraphAPIError,
    GraphAuthError,
    GraphInvalidRequestError,
    GraphThrottledError,
    GraphTransientError,
    InvalidMediaError,
    Operation,
    OutcomeUnknownError,
    PublishQuotaReachedError,
    classify,
    retry_after_from_headers,
)

READ = Operation.CONTAINER_STATUS
PUBLISH = Operation.MEDIA_PUBLISH
TOKEN = "IGAAsecret-token-value-123"


def graph_error(
    code: int,
    subcode: int | None = None,
    *,
    status: int = 400,
    is_transient: bool | None = None,
    headers: dict[str, str] | None = None,
    message: str = "Meta says no",
) -> httpx.Response:
    error: dict[str, object] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbC",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    return httpx.Response(status, json={"error": error}, headers=headers)


T, TH, Q, NR, AU, INV, MED, CU, UNK = (
    GraphTransientError,
    GraphThrottledError,
    PublishQuotaReachedError,
    ContainerNotReadyError,
    GraphAuthError,
    GraphInvalidRequestError,
    InvalidMediaError,
    ContainerUnusableError,
    OutcomeUnknownError,
)

# (code, subcode, HTTP status, class on a read, class on media_publish)
TABLE: list[tuple[int, int | None, int, type[GraphAPIError], type[GraphAPIError]]] = [
    # 6.3 generic Graph codes
    (1, None, 500, T, UNK),
    (2, None, 500, T, UNK),
    (3, None, 400, AU, AU),
    (4, None, 400, TH, UNK),
    (17, None, 400, TH, UNK),
    (32, None, 400, TH, UNK),
    (341, None, 400, TH, UNK),
    (613, None, 400, TH, UNK),
    (613, 1996, 400, TH, UNK),
    (80001, None, 400, TH, UNK),
    (80002, None, 400, TH, UNK),
    (80014, None, 403, TH, UNK),
    (10, None, 403, AU, AU),
    (200, None, 403, AU, AU),
    (299, None, 403, AU, AU),
    (190, None, 400, AU, AU),
    *[(190, sub, 400, AU, AU) for sub in (458, 459, 460, 463, 464, 467, 492, 493)],
    (102, None, 400, AU, AU),
    (104, None, 400, AU, AU),
    (100, None, 400, INV, INV),
    (100, 33, 400, T, UNK),
    (368, None, 400, TH, UNK),
    (506, None, 400, INV, INV),
    # 6.4 Instagram publishing table
    (-2, 2207003, 400, T, UNK),
    (-2, 2207020, 400, CU, UNK),
    (-1, 2207001, 400, T, UNK),
    (-1, 2207032, 400, CU, UNK),
    (-1, 2207053, 400, CU, UNK),
    (1, 2207057, 400, INV, INV),
    (4, 2207051, 400, INV, UNK),
    (9, 2207042, 400, Q, Q),
    (24, 2207006, 400, CU, UNK),
    (24, 2207008, 400, CU, UNK),
    (25, 2207050, 400, INV, INV),
    (100, 2207023, 400, INV, INV),
    (100, 2207028, 400, INV, INV),
    (100, 2207035, 400, INV, INV),
    (100, 2207036, 400, INV, INV),
    (100, 2207037, 400, INV, INV),
    (100, 2207040, 400, INV, INV),
    (352, 2207026, 400, MED, MED),
    (9004, 2207052, 400, T, UNK),
    (9007, 2207027, 400, NR, NR),
    (36000, 2207004, 400, MED, MED),
    (36001, 2207005, 400, MED, MED),
    (36003, 2207009, 400, MED, MED),
    (36004, 2207010, 400, INV, INV),
    # 6.5 seen in the wild
    (-1, 2207076, 400, MED, MED),
    (-1, 2207077, 400, MED, MED),
    (-1, 2207082, 400, T, UNK),
    (-1, 2207085, 400, MED, MED),
    (100, 2207081, 400, INV, INV),
]


@pytest.mark.parametrize(
    ("code", "subcode", "status", "on_read", "on_publish"),
    TABLE,
    ids=[f"{code}/{sub}" if sub else str(code) for code, sub, *_ in TABLE],
)
def test_graph_error_codes(
    code: int, subcode: int | None, status: int, on_read: type[GraphAPIError], on_publish: type[GraphAPIError]
) -> None:
    read_error = classify(graph_error(code, subcode, status=status), operation=READ)
    publish_error = classify(graph_error(code, subcode, status=status), operation=PUBLISH)
    assert type(read_error) is on_read
    assert type(publish_error) is on_publish
    for error in (read_error, publish_error):
        assert (error.code, error.subcode, error.http_status, error.fbtrace_id) == (
            code,
            subcode,
            status,
            "AbC",
        )
    if on_publish is OutcomeUnknownError:
        assert isinstance(publish_error, OutcomeUnknownError)
        # The engine still learns what the failure was: a throttle means "wait before reconciling".
        assert publish_error.underlying is (
            ErrorClass.INVALID_REQUEST if subcode == 2207051 else on_read.error_class
        )


def test_comment_creation_is_as_unsafe_as_publishing() -> None:
    error = classify(graph_error(2, status=500), operation=Operation.CREATE_COMMENT)
    assert type(error) is OutcomeUnknownError
    # Creating a container is deliberately safe to repeat (an unpublished container is invisible).
    assert (
        type(classify(graph_error(2, status=500), operation=Operation.CREATE_CONTAINER))
        is GraphTransientError
    )


@pytest.mark.parametrize(
    ("is_transient", "status", "expected"),
    [
        (True, 400, GraphTransientError),
        (False, 400, GraphInvalidRequestError),
        (None, 503, GraphTransientError),
    ],
)
def test_unknown_codes_fall_back_to_is_transient_then_status(
    is_transient: bool | None, status: int, expected: type[GraphAPIError]
) -> None:
    assert (
        type(classify(graph_error(424242, status=status, is_transient=is_transient), operation=READ))
        is expected
    )


@pytest.mark.parametrize(
    ("response", "on_read", "on_publish"),
    [
        (httpx.Response(502, text="<html><h1>502 Bad Gateway</h1></html>"), T, UNK),
        (httpx.Response(500, text=""), T, UNK),
        (httpx.Response(503, json={"unexpected": True}), T, UNK),
        (httpx.Response(429, text="slow down"), TH, UNK),
        (httpx.Response(401, text="Unauthorized"), AU, AU),
        (httpx.Response(404, text="<html>Not Found</html>"), INV, INV),
        # A 200 nobody can read: for a publish it most likely went through.
        (httpx.Response(200, text="<html>proxy page</html>"), T, UNK),
    ],
    ids=["html-502", "empty-500", "json-without-error", "bare-429", "bare-401", "html-404", "garbage-200"],
)
def test_bodies_that_are_not_graph_errors(
    response: httpx.Response, on_read: type[GraphAPIError], on_publish: type[GraphAPIError]
) -> None:
    assert type(classify(response, operation=READ)) is on_read
    assert type(classify(response, operation=PUBLISH)) is on_publish


_REQUEST = httpx.Request("POST", "https://graph.facebook.com/v25.0/1/media_publish")


@pytest.mark.parametrize(
    ("exc", "on_publish"),
    [
        (httpx.ReadTimeout("timed out", request=_REQUEST), UNK),
        (httpx.WriteTimeout("timed out", request=_REQUEST), UNK),
        (httpx.RemoteProtocolError("peer closed connection", request=_REQUEST), UNK),
        (httpx.ReadError("connection reset", request=_REQUEST), UNK),
        # Never sent, so nothing can have been published.
        (httpx.ConnectError("connection refused", request=_REQUEST), T),
        (httpx.ConnectTimeout("timed out", request=_REQUEST), T),
        (httpx.PoolTimeout("no connection available", request=_REQUEST), T),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_transport_failures(exc: httpx.HTTPError, on_publish: type[GraphAPIError]) -> None:
    assert type(classify(exc, operation=READ)) is GraphTransientError
    assert type(classify(exc, operation=PUBLISH)) is on_publish
    assert type(exc).__name__ in str(classify(exc, operation=PUBLISH))


def test_throttle_waits_come_from_the_usage_header() -> None:
    buc = {
        "17841400000000001": [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 7}]
    }
    response = graph_error(80002, headers={"X-Business-Use-Case-Usage": json.dumps(buc)})
    error = classify(response, operation=READ)
    assert isinstance(error, GraphThrottledError)
    assert error.retry_after == timedelta(minutes=7)
    assert error.retryable


def test_throttle_waits_take_the_longest_announcement() -> None:
    buc = {"1": [{"estimated_time_to_regain_access": 2}], "2": [{"estimated_time_to_regain_access": 0}]}
    headers = {"X-Business-Use-Case-Usage": json.dumps(buc), "Retry-After": "600"}
    assert retry_after_from_headers(httpx.Headers(headers)) == timedelta(minutes=10)
    assert retry_after_from_headers(httpx.Headers({"X-Business-Use-Case-Usage": "not json"})) is None


@pytest.mark.parametrize(
    ("code", "wait"), [(4, timedelta(minutes=5)), (613, timedelta(minutes=15)), (368, timedelta(hours=1))]
)
def test_throttles_without_headers_get_conservative_waits(code: int, wait: timedelta) -> None:
    assert classify(graph_error(code), operation=READ).retry_after == wait


def test_only_throttles_carry_a_default_wait() -> None:
    assert classify(graph_error(2, status=500), operation=READ).retry_after is None
    assert classify(graph_error(9, 2207042), operation=PUBLISH).retry_after is None


def test_kinds_and_retryability_are_a_stable_contract() -> None:
    # The activity layer turns these strings into Temporal ApplicationError types; renaming one breaks
    # every workflow's non_retryable_error_types, so the table is pinned here.
    contract = {
        GraphTransientError: ("GraphTransientError", ErrorClass.TRANSIENT, True),
        GraphThrottledError: ("GraphThrottledError", ErrorClass.THROTTLED, True),
        PublishQuotaReachedError: ("PublishQuotaReachedError", ErrorClass.QUOTA_REACHED, True),
        ContainerNotReadyError: ("ContainerNotReadyError", ErrorClass.NOT_READY, True),
        GraphAuthError: ("GraphAuthError", ErrorClass.AUTH, False),
        GraphInvalidRequestError: ("GraphInvalidRequestError", ErrorClass.INVALID_REQUEST, False),
        InvalidMediaError: ("InvalidMediaError", ErrorClass.INVALID_REQUEST, False),
        ContainerUnusableError: ("ContainerUnusableError", ErrorClass.CONTAINER_UNUSABLE, False),
        OutcomeUnknownError: ("OutcomeUnknownError", ErrorClass.OUTCOME_UNKNOWN, False),
    }
    for cls, (kind, error_class, retryable) in contract.items():
        assert (cls.kind, cls.error_class, cls.retryable) == (kind, error_class, retryable)
        assert issubclass(cls, GraphAPIError)


def test_user_messages_prefer_meta_text_and_fall_back_per_class() -> None:
    response = httpx.Response(
        400,
        json={
            "error": {
                "message": "The image format is not supported.",
                "code": 36001,
                "error_subcode": 2207005,
                "error_user_title": "Unsupported image format",
                "error_user_msg": "Supported formats are: JPEG",
            }
        },
    )
    error = classify(response, operation=Operation.CREATE_CONTAINER)
    assert error.user_message == "Supported formats are: JPEG"
    assert "reconnect" in classify(graph_error(190), operation=READ).user_message


def test_tokens_are_scrubbed_from_messages_and_reprs() -> None:
    response = graph_error(190, 463, message=f"Error validating access token {TOKEN}: Session has expired")
    error = classify(response, operation=READ, secrets=[TOKEN])
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    assert "[redacted]" in error.message
    transport = classify(
        httpx.ReadTimeout(f"timed out {TOKEN}", request=_REQUEST), operation=READ, secrets=[TOKEN]
    )
    assert TOKEN not in str(transport)


def test_errors_survive_pickling_with_their_details() -> None:
    error = classify(graph_error(9007, 2207027), operation=PUBLISH)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ContainerNotReadyError
    assert copy.details == error.details


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (
            ContainerStatusCode.ERROR,
            "Error: Media upload has failed with error code 2207026",
            InvalidMediaError,
        ),
        (
            ContainerStatusCode.ERROR,
            "Error: Media upload has failed with error code 2207085",
            InvalidMediaError,
        ),
        (
            ContainerStatusCode.ERROR,
            "Error: Media upload has failed with error code 2207082",
            ContainerUnusableError,
        ),
        (ContainerStatusCode.ERROR, "Error: something else", ContainerUnusableError),
        (ContainerStatusCode.EXPIRED, None, ContainerUnusableError),
    ],
)
def test_container_statuses_that_need_a_new_container(
    code: ContainerStatusCode, status: str | None, expected: type[GraphAPIError]
) -> None:
    container = ContainerStatus(id="178", status_code=code, status=status)
    error = container.error()
    assert type(error) is expected
    with pytest.raises(expected):
        container.raise_for_status()


@pytest.mark.parametrize(
    "code", [ContainerStatusCode.IN_PROGRESS, ContainerStatusCode.FINISHED, ContainerStatusCode.PUBLISHED]
)
def test_healthy_container_statuses_are_not_errors(code: ContainerStatusCode) -> None:
    assert ContainerStatus(id="178", status_code=code).error() is None
