"""A Graph client whose token refresh follows a script, for the account workflow on the time-skipping server
(where the sandbox's clock cannot follow the skipped time). Everything else is the real GraphClient."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from chronogram.instagram import GraphClient, GraphErrorDetails, Operation, TokenGrant, error_for

LIFETIME = timedelta(days=60)


def graph_failure(
    code: int, subcode: int | None = None, *, http_status: int = 400, message: str = ""
) -> Exception:
    return error_for(
        GraphErrorDetails(
            operation=Operation.REFRESH_TOKEN,
            message=message or f"(#{code}) scripted failure",
            http_status=http_status,
            code=code,
            subcode=subcode,
        )
    )


@dataclass
class TokenScript:
    """``failures``: raised by the next refreshes, in order (then they succeed with ``lifetime``)."""

    lifetime: timedelta = LIFETIME
    failures: list[Exception] = field(default_factory=list)
    refreshed_at: list[datetime] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


class ScriptedTokenGraph(GraphClient):
    def __init__(self, script: TokenScript, clock: Callable[[], datetime]) -> None:
        super().__init__(httpx.AsyncClient(), base_url="http://127.0.0.1:9", api_version="v25.0")
        self.script = script
        self._clock = clock

    async def refresh_access_token(self, *, access_token: str) -> TokenGrant:
        if self.script.failures:
            raise self.script.failures.pop(0)
        self.script.refreshed_at.append(self._clock())
        token = f"IGAArefreshed-{len(self.script.refreshed_at)}"
        self.script.tokens.append(access_token)
        return TokenGrant(access_token=token, token_type="bearer", expires_in=self.script.lifetime)
