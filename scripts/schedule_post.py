"""Schedule a post from the command line against the running stack (`make dev`), without the HTTP API.

    .venv/bin/python -m scripts.schedule_post photo.jpg --caption "Hello" --first-comment "#first" --in 30s
    .venv/bin/python -m scripts.schedule_post a.jpg b.jpg clip.mp4 --type CAROUSEL --at 2026-12-01T09:00:00+01:00

By default it posts as the Graph API sandbox's demo account; --ig-user-id/--token (or CHRONOGRAM_CLI_TOKEN) pick
another. It records the post like the API would, starts its workflow and prints where to watch it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlmodel import Session, select

from chronogram.contracts import post_workflow_id
from chronogram.crypto import TokenCipher
from chronogram.db import create_schema, make_engine
from chronogram.enums import PostType
from chronogram.instagram import GraphAPIError, GraphClient
from chronogram.media_rules import MediaRejected, inspect_image, sniff_video
from chronogram.models import InstagramAccount, MediaAsset, Post, PostMedia, User
from chronogram.scheduling import start_post_workflow
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


def read_media(path: Path) -> tuple[bytes, str, int | None, int | None]:
    data = path.read_bytes()
    video_type = sniff_video(data[:64])
    if video_type:
        return data, video_type, None, None
    info = inspect_image(data)  # raises MediaRejected with a message the user can act on
    return data, f"image/{info.format.lower()}", info.width, info.height


async def run(args: argparse.Namespace, settings: Settings) -> int:
    publish_at = parse_when(args.at, args.delay)
    post_type = PostType(args.type or ("CAROUSEL" if len(args.files) > 1 else "IMAGE"))
    token = args.token or os.environ.get("CHRONOGRAM_CLI_TOKEN") or DEMO_TOKEN
    async with httpx.AsyncClient() as http:
        try:
            account_info = await GraphClient.from_settings(http, settings).get_account(
                access_token=token, ig_user_id=args.ig_user_id
            )
        except GraphAPIError as error:
            print(f"The Instagram account could not be verified: {error.user_message}", file=sys.stderr)
            return 1
    try:
        media = [read_media(Path(name)) for name in args.files]
    except (MediaRejected, OSError) as error:
        print(f"Cannot use that file: {error}", file=sys.stderr)
        return 1

    engine = make_engine(settings.database_url)
    create_schema(engine)
    storage = make_minio(settings)
    ensure_bucket(storage, settings.media_bucket)
    cipher = TokenCipher.from_settings(settings)
    with Session(engine) as session:
        user = session.exec(select(User).where(User.email == CLI_USER_EMAIL)).first() or User(
            email=CLI_USER_EMAIL
        )
        session.add(user)
        session.flush()
        assert user.id is not None
        account = session.exec(
            select(InstagramAccount).where(
                InstagramAccount.owner_id == user.id, InstagramAccount.ig_user_id == account_info.id
            )
        ).first() or InstagramAccount(
            owner_id=user.id, ig_user_id=account_info.id, username="", access_token_ciphertext=""
        )
        account.username = account_info.username or account_info.id
        account.access_token_ciphertext = cipher.encrypt(token)
        session.add(account)
        session.flush()
        post = Post(
            owner_id=user.id,
            account_id=account.id,  # type: ignore[arg-type]
            type=post_type,
            caption=args.caption,
            first_comment=args.first_comment,
            location_id=args.location_id,
            publish_at=publish_at,
        )
        session.add(post)
        session.flush()
        for position, (data, content_type, width, height) in enumerate(media):
            key = f"uploads/{user.id}/{uuid.uuid4()}.{content_type.split('/')[1]}"
            storage.put_object(
                settings.media_bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )
            asset = MediaAsset(
                owner_id=user.id,
                object_key=key,
                content_type=content_type,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                width=width,
                height=height,
            )
            session.add(asset)
            session.flush()
            session.add(PostMedia(post_id=post.id, position=position, media_id=asset.id))  # type: ignore[arg-type]
        session.commit()
        post_id, account_id, username = post.id, account.id, account.username
    assert post_id is not None and account_id is not None

    client = await connect_temporal(settings)
    await start_post_workflow(
        client,
        post_id=post_id,
        account_id=account_id,
        username=username,
        post_type=post_type,
        publish_at=publish_at,
    )
    print(f"Scheduled post {post_id}: {post_type.value} to @{username} at {publish_at:%Y-%m-%d %H:%M:%S} UTC")
    print(f"  workflow  {post_workflow_id(post_id)}")
    print(
        f"  Web UI    http://localhost:8233/namespaces/{settings.temporal_namespace}/workflows/{post_workflow_id(post_id)}"
    )
    print(
        f"  result    {settings.graph_api_base_url}/_sandbox/accounts/{account_info.id}/media  (sandbox only)"
    )
    return 0


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
