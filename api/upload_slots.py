"""How many uploads one API process receives and stores at once: per user, so that one user's uploads (many, or
slow ones from a client on a poor connection) cannot take the server's capacity from everyone else, and in all.

A slot is taken before the first byte of the body is read and given back when the upload ends, however it ends:
stored, refused, failed, timed out or abandoned by its client. Only uploads in flight count. The counts live in
this process; each API process has its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from api.errors import ApiError

# How long a refused client is asked to wait: an upload of a few MB on a fair connection takes about that long.
RETRY_AFTER_SECONDS = 5


class UploadSlots:
    def __init__(self, *, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._by_user: dict[int, int] = {}
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def held_by(self, user_id: int) -> int:
        return self._by_user.get(user_id, 0)

    @contextmanager
    def hold(self, user_id: int) -> Iterator[None]:
        """A slot for one upload of ``user_id`` for the duration of the block; raises ApiError (429 for the user's
        own limit, 503 for the server's) when none is free. Called on the event loop: the check and the count
        happen with no await between them."""
        held = self._by_user.get(user_id, 0)
        if held >= self.per_user:
            raise too_many_uploads(self.per_user)
        if self._in_flight >= self.total:
            raise ApiError(
                503,
                "upload_capacity_reached",
                f"the server is receiving {self.total} uploads already; try again shortly",
                headers=_refused_headers(),
            )
        self._by_user[user_id] = held + 1
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            remaining = self._by_user[user_id] - 1
            if remaining:
                self._by_user[user_id] = remaining
            else:
                del self._by_user[user_id]


def too_many_uploads(limit: int) -> ApiError:
    return ApiError(
        429,
        "too_many_uploads",
        f"you have {limit} uploads in progress, the most allowed at once; send this one when one of them ends",
        headers=_refused_headers(),
    )


def _refused_headers() -> dict[str, str]:
    # Connection: close, since the body is refused unread: the server closes the connection after the answer
    # instead of reading the rest of the body, and a client reading while it sends stops sending.
    return {"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"}
