"""How the benchmark talks to the stack: the HTTP API as a client would, the sandbox's admin API for ground truth,
and read-only looks at the application database to follow progress without adding load to the API."""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import bindparam, create_engine, insert, text

from bench.procinfo import file_size
from chronogram.enums import MetricsCheckpoint, PostStatus, PostType
from chronogram.models import Post, PostMetrics, table_of
from sandbox.admin_client import SandboxAdmin

FINAL_STATUSES = ("published", "failed", "cancelled")


class ApiFailed(RuntimeError):
    """The API answered something a scenario cannot go on with."""


@dataclass(frozen=True)
class Account:
    id: int
    ig_user_id: str
    username: str


def new_http(*, connections: int = 1) -> httpx.AsyncClient:
    # trust_env=False: a proxy from the environment must not sit between the benchmark and localhost.
    return httpx.AsyncClient(
        trust_env=False,
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


class Api:
    """One API client: one connection pool, one bearer key."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, key: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}"}

    async def request(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        response = await self._http.request(method, self._base + path, headers=self._headers, **kwargs)
        if response.status_code != expect:
            raise ApiFailed(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json()

    async def upload(self, data: bytes, filename: str = "image.jpg") -> dict[str, Any]:
        body: dict[str, Any] = await self.request(
            "POST", "/v1/media", expect=201, files={"file": (filename, data, "image/jpeg")}
        )
        return body

    async def connect_account(self, ig_user_id: str, access_token: str) -> int:
        body = await self.request(
            "POST",
            "/v1/accounts",
            expect=201,
            json={"ig_user_id": ig_user_id, "access_token": access_token},
        )
        return int(body["id"])

    async def create_post(self, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """POST /v1/posts; returns the latency as the client saw it, and the post."""
        began = time.perf_counter()
        created: dict[str, Any] = await self.request("POST", "/v1/posts", expect=201, json=body)
        return time.perf_counter() - began, created

    async def get_json(self, path: str, **params: Any) -> tuple[float, dict[str, Any]]:
        began = time.perf_counter()
        body: dict[str, Any] = await self.request("GET", path, params=params)
        return time.perf_counter() - began, body

    async def list_posts(self, **params: Any) -> tuple[float, dict[str, Any]]:
        began = time.perf_counter()
        page: dict[str, Any] = await self.request("GET", "/v1/posts", params=params)
        return time.perf_counter() - began, page


def post_body(
    *, account_id: int, media_id: int, publish_at: datetime, caption: str, first_comment: bool = True
) -> dict[str, Any]:
    """An image post as a client would send it: a caption and, as many do, a first comment with the hashtags."""
    body: dict[str, Any] = {
        "account_id": account_id,
        "type": "IMAGE",
        "media_ids": [media_id],
        "caption": caption,
        "publish_at": publish_at.isoformat(),
    }
    if first_comment:
        body["first_comment"] = "#chronogram #benchmark"
    return body


async def make_accounts(api: Api, sandbox: SandboxAdmin, count: int, prefix: str) -> list[Account]:
    """Fresh sandbox accounts (their own quota and published media), each connected through POST /v1/accounts."""

    async def one(index: int) -> Account:
        created = await sandbox.create_account(f"{prefix}_{index}"[:30])
        account_id = await api.connect_account(created.ig_user_id, created.access_token)
        return Account(id=account_id, ig_user_id=created.ig_user_id, username=created.username)

    accounts: list[Account] = []
    for start in range(0, count, 10):  # a few at a time: the sandbox and the API are on the same two cores
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i)) for i in range(start, min(start + 10, count))]
        accounts += [task.result() for task in tasks]
    return accounts


async def published_media(sandbox: SandboxAdmin, accounts: Sequence[Account]) -> list[dict[str, Any]]:
    """The sandbox's ground truth for these accounts: every media actually published, with published_at."""
    media: list[dict[str, Any]] = []
    for account in accounts:
        media += await sandbox.published(account.ig_user_id)
    return media


# --- images -----------------------------------------------------------------------------------------------------


def small_jpeg(width: int = 1080, height: int = 1350) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 110, 190)).save(out, format="JPEG", quality=85)
    return out.getvalue()


def jpeg_of_size(target_bytes: int, *, seed: int = 6) -> bytes:
    """A photo-like JPEG of about ``target_bytes`` (within 3 %, above it), 4:3 so that an IMAGE post takes it.

    Noise compresses badly, as the fine detail of a real photo does; a gradient under it keeps it from being pure
    noise. The pixel count is searched so that quality 92 lands on the target.
    """
    rng = random.Random(seed)
    low, high = 1000, 7000  # widths; 7000x5250 is 36.75 MP, under the 50 MP limit
    best = b""
    for _ in range(14):
        width = (low + high) // 2
        data = _noisy_jpeg(width, width * 3 // 4, rng.randrange(1 << 30))
        if len(data) < target_bytes:
            low = width + 1
        else:
            best, high = data, width - 1
            if len(data) <= target_bytes * 1.03:
                return data
    if not best:
        raise ValueError(f"cannot make a {target_bytes}-byte JPEG")
    return best


def _noisy_jpeg(width: int, height: int, seed: int) -> bytes:
    noise = Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image = Image.blend(gradient, noise, 0.55)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


# --- the application database, read directly -----------------------------------------------------------------------


class AppDb:
    """Progress counters read straight from the application database (SQLite or PostgreSQL): cheaper than asking
    the API, and no load on it. Read-only queries, short transactions."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(url, pool_size=1, max_overflow=0)

    def close(self) -> None:
        self._engine.dispose()

    def _scalar(self, query: str, **params: Any) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(text(query), params).scalar_one())

    def seed_published_posts(self, account_id: int, rows: Sequence[dict[str, Any]]) -> None:
        """Published image posts of the account, each with a +24 h reading (bench/scenarios/insights.py): the only
        write the benchmark makes here, in one transaction, through the models' column types."""
        posts, metrics = table_of(Post), table_of(PostMetrics)
        metric_names = ("reach", "likes", "comments", "saved", "shares", "views", "total_interactions")
        with self._engine.begin() as connection:
            owner_id = connection.execute(
                text("SELECT owner_id FROM instagram_accounts WHERE id = :id"), {"id": account_id}
            ).scalar_one()
            for row in rows:
                when = row["published_at"]
                inserted = connection.execute(
                    insert(posts).values(
                        owner_id=owner_id,
                        account_id=account_id,
                        type=PostType.IMAGE,
                        publish_at=when,
                        status=PostStatus.PUBLISHED,
                        published_at=when,
                        ig_media_id=row["ig_media_id"],
                        user_tags=[],
                    )
                )
                assert inserted.inserted_primary_key is not None
                post_id = inserted.inserted_primary_key[0]
                connection.execute(
                    insert(metrics).values(
                        post_id=post_id,
                        checkpoint=MetricsCheckpoint.DAY,
                        captured_at=when + timedelta(hours=24),
                        **{name: row[name] for name in metric_names},
                    )
                )

    def statuses(self, post_ids: Sequence[int]) -> dict[str, int]:
        """How many of these posts are in each status."""
        counts: dict[str, int] = {}
        with self._engine.connect() as connection:
            for start in range(0, len(post_ids), 500):
                query = text(
                    "SELECT status, count(*) FROM posts WHERE id IN :ids GROUP BY status"
                ).bindparams(bindparam("ids", expanding=True))
                for status, count in connection.execute(query, {"ids": list(post_ids[start : start + 500])}):
                    counts[status] = counts.get(status, 0) + int(count)
        return counts

    def prepared(self, post_ids: Sequence[int]) -> int:
        """How many of these posts have their Instagram container (prepared ahead of publish_at)."""
        total = 0
        with self._engine.connect() as connection:
            for start in range(0, len(post_ids), 500):
                query = text(
                    "SELECT count(*) FROM posts WHERE id IN :ids AND ig_container_id IS NOT NULL"
                ).bindparams(bindparam("ids", expanding=True))
                total += int(
                    connection.execute(query, {"ids": list(post_ids[start : start + 500])}).scalar_one()
                )
        return total

    def count_scheduled_after(self, instant: datetime) -> int:
        """Scheduled posts due after ``instant``: the sleeping ones."""
        if self._engine.dialect.name == "sqlite":
            # SQLite keeps UTC without an offset (chronogram.models.UTCDateTime): compare in the same form.
            value: Any = instant.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        else:
            value = instant
        return self._scalar(
            "SELECT count(*) FROM posts WHERE status = 'scheduled' AND publish_at > :instant", instant=value
        )

    def size_bytes(self, sqlite_file: Path) -> int:
        if self._engine.dialect.name == "sqlite":
            return file_size(sqlite_file)
        return self._scalar("SELECT pg_database_size(current_database())")
