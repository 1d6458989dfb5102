"""Uploads under pressure, against the API as production runs it (uvicorn in a process of its own, default
settings, real sockets): slow uploads of some users leave other users' requests fast, a user's uploads beyond
their limit are refused at once (429 with Retry-After), an abandoned upload gives its slot back, and a hundred
concurrent uploads of a few MB all succeed.

Before, a request held its pooled database connection while its body streamed in: 15 slow uploads took the whole
pool and every other request waited 30 s for a connection, then failed with a 500."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TextIO

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

from api.crud.users import create_user
from api.deps import AppServices
from api.main import create_app
from bench import paced_upload
from bench.client import jpeg_of_size
from chronogram.crypto import TokenCipher
from chronogram.db import create_schema, make_engine
from chronogram.settings import Settings
from chronogram.storage import ensure_bucket, make_minio
from tests.support.api_process import api_process
from tests.support.media import jpeg

PER_USER = Settings().api_max_concurrent_uploads_per_user
SLOW_BYTES_PER_SECOND = 2048

NewKey = Callable[[], Awaitable[str]]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads") / "chronogram.db"


@pytest.fixture(scope="module")
def api_url(settings: Settings, database: Path, server_log: TextIO) -> Iterator[str]:
    """The API with every setting at its default, but for where the servers are (the session's Temporal and
    MinIO, a database and a bucket of its own)."""
    configured = settings.model_copy(
        update={
            "database_url": f"sqlite:///{database}",
            "media_bucket": "upload-pressure",
            "token_encryption_key": SecretStr(TokenCipher.generate_key()),
        }
    )
    create_schema(make_engine(configured.database_url))
    ensure_bucket(make_minio(configured), configured.media_bucket)
    with api_process(configured, sink=server_log) as url:
        yield url


@pytest.fixture(scope="module")
def engine(database: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{database}")
    yield made
    made.dispose()


@pytest.fixture
def new_key(engine: Engine, api_url: str) -> NewKey:
    """Each call: a new user, and its API key, used once already: a key's first use records its last_used_at (a
    write, and a commit), the requests after it only read, as most requests do."""

    def create() -> str:
        with Session(engine) as session:
            _user, key = create_user(session, name=f"user-{uuid.uuid4().hex[:12]}@example.com")
        return key

    async def make() -> str:
        key = await asyncio.to_thread(create)
        async with httpx.AsyncClient(base_url=api_url, trust_env=False) as client:
            response = await client.get("/v1/media", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
        return key

    return make


async def test_slow_uploads_leave_other_users_fast_and_a_users_extra_uploads_are_refused_at_once(
    api_url: str, new_key: NewKey
) -> None:
    # 4 users with as many slow uploads as each may have: 24 bodies streaming in at 2 KB/s, more than the 15
    # connections the database pool had, and more than the pool of any setting would need.
    uploaders = [await new_key() for _ in range(4)]
    reader = await new_key()
    image = jpeg()  # ~20 KB: about 10 s at 2 KB/s
    abandon = asyncio.Event()
    slow = [
        asyncio.create_task(
            paced_upload.upload(api_url, key, image, bytes_per_second=SLOW_BYTES_PER_SECOND, abandon=abandon)
        )
        for key in uploaders
        for _ in range(PER_USER)
    ]
    try:
        await asyncio.sleep(1.0)  # every slow upload has begun sending
        assert not any(task.done() for task in slow), [task.result() for task in slow if task.done()]

        # Another user's reads stay fast meanwhile.
        latencies: list[float] = []
        async with httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {reader}"}, timeout=10.0, trust_env=False
        ) as client:
            for _ in range(40):
                began = time.perf_counter()
                response = await client.get("/v1/posts", params={"limit": 20})
                latencies.append(time.perf_counter() - began)
                assert response.status_code == 200, response.text
            uploaded = await client.post("/v1/media", files={"file": ("photo.jpg", image, "image/jpeg")})
            assert uploaded.status_code == 201, uploaded.text
        assert max(latencies) < 1.0, sorted(latencies)[-5:]
        # The first uploader's next uploads are refused at once, before their bodies are read.
        extra = await asyncio.gather(
            *(
                paced_upload.upload(api_url, uploaders[0], image, bytes_per_second=SLOW_BYTES_PER_SECOND)
                for _ in range(3)
            )
        )
        for answer in extra:
            assert answer.status == 429, (answer.status, answer.body[:300])
            assert answer.json()["code"] == "too_many_uploads"
            assert int(answer.headers["retry-after"]) >= 1
            assert answer.seconds < 2.0, answer.seconds
            assert answer.sent_bytes < len(image), "the body was read before it was refused"

        assert not any(task.done() for task in slow), "the slow uploads were meant to be still sending"
    finally:
        abandon.set()
        await asyncio.gather(*slow, return_exceptions=True)

    # Abandoned uploads give their slots back: the first uploader may upload again.
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {uploaders[0]}"}, timeout=10.0, trust_env=False
    ) as client:
        deadline = time.monotonic() + 5.0
        while True:
            response = await client.post("/v1/media", files={"file": ("photo.jpg", image, "image/jpeg")})
            if response.status_code != 429 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert response.status_code == 201, response.text


async def test_an_upload_that_ends_early_or_fails_gives_its_slot_back(api_url: str, new_key: NewKey) -> None:
    key = await new_key()
    image = jpeg()
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0, trust_env=False
    ) as client:
        # More refused uploads than the limit, one after the other: each slot is back once its upload is over.
        for _ in range(PER_USER + 2):
            refused = await client.post(
                "/v1/media", files={"file": ("notes.txt", b"not an image", "text/plain")}
            )
            assert refused.status_code == 415, refused.text
        # More abandoned uploads than the limit, in a row.
        for _ in range(PER_USER + 2):
            abandon = asyncio.Event()
            sending = asyncio.create_task(
                paced_upload.upload(
                    api_url, key, image, bytes_per_second=SLOW_BYTES_PER_SECOND, abandon=abandon
                )
            )
            await asyncio.sleep(0.3)
            abandon.set()
            assert (await sending).status == 0
        deadline = time.monotonic() + 5.0
        while True:
            response = await client.post("/v1/media", files={"file": ("photo.jpg", image, "image/jpeg")})
            if response.status_code != 429 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert response.status_code == 201, response.text


async def test_a_hundred_concurrent_uploads_of_a_few_mb_all_succeed(api_url: str, new_key: NewKey) -> None:
    count = 100
    keys: list[str] = []
    for _ in range(count // 10):
        keys += await asyncio.gather(*(new_key() for _ in range(10)))
    image = await asyncio.to_thread(jpeg_of_size, 1_500_000)
    began = time.perf_counter()
    # At 512 KB/s each, as from clients on fair connections: all of them in flight at once for a few seconds.
    answers = await asyncio.gather(
        *(
            paced_upload.upload(api_url, key, image, bytes_per_second=512 * 1024, chunk_bytes=64 * 1024)
            for key in keys
        )
    )
    elapsed = time.perf_counter() - began
    statuses = [answer.status for answer in answers]
    assert statuses == [201] * count, (
        {status: statuses.count(status) for status in set(statuses)},
        next((answer.body[:300] for answer in answers if answer.status != 201), b""),
    )
    assert len({answer.json()["id"] for answer in answers}) == count
    assert elapsed < 45, elapsed


async def test_no_free_database_connection_answers_503_database_busy_at_once(api_settings: Settings) -> None:
    """Pool exhausted (here: one connection, held by the test): a fast 503 with Retry-After, not a 30 s wait and
    a 500."""
    configured = api_settings.model_copy(
        update={"api_db_pool_size": 1, "api_db_max_overflow": 0, "api_db_pool_timeout_seconds": 0.3}
    )
    with Session(make_engine(configured.database_url)) as session:
        _user, key = create_user(session, name=f"user-{uuid.uuid4().hex[:12]}@example.com")
    app = create_app(configured)
    async with app.router.lifespan_context(app):
        services: AppServices = app.state.services
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            assert (await client.get("/v1/posts")).status_code == 200
            held = await asyncio.to_thread(services.engine.connect)
            try:
                began = time.perf_counter()
                response = await client.get("/v1/posts")
                elapsed = time.perf_counter() - began
            finally:
                await asyncio.to_thread(held.close)
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "database_busy"
            assert response.headers["retry-after"] == "1"
            assert elapsed < 2.0, elapsed
            assert (await client.get("/v1/posts")).status_code == 200


async def test_an_upload_whose_client_stops_sending_times_out_and_frees_its_slot(
    api_settings: Settings,
) -> None:
    configured = api_settings.model_copy(
        update={"api_upload_idle_timeout_seconds": 0.5, "api_max_concurrent_uploads_per_user": 1}
    )
    with Session(make_engine(configured.database_url)) as session:
        _user, key = create_user(session, name=f"user-{uuid.uuid4().hex[:12]}@example.com")
    body, content_type = paced_upload.multipart(jpeg())

    async def stalls() -> AsyncIterator[bytes]:
        yield body[:1000]
        await asyncio.sleep(5)  # a client that stopped sending, its connection still open
        yield body[1000:]

    app = create_app(configured)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {key}"},
        ) as client,
    ):
        began = time.perf_counter()
        response = await client.post("/v1/media", content=stalls(), headers={"Content-Type": content_type})
        assert time.perf_counter() - began < 3.0
        assert response.status_code == 408, response.text
        assert response.json()["code"] == "upload_timed_out"
        # Its slot, the user's only one, is free again.
        again = await client.post("/v1/media", files={"file": ("photo.jpg", jpeg(), "image/jpeg")})
        assert again.status_code == 201, again.text


async def test_uploads_beyond_the_servers_capacity_answer_503_at_once(api_settings: Settings) -> None:
    configured = api_settings.model_copy(update={"api_max_concurrent_uploads": 1})
    keys = []
    with Session(make_engine(configured.database_url)) as session:
        for _ in range(2):
            keys.append(create_user(session, name=f"user-{uuid.uuid4().hex[:12]}@example.com")[1])
    body, content_type = paced_upload.multipart(jpeg())
    release = asyncio.Event()

    async def waits() -> AsyncIterator[bytes]:
        yield body[:1000]
        await release.wait()
        yield body[1000:]

    app = create_app(configured)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        first = asyncio.create_task(
            client.post(
                "/v1/media",
                content=waits(),
                headers={"Content-Type": content_type, "Authorization": f"Bearer {keys[0]}"},
            )
        )
        await asyncio.sleep(0.5)
        began = time.perf_counter()
        other = await client.post(
            "/v1/media",
            files={"file": ("photo.jpg", jpeg(), "image/jpeg")},
            headers={"Authorization": f"Bearer {keys[1]}"},
        )
        assert time.perf_counter() - began < 2.0
        assert other.status_code == 503, other.text
        assert other.json()["code"] == "upload_capacity_reached"
        assert int(other.headers["retry-after"]) >= 1
        release.set()
        assert (await first).status_code == 201
