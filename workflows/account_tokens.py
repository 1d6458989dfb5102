"""AccountTokensWorkflow: one per connected account (id ``account-tokens-{account_id}``), keeping its token alive.

It asks when the token is due for a refresh, sleeps until then on one durable timer, refreshes it (retrying through
any outage, backing off up to an hour) and continues as new after each refresh, so that its history stays short
however long the account lives. A ``token_replaced`` signal (sent with signal-with-start on every connect and
reconnect) wakes it to plan again. It ends when the account is deleted or being disconnected (the disconnection
also cancels it). Its input and history hold the account id only: the activities read and write the encrypted
token themselves.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from chronogram.contracts import (
        ACCOUNT_TOKENS_WORKFLOW,
        AccountRef,
        AccountSignal,
        AccountTokensInput,
        AccountTokensInterface,
        AccountTokensResult,
        RefreshOutcome,
        RefreshPlan,
        TokenReplaced,
    )

# No attempt limit: a token must be refreshed before it expires, whatever the outage; an hour between attempts
# at most keeps a long outage cheap.
_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(hours=1),
    maximum_attempts=0,
)
_DATABASE_TIMEOUT = timedelta(seconds=30)
_REFRESH_TIMEOUT = timedelta(minutes=2)
_NOT_DUE_PAUSE = timedelta(minutes=1)


@workflow.defn(name=ACCOUNT_TOKENS_WORKFLOW)
class AccountTokensWorkflow:
    def __init__(self) -> None:
        self._replaced = False

    @workflow.signal(name=AccountSignal.TOKEN_REPLACED)
    def token_replaced(self, _request: TokenReplaced | None = None) -> None:
        self._replaced = True

    @workflow.run
    async def run(self, request: AccountTokensInput) -> AccountTokensResult:
        account = AccountRef(request.account_id)
        while True:
            self._replaced = False
            plan = await self._plan(account)
            if plan.gone:
                return AccountTokensResult(request.account_id, request.refreshes)
            if plan.refresh_at is None:
                await workflow.wait_condition(lambda: self._replaced)
                continue
            wait = plan.refresh_at - workflow.now()
            if wait > timedelta(0):
                try:
                    await workflow.wait_condition(lambda: self._replaced, timeout=wait)
                    continue  # a new token: plan again
                except TimeoutError:
                    pass
            result = await workflow.execute_activity_method(
                AccountTokensInterface.refresh_token,
                account,
                start_to_close_timeout=_REFRESH_TIMEOUT,
                retry_policy=_RETRY,
                summary="refresh the access token",
            )
            if result.outcome is RefreshOutcome.GONE:
                return AccountTokensResult(request.account_id, request.refreshes)
            if result.outcome is RefreshOutcome.REFRESHED or workflow.info().is_continue_as_new_suggested():
                refreshes = request.refreshes + (result.outcome is RefreshOutcome.REFRESHED)
                workflow.continue_as_new(AccountTokensInput(request.account_id, refreshes))
            if result.outcome is RefreshOutcome.NOT_DUE:
                # The token was replaced meanwhile, or the worker's clock is behind this workflow's: plan again,
                # but not in a tight loop.
                try:
                    await workflow.wait_condition(lambda: self._replaced, timeout=_NOT_DUE_PAUSE)
                except TimeoutError:
                    pass
            # NEEDS_RECONNECT: the plan is to wait for a new token.

    async def _plan(self, account: AccountRef) -> RefreshPlan:
        return await workflow.execute_activity_method(
            AccountTokensInterface.plan_token_refresh,
            account,
            start_to_close_timeout=_DATABASE_TIMEOUT,
            retry_policy=_RETRY,
            summary="when to refresh the access token",
        )
