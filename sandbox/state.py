"""In-memory accounts, tokens, containers and media, and the container state machine (reference section 4).

Statuses are computed from timestamps on the sandbox clock rather than stored, so advancing the clock is all
it takes to finish processing or expire a container::

    IN_PROGRESS ──(ready_at reached, media valid)──► FINISHED ──(media_publish)──► PUBLISHED
         │                                              │
         ├──(media invalid / injected error)──► ERROR   └──(created_at + 24 h)──► EXPIRED
         └──(created_at + 24 h)──► EXPIRED
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx

from sandbox.audience import AudienceProfile
from sandbox.calls import CallLog
from sandbox.clock import Clock
from sandbox.config import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID, DEMO_USERNAME, SandboxConfig
from sandbox.errors import expired_token, invalid_token, missing_token, permission_denied, revoked_token
from sandbox.faults import FaultBook
from sandbox.media import MediaInfo
from sandbox.outages import OutageBook
from sandbox.usage import CallMeter


class Status(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    FINISHED = "FINISHED"
    PUBLISHED = "PUBLISHED"
    ERROR = "ERROR"
    EXPIRED = "EXPIRED"


class Kind(StrEnum):
    """What a container will become. VIDEO is only a carousel item (single feed videos are REELS)."""

    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    REELS = "REELS"
    STORIES = "STORIES"
    CAROUSEL = "CAROUSEL"


# Instagram Login's permissions (reference section 1.2): what a token from the authorization window grants.
INSTAGRAM_LOGIN_SCOPES = (
    "instagram_business_basic",
    "instagram_business_content_publish",
    "instagram_business_manage_comments",
)
PUBLISH_SCOPE = "instagram_business_content_publish"
COMMENTS_SCOPE = "instagram_business_manage_comments"


@dataclass
class Token:
    value: str
    ig_user_id: str
    issued_at: datetime
    expires_at: datetime | None
    revoked: bool = False
    # A short-lived token (1 h by default) is what the authorization window gives; ig_exchange_token trades it.
    short_lived: bool = False
    scopes: list[str] = field(default_factory=lambda: list(INSTAGRAM_LOGIN_SCOPES))


@dataclass
class Account:
    ig_user_id: str
    username: str
    name: str
    quota_total: int | None = None
    image_processing_seconds: float | None = None
    video_processing_seconds: float | None = None
    carousel_processing_seconds: float | None = None
    publish_log: list[datetime] = field(default_factory=list)
    container_log: list[datetime] = field(default_factory=list)
    meter: CallMeter = field(default_factory=CallMeter)

    def public(self) -> dict[str, Any]:
        return {
            "ig_user_id": self.ig_user_id,
            "username": self.username,
            "quota_total": self.quota_total,
            "image_processing_seconds": self.image_processing_seconds,
            "video_processing_seconds": self.video_processing_seconds,
            "carousel_processing_seconds": self.carousel_processing_seconds,
        }


@dataclass
class Container:
    id: str
    ig_user_id: str
    kind: Kind
    is_carousel_item: bool
    created_at: datetime
    ready_at: datetime
    options: dict[str, Any]
    media_url: str | None = None
    media_info: MediaInfo | None = None
    cover_info: MediaInfo | None = None
    children: list[str] = field(default_factory=list)
    # A video is downloaded after the create call returns; until then the container cannot finish.
    processing: bool = False
    error_subcode: int | None = None
    stuck: bool = False
    published_media_id: str | None = None
    published_at: datetime | None = None
    task: asyncio.Task[None] | None = None


@dataclass
class Comment:
    id: str
    media_id: str
    text: str
    username: str
    created_at: datetime


@dataclass
class Media:
    id: str
    ig_user_id: str
    container_id: str
    media_type: str
    media_product_type: str
    shortcode: str
    permalink: str | None
    published_at: datetime
    caption: str | None
    media_url: str | None
    options: dict[str, Any]
    media_info: MediaInfo | None = None
    children: list[str] = field(default_factory=list)
    parent_id: str | None = None
    comments: list[str] = field(default_factory=list)
    deleted_at: datetime | None = None


def shortcode_for(media_id: str) -> str:
    return base64.urlsafe_b64encode(int(media_id).to_bytes(8, "big")).decode().rstrip("=")


class SandboxState:
    """All mutable sandbox state. One instance per app; mutated only on the app's event loop."""

    def __init__(self, config: SandboxConfig) -> None:
        self.initial_config = config.model_copy()
        self.config = config.model_copy()
        self.clock = Clock()
        self.faults = FaultBook()
        self.outages = OutageBook()
        self.calls = CallLog()
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[str, Token] = {}
        self.containers: dict[str, Container] = {}
        self.media: dict[str, Media] = {}
        self.comments: dict[str, Comment] = {}
        # Each account's audience (insights); an account without one has the default profile.
        self.audiences: dict[str, AudienceProfile] = {}
        # The downloader Meta would use to fetch image_url/video_url; the app's lifespan owns it.
        self.http: httpx.AsyncClient | None = None
        # Ids keep counting across resets so a stale id from an earlier test never names a new object, and start
        # from the wall clock so that they stay unique across restarts too, as Meta's are: a database that outlives
        # the sandbox (the run command's .data/) must never meet a media id twice.
        epoch = time.time_ns() // 1_000_000 * 1000
        self._container_ids = itertools.count(17880000000000001 + epoch)
        self._media_ids = itertools.count(17900000000000001 + epoch)
        self._comment_ids = itertools.count(17850000000000001 + epoch)
        self._account_ids = itertools.count(17841400000001001)
        self.seed()

    def seed(self) -> None:
        if self.config.demo_account:
            self.add_account(
                ig_user_id=DEMO_IG_USER_ID,
                username=DEMO_USERNAME,
                access_token=DEMO_ACCESS_TOKEN,
                expires_in=None,
            )

    def reset(self) -> None:
        for container in self.containers.values():
            if container.task is not None:
                container.task.cancel()
        self.config = self.initial_config.model_copy()
        self.clock.reset()
        self.faults.clear()
        self.outages.clear()
        self.calls.clear()
        self.accounts.clear()
        self.tokens.clear()
        self.containers.clear()
        self.media.clear()
        self.comments.clear()
        self.audiences.clear()
        self.seed()

    # Accounts and tokens

    def add_account(
        self,
        *,
        username: str,
        ig_user_id: str | None = None,
        access_token: str | None = None,
        expires_in: timedelta | None = None,
        quota_total: int | None = None,
        image_processing_seconds: float | None = None,
        video_processing_seconds: float | None = None,
        carousel_processing_seconds: float | None = None,
    ) -> tuple[Account, Token]:
        account_id = ig_user_id or str(next(self._account_ids))
        if account_id in self.accounts:
            raise ValueError(f"account {account_id} exists")
        account = Account(
            ig_user_id=account_id,
            username=username,
            name=username.replace("_", " ").title(),
            quota_total=quota_total,
            image_processing_seconds=image_processing_seconds,
            video_processing_seconds=video_processing_seconds,
            carousel_processing_seconds=carousel_processing_seconds,
        )
        self.accounts[account_id] = account
        return account, self.issue_token(account_id, access_token=access_token, expires_in=expires_in)

    def issue_token(
        self,
        ig_user_id: str,
        *,
        access_token: str | None = None,
        expires_in: timedelta | None = None,
        short_lived: bool = False,
        scopes: list[str] | None = None,
    ) -> Token:
        value = access_token or "IGAA" + secrets.token_urlsafe(24)
        if value in self.tokens:
            raise ValueError("token already issued")
        now = self.clock.now()
        token = Token(
            value, ig_user_id, now, None if expires_in is None else now + expires_in, short_lived=short_lived
        )
        if scopes is not None:
            token.scopes = list(scopes)
        self.tokens[value] = token
        return token

    def token_owner(self, value: str | None) -> str | None:
        """The account a token was issued to, whether or not it is still valid (None for unknown tokens)."""
        token = self.tokens.get(value) if value is not None else None
        return token.ig_user_id if token is not None and token.ig_user_id in self.accounts else None

    def authenticate(self, value: str | None) -> Account:
        """The account a token acts for, or Meta's 104/190 error."""
        if value is None:
            raise missing_token()
        token = self.tokens.get(value)
        if token is None or token.ig_user_id not in self.accounts:
            raise invalid_token()
        if token.revoked:
            raise revoked_token()
        now = self.clock.now()
        if token.expires_at is not None and now >= token.expires_at:
            raise expired_token(token.expires_at, now)
        return self.accounts[token.ig_user_id]

    def require_scope(self, value: str | None, scope: str) -> None:
        """Meta's permission error (403, code 10 or 200-299 as configured) when the token lacks ``scope``."""
        token = self.tokens.get(value) if value is not None else None
        if token is not None and scope not in token.scopes:
            raise permission_denied(self.config.permission_error_code, scope)

    # Ids

    def new_container_id(self) -> str:
        return str(next(self._container_ids))

    def new_media_id(self) -> str:
        return str(next(self._media_ids))

    def new_comment_id(self) -> str:
        return str(next(self._comment_ids))

    # Container state machine

    def processing_delay(self, account: Account, kind: Kind, *, video: bool) -> timedelta:
        if kind is Kind.CAROUSEL:
            seconds, default = account.carousel_processing_seconds, self.config.carousel_processing_seconds
        elif video:
            seconds, default = account.video_processing_seconds, self.config.video_processing_seconds
        else:
            seconds, default = account.image_processing_seconds, self.config.image_processing_seconds
        return timedelta(seconds=default if seconds is None else seconds)

    def status(self, container: Container) -> Status:
        if container.published_media_id is not None:
            return Status.PUBLISHED
        now = self.clock.now()
        if container.error_subcode is not None and not container.processing and now >= container.ready_at:
            return Status.ERROR
        if now >= container.created_at + timedelta(seconds=self.config.container_ttl_seconds):
            return Status.EXPIRED
        if container.kind is Kind.CAROUSEL:
            child_statuses = {self.status(self.containers[child]) for child in container.children}
            if Status.ERROR in child_statuses:
                return Status.ERROR
            if Status.EXPIRED in child_statuses:
                return Status.EXPIRED
            if child_statuses != {Status.FINISHED}:
                return Status.IN_PROGRESS
        if container.stuck or container.processing or now < container.ready_at:
            return Status.IN_PROGRESS
        return Status.FINISHED

    def error_subcode(self, container: Container) -> int | None:
        if container.error_subcode is not None:
            return container.error_subcode
        for child in container.children:
            subcode = self.error_subcode(self.containers[child])
            if subcode is not None:
                return subcode
        return None

    def status_text(self, container: Container, status: Status) -> str:
        # The FINISHED, PUBLISHED and ERROR wordings are observed on the wire; the other two are assumed.
        if status is Status.ERROR:
            return f"Error: Media upload has failed with error code {self.error_subcode(container)}"
        return {
            Status.IN_PROGRESS: "In Progress: Media is still being processed.",
            Status.FINISHED: "Finished: Media has been uploaded and it is ready to be published.",
            Status.PUBLISHED: "Published: Media has been successfully published.",
            Status.EXPIRED: "Expired: Media container has expired.",
        }[status]

    # Publishing

    def quota_total(self, account: Account) -> int:
        return self.config.quota_total if account.quota_total is None else account.quota_total

    def quota_usage(self, account: Account, since: datetime | None = None) -> int:
        now = self.clock.now()
        window_start = now - timedelta(seconds=self.config.quota_duration_seconds)
        start = window_start if since is None else max(since, window_start)
        return sum(1 for published in account.publish_log if start < published <= now)

    def containers_in_window(self, account: Account) -> int:
        now = self.clock.now()
        return sum(1 for created in account.container_log if created > now - timedelta(days=1))

    def publish(self, account: Account, container: Container) -> Media:
        """Commit a publish: new media (and child media for a carousel), quota used, container PUBLISHED."""
        now = self.clock.now()
        media = self._new_media(account, container, now)
        if container.kind is Kind.CAROUSEL:
            for child_id in container.children:
                child = self.containers[child_id]
                child_media = self._new_media(account, child, now, parent_id=media.id)
                media.children.append(child_media.id)
                child.published_media_id = child.published_media_id or child_media.id
                child.published_at = child.published_at or now
        if container.published_media_id is None:
            container.published_media_id = media.id
            container.published_at = now
        account.publish_log.append(now)
        return media

    def _new_media(
        self, account: Account, container: Container, now: datetime, parent_id: str | None = None
    ) -> Media:
        media_id = self.new_media_id()
        shortcode = shortcode_for(media_id)
        media_type, product = {
            Kind.IMAGE: ("IMAGE", "FEED"),
            Kind.VIDEO: ("VIDEO", "FEED"),
            Kind.REELS: ("VIDEO", "REELS"),
            Kind.CAROUSEL: ("CAROUSEL_ALBUM", "FEED"),
            Kind.STORIES: ("VIDEO" if container.options.get("video_url") else "IMAGE", "STORY"),
        }[container.kind]
        host = self.config.permalink_host
        permalink: str | None
        if parent_id is not None:
            permalink = None
        elif container.kind is Kind.REELS:
            permalink = f"{host}/reel/{shortcode}/"
        elif container.kind is Kind.STORIES:
            permalink = f"{host}/stories/{account.username}/{media_id}/"
        else:
            permalink = f"{host}/p/{shortcode}/"
        media = Media(
            id=media_id,
            ig_user_id=account.ig_user_id,
            container_id=container.id,
            media_type=media_type,
            media_product_type=product,
            shortcode=shortcode,
            permalink=permalink,
            published_at=now,
            caption=container.options.get("caption"),
            media_url=container.media_url,
            options=dict(container.options),
            media_info=container.media_info,
            parent_id=parent_id,
        )
        self.media[media_id] = media
        return media
