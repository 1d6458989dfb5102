"""AccountTokensWorkflow on the time-skipping test server: months of an account's life in seconds, with the real
AccountTokens activities on a real SQLite database; only the Graph call of the refresh follows a script
(tests/support/token_graph.py), on the server's skipped clock."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest_asyncio
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.account_tokens import AccountTokens
from chronogram import accounts
from chronogram.accounts import TokenSchedule
from chronogram.contracts import AccountTokensResult
from chronogram.crypto import TokenCipher
from chronogram.enums import AccountEventKind, AccountStatus, AccountStatusReason
from chronogram.models import AccountEvent, InstagramAccount
from chronogram.scheduling import start_account_tokens_workflow
from chronogram.settings import GraphLogin
from chronogram.temporal import DATA_CONVERTER
from tests.support.factories import add_account, add_user, id_of
from tests.support.token_graph import LIFETIME, ScriptedTokenGraph, TokenScript, graph_failure
from workflows import AccountTokensWorkflow

SCHEDULE = TokenSchedule(lead=timedelta(days=7), min_age=timedelta(hours=24))
TOLERANCE = timedelta(minutes=5)
RECORD_TO = Path(__file__).parents[1] / "replay" / "account_histories" / "refreshed_then_continued.json"


def _server_now() -> datetime:
    return activity.info().current_attempt_scheduled_time


@dataclass
class Account:
    env: WorkflowEnvironment
    engine: Engine
    cipher: TokenCipher
    id: int
    connected_at: datetime
    script: TokenScript
    task_queue: str
    handle: WorkflowHandle[AccountTokensWorkflow, AccountTokensResult]

    def row(self) -> InstagramAccount:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(InstagramAccount, self.id)
            assert row is not None
            return row

    def events(self) -> list[AccountEvent]:
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(AccountEvent)
                    .where(AccountEvent.account_id == self.id)
                    .order_by(col(AccountEvent.id))
                ).all()
            )

    async def reconnect(self, token: str) -> None:
        now = await self.env.get_current_time()
        with self.engine.begin() as connection:
            accounts.replace_token(
                connection,
                self.id,
                token_ciphertext=self.cipher.encrypt(token),
                expires_at=now + LIFETIME,
                now=now,
                kind=AccountEventKind.RECONNECTED,
                message="reconnected",
            )
        await start_account_tokens_workflow(
            self.env.client, account_id=self.id, username="shop", task_queue=self.task_queue
        )

    async def status(self) -> AccountStatus:
        now = await self.env.get_current_time()
        return accounts.status_of(self.row(), now=now, lead=SCHEDULE.lead).status


@pytest_asyncio.fixture
async def connect(
    time_skipping_env: WorkflowEnvironment, sqlite_engine: Engine, cipher: TokenCipher
) -> AsyncIterator[Callable[..., Awaitable[Account]]]:
    """Connect an account whose 60-day token was issued now, and start its workflow with its own worker."""
    workers: list[Worker] = []
    started: list[Account] = []
    executor = ThreadPoolExecutor(max_workers=4)

    async def start(script: TokenScript | None = None) -> Account:
        script = script or TokenScript()
        now = await time_skipping_env.get_current_time()
        with Session(sqlite_engine) as session:
            row = add_account(
                session,
                add_user(session),
                cipher,
                token="IGAAfirst-token",
                token_expires_at=now + LIFETIME,
                token_issued_at=now,
            )
            account_id = id_of(row)
            session.commit()
        tokens = AccountTokens(
            ScriptedTokenGraph(script, _server_now),
            sqlite_engine,
            cipher,
            login=GraphLogin.INSTAGRAM,
            schedule=SCHEDULE,
            clock=_server_now,
        )
        task_queue = f"accounts-{uuid.uuid4()}"
        worker = Worker(
            time_skipping_env.client,
            task_queue=task_queue,
            workflows=[AccountTokensWorkflow],
            activities=[tokens.plan_token_refresh, tokens.refresh_token],
            activity_executor=executor,
        )
        await worker.__aenter__()
        workers.append(worker)
        handle = await start_account_tokens_workflow(
            time_skipping_env.client, account_id=account_id, username="shop", task_queue=task_queue
        )
        started.append(
            Account(time_skipping_env, sqlite_engine, cipher, account_id, now, script, task_queue, handle)
        )
        return started[-1]

    yield start
    # Account ids restart with each test's database, and a workflow left waiting on an activity with no worker
    # would stop the server from skipping time for the next test.
    for account in started:
        handle = time_skipping_env.client.get_workflow_handle(account.handle.id)
        if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test over")
    for worker in workers:
        await worker.__aexit__(None, None, None)
    executor.shutdown()


def _near(actual: datetime | None, expected: datetime) -> bool:
    return actual is not None and abs(actual - expected) <= TOLERANCE


async def test_a_60_day_token_is_refreshed_a_week_before_it_expires_for_as_long_as_the_account_lives(
    connect,
) -> None:
    account = await connect()
    t0 = account.connected_at
    await account.env.sleep(timedelta(days=50))
    assert account.script.refreshed_at == [] and await account.status() is AccountStatus.ACTIVE

    await account.env.sleep(timedelta(days=40))  # day 90: a post this far ahead still finds a live token
    first = t0 + LIFETIME - SCHEDULE.lead
    assert len(account.script.refreshed_at) == 1 and _near(account.script.refreshed_at[0], first)
    row = account.row()
    assert _near(row.token_expires_at, first + LIFETIME) and row.token_issued_at is not None
    assert account.cipher.decrypt(row.access_token_ciphertext).get_secret_value() == "IGAArefreshed-1"
    assert account.script.tokens == ["IGAAfirst-token"]  # the stored token was the one refreshed
    assert await account.status() is AccountStatus.ACTIVE
    [event] = account.events()
    assert event.kind is AccountEventKind.TOKEN_REFRESHED and _near(event.occurred_at, first)
    assert _near(event.token_expires_at, first + LIFETIME)
    assert "IGAA" not in event.message

    await account.env.sleep(timedelta(days=30))  # day 120: refreshed again, the new token this time
    assert len(account.script.refreshed_at) == 2
    assert _near(account.script.refreshed_at[1], first + LIFETIME - SCHEDULE.lead)
    assert account.script.tokens == ["IGAAfirst-token", "IGAArefreshed-1"]
    assert [e.kind for e in account.events()] == [AccountEventKind.TOKEN_REFRESHED] * 2
    description = await account.handle.describe()
    assert description.status is WorkflowExecutionStatus.RUNNING
    assert description.run_id != account.handle.result_run_id  # continued as new after each refresh

    # The first run (plan, sleep, refresh, continue as new) replays on the sandboxed runner; RECORD_TO keeps it
    # for tests/replay (python -m pytest ... with CHRONOGRAM_RECORD_ACCOUNT_HISTORY=1).
    first_run = account.env.client.get_workflow_handle(account.handle.id, run_id=account.handle.result_run_id)
    history = await first_run.fetch_history()
    await Replayer(workflows=[AccountTokensWorkflow], data_converter=DATA_CONVERTER).replay_workflow(history)
    if os.environ.get("CHRONOGRAM_RECORD_ACCOUNT_HISTORY"):
        RECORD_TO.write_text(json.dumps(json.loads(history.to_json()), indent=1, sort_keys=True) + "\n")


async def test_an_outage_during_the_refresh_is_retried_until_it_passes(connect) -> None:
    outage = [graph_failure(2, http_status=500) for _ in range(4)]
    account = await connect(TokenScript(failures=outage))
    await account.env.sleep(timedelta(days=54))
    due = account.connected_at + LIFETIME - SCHEDULE.lead
    [refreshed] = account.script.refreshed_at
    # Four failures, backing off 5, 10, 20 then 40 s (an attempt's scheduled time is when the one before failed).
    assert account.script.failures == []
    assert due + timedelta(seconds=5 + 10 + 20) <= refreshed <= due + TOLERANCE
    assert [e.kind for e in account.events()] == [AccountEventKind.TOKEN_REFRESHED]
    assert await account.status() is AccountStatus.ACTIVE


async def test_a_revoked_token_makes_the_account_need_reconnecting_until_it_is_reconnected(connect) -> None:
    account = await connect(TokenScript(failures=[graph_failure(190, 460)]))
    await account.env.sleep(timedelta(days=54))
    row = account.row()
    assert row.status is AccountStatus.NEEDS_RECONNECT
    assert row.status_reason is AccountStatusReason.TOKEN_INVALID
    assert [e.kind for e in account.events()] == [AccountEventKind.NEEDS_RECONNECT]
    # Nothing more is tried with a dead token, however long the wait.
    await account.env.sleep(timedelta(days=30))
    assert account.script.refreshed_at == [] and len(account.events()) == 1
    assert (await account.handle.describe()).status is WorkflowExecutionStatus.RUNNING

    await account.reconnect("IGAAsecond-token")
    assert await account.status() is AccountStatus.ACTIVE
    await account.env.sleep(timedelta(days=54))
    assert len(account.script.refreshed_at) == 1
    assert account.script.tokens == ["IGAAsecond-token"]
    assert [e.kind for e in account.events()] == [
        AccountEventKind.NEEDS_RECONNECT,
        AccountEventKind.RECONNECTED,
        AccountEventKind.TOKEN_REFRESHED,
    ]


async def test_a_withdrawn_permission_is_told_apart_from_a_dead_token(connect) -> None:
    withdrawn = graph_failure(
        10,
        http_status=403,
        message="(#10) Requires instagram_business_content_publish permission to perform this action",
    )
    account = await connect(TokenScript(failures=[withdrawn]))
    await account.env.sleep(timedelta(days=54))
    row = account.row()
    assert row.status is AccountStatus.NEEDS_RECONNECT
    assert row.status_reason is AccountStatusReason.PERMISSION_MISSING
    assert row.status_detail == "the instagram_business_content_publish permission was withdrawn"
    [event] = account.events()
    assert event.reason is AccountStatusReason.PERMISSION_MISSING


async def test_the_workflow_ends_when_its_account_is_gone(connect) -> None:
    account = await connect()
    await account.env.sleep(timedelta(days=3))
    with account.engine.begin() as connection:
        connection.execute(delete(InstagramAccount).where(col(InstagramAccount.id) == account.id))
    await start_account_tokens_workflow(
        account.env.client, account_id=account.id, username="shop", task_queue=account.task_queue
    )
    result = await account.handle.result()
    assert result.account_id == account.id and result.refreshes == 0
