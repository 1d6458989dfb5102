"""Every injectable fault, observed through GraphClient as the right error class, with the sandbox's ground
truth saying whether the side effect really happened."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import httpx
import pytest

from chronogram.instagram import (
    CarouselImageItemSpec,
    CarouselSpec,
    ContainerNotReadyError,
    ContainerStatusCode,
    ContainerUnusableError,
    ErrorClass,
    GraphAPIError,
    GraphAuthError,
    GraphClient,
    GraphInvalidRequestError,
    GraphThrottledError,
    GraphTransientError,
    ImageSpec,
    InvalidMediaError,
    OutcomeUnknownError,
    PublishQuotaReachedError,
    ReelSpec,
)
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.graph.conftest import API_VERSION
from tests.graph.helpers import wait_for_status
from tests.support.media_server import StandardMedia


async def finished_container(graph: GraphClient, account: SandboxAccount, image_url: str) -> str:
    container = await graph.create_container(
        ig_user_id=account.ig_user_id,
        spec=ImageSpec(image_url, caption="fault test"),
        access_token=account.access_token,
    )
    await wait_for_status(graph, container.id, account.access_token)
    return container.id


def short_timeout_client(http: httpx.AsyncClient, sandbox_url: str) -> GraphClient:
    return GraphClient(http, base_url=sandbox_url, api_version=API_VERSION, timeout=0.3, publish_timeout=0.3)


async def publish(graph: GraphClient, account: SandboxAccount, container_id: str) -> str:
    result = await graph.publish(
        ig_user_id=account.ig_user_id, container_id=container_id, access_token=account.access_token
    )
    return result.id


# Injected error codes, one per class, on a read and on media_publish.
ERRORS = [
    ({"code": 2}, GraphTransientError, OutcomeUnknownError),
    ({"code": 1, "error_subcode": 2207001}, GraphTransientError, OutcomeUnknownError),
    ({"code": 4, "estimated_time_to_regain_access": 7}, GraphThrottledError, OutcomeUnknownError),
    ({"code": 80002, "retry_after_seconds": 90}, GraphThrottledError, OutcomeUnknownError),
    ({"code": 9, "error_subcode": 2207042}, PublishQuotaReachedError, PublishQuotaReachedError),
    ({"code": 9007, "error_subcode": 2207027}, ContainerNotReadyError, ContainerNotReadyError),
    ({"code": 190, "error_subcode": 463}, GraphAuthError, GraphAuthError),
    ({"code": 10, "http_status": 403}, GraphAuthError, GraphAuthError),
    ({"code": 100, "error_subcode": 2207028}, GraphInvalidRequestError, GraphInvalidRequestError),
    ({"code": 36003, "error_subcode": 2207009}, InvalidMediaError, InvalidMediaError),
    ({"code": 24, "error_subcode": 2207008}, ContainerUnusableError, OutcomeUnknownError),
    ({"code": -2, "error_subcode": 2207020}, ContainerUnusableError, OutcomeUnknownError),
    ({"code": 4, "error_subcode": 2207051}, GraphInvalidRequestError, OutcomeUnknownError),
]


@pytest.mark.parametrize(
    ("fault", "on_read", "on_publish"),
    ERRORS,
    ids=[f"{f['code']}/{f.get('error_subcode', '-')}" for f, *_ in ERRORS],
)
async def test_injected_errors(
    graph: GraphClient,
    admin: SandboxAdmin,
    media: StandardMedia,
    account: SandboxAccount,
    fault: dict[str, int],
    on_read: type[GraphAPIError],
    on_publish: type[GraphAPIError],
) -> None:
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("error", endpoint="container_status", **fault)
    await admin.add_fault("error", endpoint="media_publish", **fault)

    with pytest.raises(on_read) as read_error:
        await graph.get_container(container_id=container_id, access_token=account.access_token)
    with pytest.raises(on_publish) as publish_error:
        await publish(graph, account, container_id)
    assert type(read_error.value) is on_read and type(publish_error.value) is on_publish
    assert read_error.value.code == fault["code"]
    if "estimated_time_to_regain_access" in fault:
        assert read_error.value.retry_after == timedelta(minutes=fault["estimated_time_to_regain_access"])
    if "retry_after_seconds" in fault:
        assert read_error.value.retry_after == timedelta(seconds=fault["retry_after_seconds"])
    # An injected error does nothing, and each fault was used exactly once: the next calls work.
    assert await admin.published(account.ig_user_id) == []
    assert (
        await graph.get_container(container_id=container_id, access_token=account.access_token)
    ).is_finished
    await publish(graph, account, container_id)
    assert len(await admin.published(account.ig_user_id)) == 1


@pytest.mark.parametrize("count", [1, 3])
async def test_html_502_for_the_next_n_calls(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount, count: int
) -> None:
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("html_502", endpoint="container_status", count=count)
    for _ in range(count):
        with pytest.raises(GraphTransientError) as excinfo:
            await graph.get_container(container_id=container_id, access_token=account.access_token)
        assert excinfo.value.http_status == 502
    assert (
        await graph.get_container(container_id=container_id, access_token=account.access_token)
    ).is_finished


async def test_html_502_on_publish_is_an_unknown_outcome_that_did_nothing(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("html_502", endpoint="media_publish")
    with pytest.raises(OutcomeUnknownError) as excinfo:
        await publish(graph, account, container_id)
    assert excinfo.value.underlying is ErrorClass.TRANSIENT
    # Reconciliation per the reference's section 8.4: still FINISHED, so publishing the same container is safe.
    assert (
        await graph.get_container(container_id=container_id, access_token=account.access_token)
    ).is_finished
    await publish(graph, account, container_id)
    assert len(await admin.published(account.ig_user_id)) == 1


async def test_published_but_the_response_is_lost(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("commit_then_drop", endpoint="media_publish")
    with pytest.raises(OutcomeUnknownError) as excinfo:
        await publish(graph, account, container_id)
    assert "RemoteProtocolError" in excinfo.value.message
    assert len(await admin.published(account.ig_user_id)) == 1
    status = await graph.get_container(container_id=container_id, access_token=account.access_token)
    assert status.is_published
    # A blind retry is exactly what must not happen; with Meta's (assumed) answer it is another unknown.
    with pytest.raises(OutcomeUnknownError) as retry:
        await publish(graph, account, container_id)
    assert (retry.value.code, retry.value.subcode) == (24, 2207008)
    assert len(await admin.published(account.ig_user_id)) == 1


async def test_error_but_published(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("commit_then_error", endpoint="media_publish")
    with pytest.raises(OutcomeUnknownError) as excinfo:
        await publish(graph, account, container_id)
    assert (excinfo.value.code, excinfo.value.subcode) == (4, 2207051)
    assert excinfo.value.user_message.startswith("We restrict certain activity")
    [truth] = await admin.published(account.ig_user_id)
    assert truth["container_id"] == container_id


async def test_hang_past_the_client_timeout(
    http: httpx.AsyncClient,
    sandbox_url: str,
    admin: SandboxAdmin,
    media: StandardMedia,
    account: SandboxAccount,
) -> None:
    graph = short_timeout_client(http, sandbox_url)
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("hang", endpoint="container_status", seconds=5)
    await admin.add_fault("hang", endpoint="media_publish", seconds=5)
    started = time.monotonic()
    with pytest.raises(GraphTransientError) as read:
        await graph.get_container(container_id=container_id, access_token=account.access_token)
    with pytest.raises(OutcomeUnknownError) as write:
        await publish(graph, account, container_id)
    assert time.monotonic() - started < 3, "the client must give up at its own timeout"
    assert "ReadTimeout" in read.value.message and "ReadTimeout" in write.value.message
    # A plain hang never reaches the handler: nothing was published.
    assert await admin.published(account.ig_user_id) == []


async def test_published_then_hang_past_the_client_timeout(
    http: httpx.AsyncClient,
    sandbox_url: str,
    admin: SandboxAdmin,
    media: StandardMedia,
    account: SandboxAccount,
) -> None:
    graph = short_timeout_client(http, sandbox_url)
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("commit_then_hang", endpoint="media_publish", seconds=5)
    with pytest.raises(OutcomeUnknownError):
        await publish(graph, account, container_id)
    assert len(await admin.published(account.ig_user_id)) == 1
    assert (
        await graph.get_container(container_id=container_id, access_token=account.access_token)
    ).is_published


async def test_connection_drop_before_anything_happened(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("drop", endpoint="media_publish")
    with pytest.raises(OutcomeUnknownError):
        await publish(graph, account, container_id)
    assert await admin.published(account.ig_user_id) == []
    await admin.add_fault("drop", endpoint="container_status")
    with pytest.raises(GraphTransientError):
        await graph.get_container(container_id=container_id, access_token=account.access_token)


async def test_comment_dropped_after_commit_is_unknown(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    media_id = await publish(graph, account, await finished_container(graph, account, media.square))
    await admin.add_fault("commit_then_drop", endpoint="comments_create")
    with pytest.raises(OutcomeUnknownError):
        await graph.create_comment(media_id=media_id, message="first!", access_token=account.access_token)
    comments = await graph.list_comments(media_id=media_id, access_token=account.access_token)
    assert [c.text for c in comments] == ["first!"]


async def test_latency(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("latency", endpoint="container_status", seconds=0.4, count=2)
    for _ in range(2):
        started = time.monotonic()
        assert (
            await graph.get_container(container_id=container_id, access_token=account.access_token)
        ).is_finished
        assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    await graph.get_container(container_id=container_id, access_token=account.access_token)
    assert time.monotonic() - started < 0.4


async def test_container_stuck_in_progress(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    await admin.add_fault("container_stuck")
    token = account.access_token
    container = await graph.create_container(
        ig_user_id=account.ig_user_id, spec=ImageSpec(media.square), access_token=token
    )
    await admin.advance_clock(3600)
    assert (
        await graph.get_container(container_id=container.id, access_token=token)
    ).status_code is ContainerStatusCode.IN_PROGRESS
    with pytest.raises(ContainerNotReadyError):
        await publish(graph, account, container.id)
    await admin.advance_clock(24 * 3600)
    expired = await graph.get_container(container_id=container.id, access_token=token)
    assert expired.status_code is ContainerStatusCode.EXPIRED
    assert isinstance(expired.error(), ContainerUnusableError)
    with pytest.raises(OutcomeUnknownError) as excinfo:
        await publish(graph, account, container.id)
    assert excinfo.value.underlying is ErrorClass.CONTAINER_UNUSABLE
    assert await admin.published(account.ig_user_id) == []


@pytest.mark.parametrize(
    ("subcode", "expected"),
    [(2207082, ContainerUnusableError), (2207026, InvalidMediaError), (2207085, InvalidMediaError)],
)
async def test_container_turning_error(
    graph: GraphClient,
    admin: SandboxAdmin,
    media: StandardMedia,
    account: SandboxAccount,
    subcode: int,
    expected: type[GraphAPIError],
) -> None:
    await admin.add_fault("container_error", error_subcode=subcode, ig_user_id=account.ig_user_id)
    token = account.access_token
    container = await graph.create_container(
        ig_user_id=account.ig_user_id, spec=ReelSpec(media.video), access_token=token
    )
    status = await wait_for_status(graph, container.id, token, ContainerStatusCode.ERROR)
    assert status.status == f"Error: Media upload has failed with error code {subcode}"
    assert type(status.error()) is expected
    with pytest.raises(ContainerNotReadyError):
        await publish(graph, account, container.id)


async def test_existing_container_can_be_made_to_fail(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    container_id = await finished_container(graph, account, media.square)
    await admin.add_fault("container_error", target_id=container_id, error_subcode=2207032)
    status = await graph.get_container(container_id=container_id, access_token=account.access_token)
    assert status.status_code is ContainerStatusCode.ERROR
    assert isinstance(status.error(), ContainerUnusableError)


async def test_carousel_with_an_expired_child_needs_new_containers(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    token, user = account.access_token, account.ig_user_id
    stale = await graph.create_container(
        ig_user_id=user, spec=CarouselImageItemSpec(media.square), access_token=token
    )
    await admin.advance_clock(25 * 3600)
    fresh = await graph.create_container(
        ig_user_id=user, spec=CarouselImageItemSpec(media.square), access_token=token
    )
    with pytest.raises(ContainerUnusableError) as excinfo:
        await graph.create_container(
            ig_user_id=user, spec=CarouselSpec(children=(stale.id, fresh.id)), access_token=token
        )
    assert stale.id in excinfo.value.message


async def test_quota_reached_for_real(graph: GraphClient, admin: SandboxAdmin, media: StandardMedia) -> None:
    account = await admin.create_account("quota_two", quota_total=2)
    for _ in range(2):
        await publish(graph, account, await finished_container(graph, account, media.square))
    third = await finished_container(graph, account, media.square)
    with pytest.raises(PublishQuotaReachedError) as excinfo:
        await publish(graph, account, third)
    assert (excinfo.value.code, excinfo.value.subcode) == (9, 2207042)
    await admin.advance_clock(86400)
    # The window rolled, and so did the 24 h life of the refused container: a fresh one publishes.
    assert (
        await graph.get_container(container_id=third, access_token=account.access_token)
    ).error() is not None
    await publish(graph, account, await finished_container(graph, account, media.square))


async def test_throttled_for_real_by_the_call_budget(
    graph: GraphClient, admin: SandboxAdmin, account: SandboxAccount
) -> None:
    await admin.configure(buc_calls_per_hour=3)
    for _ in range(3):
        await graph.get_account(access_token=account.access_token)
    with pytest.raises(GraphThrottledError) as excinfo:
        await graph.get_account(access_token=account.access_token)
    assert excinfo.value.code == 80002
    assert excinfo.value.retry_after is not None and timedelta(
        minutes=1
    ) <= excinfo.value.retry_after <= timedelta(minutes=60)


async def test_auth_failures(graph: GraphClient, admin: SandboxAdmin) -> None:
    expiring = await admin.create_account("expiring", token_expires_in_seconds=3600)
    revoked = await admin.create_account("revoked")
    await admin.revoke_token(revoked.access_token)
    await admin.advance_clock(3601)
    cases = [("unknown-token-0000", None), (expiring.access_token, 463), (revoked.access_token, 460)]
    for token, subcode in cases:
        with pytest.raises(GraphAuthError) as excinfo:
            await graph.get_account(access_token=token)
        assert (excinfo.value.code, excinfo.value.subcode) == (190, subcode)
        assert token not in str(excinfo.value) and token not in repr(excinfo.value)
        assert not excinfo.value.retryable


async def test_invalid_media_and_requests_carry_actionable_messages(
    graph: GraphClient, media: StandardMedia, account: SandboxAccount
) -> None:
    token, user = account.access_token, account.ig_user_id
    with pytest.raises(InvalidMediaError) as ratio:
        await graph.create_container(ig_user_id=user, spec=ImageSpec(media.tall), access_token=token)
    assert (ratio.value.code, ratio.value.subcode) == (36003, 2207009)
    assert "aspect ratio" in ratio.value.user_message
    with pytest.raises(InvalidMediaError) as fmt:
        await graph.create_container(ig_user_id=user, spec=ImageSpec(media.png), access_token=token)
    assert "JPEG" in fmt.value.user_message
    with pytest.raises(GraphInvalidRequestError) as caption:
        await graph.create_container(
            ig_user_id=user, spec=ImageSpec(media.square, caption="x" * 2201), access_token=token
        )
    assert type(caption.value) is GraphInvalidRequestError
    assert (caption.value.code, caption.value.subcode) == (36004, 2207010)
    # Meta could not fetch the URL: retryable, because it may be a blip of the media host.
    with pytest.raises(GraphTransientError) as fetch:
        await graph.create_container(ig_user_id=user, spec=ImageSpec(media.missing), access_token=token)
    assert (fetch.value.code, fetch.value.subcode) == (9004, 2207052)


async def test_connection_refused_is_transient_even_for_publish(http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    graph = GraphClient(http, base_url=f"http://127.0.0.1:{port}", api_version=API_VERSION, timeout=1)
    with pytest.raises(GraphTransientError) as excinfo:
        await graph.publish(ig_user_id="1", container_id="2", access_token="IGAAnever-sent")
    assert "ConnectError" in excinfo.value.message


@pytest.mark.parametrize(("mode", "published_count"), [("idempotent", 1), ("duplicate", 2)])
async def test_republish_modes(
    graph: GraphClient,
    admin: SandboxAdmin,
    media: StandardMedia,
    account: SandboxAccount,
    mode: str,
    published_count: int,
) -> None:
    await admin.configure(republish_mode=mode)
    container_id = await finished_container(graph, account, media.square)
    first = await publish(graph, account, container_id)
    second = await publish(graph, account, container_id)
    assert (first == second) is (mode == "idempotent")
    assert len(await admin.published(account.ig_user_id)) == published_count


async def test_faults_target_accounts_and_containers(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    other = await admin.create_account("bystander")
    mine = await finished_container(graph, account, media.square)
    theirs = await finished_container(graph, other, media.square)
    await admin.add_fault("error", endpoint="media_publish", code=2, target_id=mine, count=None)
    await publish(graph, other, theirs)
    for _ in range(2):
        with pytest.raises(OutcomeUnknownError):
            await publish(graph, account, mine)
    [fault] = await admin.faults()
    assert (fault["hits"], fault["remaining"]) == (2, None)
    await admin.clear_faults()
    await publish(graph, account, mine)
