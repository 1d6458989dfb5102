"""Schedule a post from the command line against the running stack (`make dev`), without the HTTP API.

    .venv/bin/python -m scripts.schedule_post photo.jpg --caption "Hello" --first-comment "#first" --in 30s
    .venv/bin/python -m scripts.schedule_post a.jpg b.jpg clip.mp4 --type CAROUSEL --at 2026-12-01T09:00:00+01:00

By default it posts as the Graph API sandbox's demo account; --ig-user-id/--token (or CHRONOGRAM_CLI_TOKEN) pick
another. It goes the API's own way (api.use_cases): the account is verified and connected, each file checked and
stored as an upload would be, and the post checked against the same rules, recorded with the same events and its
workflow started, as POST /v1/posts does. A post the API would refuse prints every violation, with its field
and code, and leaves no post and none of its files behind. Otherwise it prints where to watch the post.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.crud.users import find_or_create_user
from api.deps import AppServices
from api.errors import ApiError, FieldError, invalid_input
from api.schemas.posts import PostCreate
from api.start_records import StartRecorder
from api.uploads import ReceivedFile, received_bytes
from api.use_cases import accounts, media, post_creation
from chronogram.contracts import post_workflow_id
from chronogram.crypto import TokenCipher
from chronogram.db import create_schema, make_engine
from chronogram.enums import PostType
from chronogram.instagram import GraphClient
from chronogram.models import MediaAsset
from chronogram.notifications import outbox
from chronogram.settings import Settings, get_settings
from chronogram.storage import ensure_bucket, make_minio
from chronogram.temporal import connect_temporal

DEMO_IG_USER_ID = "17841400000000001"
DEMO_TOKEN = "sandbox-demo-token"  # public by design: the sandbox's seeded demo account
CLI_USER_EMAIL = "cli@localhost.localdomain"
_DELAY = re.compile(r"^(\d+)([smhd])$")


def parse_when(at: str | None, delay: str | None) -> datetime:
    if at:
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise SystemExit("--at needs a timezone, e.g. 2026-12-01T09:00:00+01:00 or ...Z")
        return when.astimezone(UTC)
    match = _DELAY.match(delay or "30s")
    if match is None:
        raise SystemExit("--in takes a number and a unit: 90s, 5m, 2h, 3d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return datetime.now(UTC) + timedelta(**{unit: int(match.group(1))})


def read_files(names: list[str], settings: Settings) -> list[ReceivedFile]:
    """The files, held to an upload's size limits; what they are is checked when they are stored."""
    return [
        received_bytes(
            Path(name).read_bytes(),
            max_image_bytes=settings.api_max_image_upload_bytes,
            max_video_bytes=settings.api_max_video_upload_bytes,
        )
        for name in names
    ]


async def run(args: argparse.Namespace, settings: Settings) -> int:
    publish_at = parse_when(args.at, args.delay)
    post_type = PostType(args.type or ("CAROUSEL" if len(args.files) > 1 else "IMAGE"))
    token = args.token or os.environ.get("CHRONOGRAM_CLI_TOKEN") or DEMO_TOKEN
    try:
        files = read_files(args.files, settings)
    except OSError as error:
        print(f"Cannot use that file: {error}", file=sys.stderr)
        return 1
    except ApiError as error:
        print(f"Cannot use that file: {error.detail}", file=sys.stderr)
        return 1

    engine = make_engine(settings.database_url)
    create_schema(engine)
    outbox.install()  # the post's "scheduled" event goes to the outbox, as through the API
    storage = make_minio(settings)
    ensure_bucket(storage, settings.media_bucket)
    timeout = httpx.Timeout(settings.graph_api_timeout_seconds, connect=10.0)
    try:
        # The recorder writes the record of the workflow's start on leaving, as the API's does at shutdown.
        async with httpx.AsyncClient(timeout=timeout) as http, StartRecorder(engine) as start_records:
            services = AppServices(
                settings=settings,
                temporal=await connect_temporal(settings),
                engine=engine,
                storage=storage,
                graph=GraphClient.from_settings(http, settings),
                cipher=TokenCipher.from_settings(settings),
                start_records=start_records,
            )
            # As the API's sessions: rows stay readable after a commit.
            with Session(engine, expire_on_commit=False) as session:
                scheduled = await _schedule(services, session, args, post_type, publish_at, token, files)
    finally:
        for received in files:
            received.file.close()
        engine.dispose()
    if scheduled is None:
        return 1
    created, username, ig_user_id = scheduled
    post_id = created.post.id
    assert post_id is not None
    print(
        f"Scheduled post {post_id}: {created.post.type.value} to @{username} at "
        f"{created.post.publish_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    )
    print(f"  workflow  {post_workflow_id(post_id)}")
    print(
        f"  Web UI    http://localhost:8233/namespaces/{settings.temporal_namespace}/workflows/{post_workflow_id(post_id)}"
    )
    print(f"  result    {settings.graph_api_base_url}/_sandbox/accounts/{ig_user_id}/media  (sandbox only)")
    if not created.workflow_started:
        print(
            "Its workflow could not be started now; the API's reconciler starts it (make dev runs the API).",
            file=sys.stderr,
        )
    return 0


async def _schedule(
    services: AppServices,
    session: Session,
    args: argparse.Namespace,
    post_type: PostType,
    publish_at: datetime,
    token: str,
    files: list[ReceivedFile],
) -> tuple[post_creation.CreatedPost, str, str] | None:
    """The post created as POST /v1/posts creates it, its account's username and Instagram id; None (and why,
    printed) if it was refused."""
    owner = await run_in_threadpool(find_or_create_user, session, name=CLI_USER_EMAIL)
    try:
        connected = await accounts.connect_account(
            services, session, owner_id=owner.user_id, ig_user_id=args.ig_user_id, token=token
        )
    except ApiError as error:
        print(f"The Instagram account could not be verified: {error.detail}", file=sys.stderr)
        return None
    account = connected.account
    assert account.id is not None
    stored: list[int] = []
    try:
        for received in files:
            asset = await media.store_upload(services, received, owner_id=owner.user_id)
            assert asset.id is not None
            stored.append(asset.id)
    except ApiError as error:
        await _forget(services, session, stored)
        print(f"Cannot use that file: {error.detail}", file=sys.stderr)
        return None
    try:
        body = PostCreate(
            account_id=account.id,
            type=post_type,
            media_ids=stored,
            caption=args.caption,
            first_comment=args.first_comment,
            location_id=args.location_id,
            publish_at=publish_at,
        )
        created = await post_creation.create_post(services, session, body, owner_id=owner.user_id)
    except (ValidationError, ApiError) as error:
        await _forget(services, session, stored)
        _print_refusal(invalid_input(error.errors()) if isinstance(error, ValidationError) else error)
        return None
    return created, account.username, account.ig_user_id


async def _forget(services: AppServices, session: Session, media_ids: list[int]) -> None:
    """Delete the files stored for a post that was then refused (nothing uses them)."""
    for media_id in media_ids:
        asset = await run_in_threadpool(session.get, MediaAsset, media_id)
        if asset is not None:
            await media.delete_media(services, session, asset)


def _print_refusal(problem: ApiError) -> None:
    """Every violation, with the field and code the API would answer with."""
    print("The post was refused:", file=sys.stderr)
    for item in problem.errors or [
        FieldError(field=problem.field, code=problem.code, message=problem.detail)
    ]:
        where = f"{item.field}: " if item.field else ""
        print(f"  {where}{item.message} ({item.code})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", help="images (JPEG, PNG, WebP) or videos (MP4, MOV), in order")
    parser.add_argument(
        "--type", choices=[t.value for t in PostType], help="default: IMAGE, or CAROUSEL for several files"
    )
    parser.add_argument("--caption")
    parser.add_argument("--first-comment")
    parser.add_argument("--location-id")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--at", help="publish time, ISO 8601 with a timezone")
    when.add_argument("--in", dest="delay", help="publish after this long: 90s, 5m, 2h, 3d (default 30s)")
    parser.add_argument("--ig-user-id", default=DEMO_IG_USER_ID)
    parser.add_argument(
        "--token",
        help="the account's access token (default: $CHRONOGRAM_CLI_TOKEN, else the sandbox demo token)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(run(args, get_settings()))


if __name__ == "__main__":
    sys.exit(main())
