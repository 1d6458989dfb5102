"""The publishing engine's tables as SQLModel classes: an exact mirror of schema.sql, the production source of truth.

PostgreSQL gets its schema from schema.sql; SQLite (the embedded default) gets it from these classes through
chronogram.db.create_schema. tests/db/test_schema.py compares the two, so a change goes into both files.

Only table definitions and column types live here: no I/O, no API schemas.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NotRequired, TypeVar

from pydantic import SecretStr
from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Double,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel

# typing_extensions: pydantic only accepts its TypedDict before Python 3.12.
from typing_extensions import TypedDict

from chronogram.contracts import ErrorType, MediaKind
from chronogram.enums import (
    AccountEventKind,
    AccountStatus,
    AccountStatusReason,
    DeliveryChannel,
    DeliveryStatus,
    EventKind,
    MetricsCheckpoint,
    NotificationType,
    PostStatus,
    PostType,
    SeriesStatus,
)

if TYPE_CHECKING:
    from chronogram.crypto import TokenCipher

__all__ = [
    "APP_TABLES",
    "AccountEvent",
    "ApiKey",
    "DeliveryAttempt",
    "DeliveryChannel",
    "DeliveryStatus",
    "EventKind",
    "IdempotencyKey",
    "InstagramAccount",
    "MediaAsset",
    "MetricsCheckpoint",
    "NotificationDelivery",
    "NotificationEvent",
    "NotificationPreference",
    "NotificationType",
    "Post",
    "PostEvent",
    "PostMedia",
    "PostMetrics",
    "PostStatus",
    "PostType",
    "PostingSchedule",
    "QueueSlot",
    "ReelOptions",
    "Series",
    "SeriesOccurrence",
    "Template",
    "TextEnum",
    "UTCDateTime",
    "User",
    "UserTag",
    "WebhookEndpoint",
]

# --- Column types ---------------------------------------------------------------------------------------------

_E = TypeVar("_E", bound=StrEnum)


class UTCDateTime(TypeDecorator[datetime]):
    """TIMESTAMPTZ on PostgreSQL; on SQLite, UTC stored without an offset. Always aware in Python, always UTC.

    A naive datetime is refused on the way in: guessing its zone is how a post goes out hours early. SQLite keeps
    UTC only, so that its text timestamps sort in time order and read back unambiguously.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: give an aware instant (tzinfo=UTC)"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TextEnum(TypeDecorator[_E]):
    """A StrEnum stored as TEXT (the CHECK constraint lists the values); rows read back as enum members."""

    impl = Text
    cache_ok = True

    def __init__(self, enum_type: type[_E]) -> None:
        super().__init__()
        self.enum_type = enum_type

    def process_bind_param(self, value: _E | str | None, dialect: Dialect) -> str | None:
        # Raises ValueError for a value outside the enum before the database has to.
        return None if value is None else self.enum_type(value).value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> _E | None:
        return None if value is None else self.enum_type(value)


def _json() -> TypeEngine[Any]:
    # none_as_null: Python None must be SQL NULL (what the nullable columns and their CHECKs mean), not JSON 'null'.
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _id_type() -> TypeEngine[int]:
    # SQLite only auto-assigns ids to a column declared exactly INTEGER PRIMARY KEY (it is 64-bit anyway).
    return BigInteger().with_variant(Integer(), "sqlite")


class UserTag(TypedDict):
    """An entry of Instagram's user_tags: x and y (0..1 from the top left) are required on images only."""

    username: str
    x: NotRequired[float]
    y: NotRequired[float]


class ReelOptions(TypedDict, total=False):
    share_to_feed: bool
    # Either a cover image or a frame of the video; Instagram lets cover_url win when both are sent.
    cover_url: str
    thumb_offset_ms: int
    collaborators: list[str]
    audio_name: str


# --- Column helpers: each call returns a new Column, which is what a table needs ---------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _id() -> Any:
    return Field(default=None, sa_column=Column(_id_type(), Identity(), primary_key=True))


def _column(column: Column[Any], *, in_repr: bool = True) -> Any:
    # Only a nullable column defaults to None; the others stay required in the constructor's signature.
    if column.nullable:
        return Field(default=None, repr=in_repr, sa_column=column)
    return Field(repr=in_repr, sa_column=column)


def _fk(*, nullable: bool = False) -> Any:
    # The foreign key itself is declared once in __table_args__, under the constraint name schema.sql uses.
    return _column(Column(BigInteger(), nullable=nullable))


def _text(*, nullable: bool, in_repr: bool = True) -> Any:
    return _column(Column(Text(), nullable=nullable), in_repr=in_repr)


def _timestamp(*, nullable: bool) -> Any:
    return _column(Column(UTCDateTime(), nullable=nullable))


def _created_at() -> Any:
    return Field(
        default_factory=_utc_now, sa_column=Column(UTCDateTime(), nullable=False, server_default=func.now())
    )


def _updated_at() -> Any:
    return Field(
        default_factory=_utc_now,
        sa_column=Column(UTCDateTime(), nullable=False, server_default=func.now(), onupdate=_utc_now),
    )


def _in_check(column: str, values: type[StrEnum], *, name: str, nullable: bool = False) -> CheckConstraint:
    """The CHECK that schema.sql spells out by hand, generated from the enum so Python cannot drift from it."""
    listed = ", ".join(f"'{member.value}'" for member in values)
    sql = f"{column} IN ({listed})"
    return CheckConstraint(f"{column} IS NULL OR {sql}" if nullable else sql, name=name)


def _hex_sha256_check(column: str) -> str:
    # ltrim(x, chars) is in both PostgreSQL and SQLite, which share no regular-expression operator.
    return f"length({column}) = 64 AND ltrim({column}, '0123456789abcdef') = ''"


_SQLITE = {"sqlite_autoincrement": True}
"""AUTOINCREMENT: never reuse the id of a deleted row (PostgreSQL identities never do); a reused post id would
collide with the Temporal workflow id of the post that had it before."""


# --- Tables ------------------------------------------------------------------------------------------------------


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("email", name="users_email_key"),
        CheckConstraint("email = lower(email) AND length(email) BETWEEN 3 AND 320", name="users_email_check"),
        {
            "comment": "People who schedule posts; every other row belongs to one of them and goes when they go.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    email: str = _text(nullable=False)
    created_at: datetime = _created_at()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("key_hash", name="api_keys_key_hash_key"),
        ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE", name="api_keys_user_id_fkey"),
        CheckConstraint("length(prefix) BETWEEN 4 AND 16", name="api_keys_prefix_check"),
        CheckConstraint(_hex_sha256_check("key_hash"), name="api_keys_key_hash_check"),
        Index("ix_api_keys_user_id", "user_id"),
        {
            "comment": "API keys for the HTTP API, stored only as a sha256 hash; "
            "a revoked key stays for the audit trail.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    user_id: int = _fk()
    name: str | None = _text(nullable=True)
    prefix: str = _text(nullable=False)
    key_hash: str = _text(nullable=False, in_repr=False)
    created_at: datetime = _created_at()
    revoked_at: datetime | None = _timestamp(nullable=True)
    # Recorded at most once a minute (api.crud.users.authenticate). Added after release: chronogram.db.ADDED_COLUMNS.
    last_used_at: datetime | None = _timestamp(nullable=True)


class InstagramAccount(SQLModel, table=True):
    __tablename__ = "instagram_accounts"
    __table_args__ = (
        UniqueConstraint("owner_id", "ig_user_id", name="instagram_accounts_owner_id_ig_user_id_key"),
        UniqueConstraint("owner_id", "id", name="instagram_accounts_owner_id_id_key"),
        ForeignKeyConstraint(
            ["owner_id"], ["users.id"], ondelete="CASCADE", name="instagram_accounts_owner_id_fkey"
        ),
        CheckConstraint(
            "ig_user_id <> '' AND ltrim(ig_user_id, '0123456789') = ''",
            name="instagram_accounts_ig_user_id_check",
        ),
        CheckConstraint("username <> ''", name="instagram_accounts_username_check"),
        CheckConstraint(
            "access_token_ciphertext LIKE 'gAAAAA%'", name="instagram_accounts_access_token_ciphertext_check"
        ),
        {
            "comment": "Instagram professional accounts a user connected, "
            "with their access token encrypted at rest.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    owner_id: int = _fk()
    ig_user_id: str = _text(nullable=False)
    username: str = _text(nullable=False)
    access_token_ciphertext: str = _text(nullable=False, in_repr=False)
    token_expires_at: datetime | None = _timestamp(nullable=True)
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()
    disconnecting_since: datetime | None = _timestamp(nullable=True)
    # Added after release: chronogram.db.ADDED_COLUMNS. Only ACTIVE and NEEDS_RECONNECT are stored.
    token_issued_at: datetime | None = _timestamp(nullable=True)
    status: AccountStatus = Field(
        default=AccountStatus.ACTIVE,
        sa_column=Column(TextEnum(AccountStatus), nullable=False, server_default=AccountStatus.ACTIVE.value),
    )
    status_reason: AccountStatusReason | None = _column(Column(TextEnum(AccountStatusReason), nullable=True))
    status_detail: str | None = _text(nullable=True)
    status_changed_at: datetime | None = _timestamp(nullable=True)
    # Added after release (chronogram.db.ADDED_COLUMNS). None: DEFAULT_MAX_LATENESS_SECONDS.
    max_lateness_seconds: int | None = _column(Column(Integer(), nullable=True))

    def set_access_token(self, cipher: TokenCipher, token: str | SecretStr) -> None:
        self.access_token_ciphertext = cipher.encrypt(token)

    def access_token(self, cipher: TokenCipher) -> SecretStr:
        return cipher.decrypt(self.access_token_ciphertext)


class AccountEvent(SQLModel, table=True):
    __tablename__ = "account_events"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="account_events_dedupe_key_key"),
        ForeignKeyConstraint(
            ["account_id"],
            ["instagram_accounts.id"],
            ondelete="CASCADE",
            name="account_events_account_id_fkey",
        ),
        _in_check("kind", AccountEventKind, name="account_events_kind_check"),
        _in_check("reason", AccountStatusReason, nullable=True, name="account_events_reason_check"),
        Index("ix_account_events_account_id_occurred_at_id", "account_id", "occurred_at", "id"),
        {
            "comment": "Append-only history of an account's connection: connects, token exchanges and refreshes, "
            "and why it needs reconnecting.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    account_id: int = _fk()
    occurred_at: datetime = _created_at()
    kind: AccountEventKind = _column(Column(TextEnum(AccountEventKind), nullable=False))
    message: str = _text(nullable=False)
    reason: AccountStatusReason | None = _column(Column(TextEnum(AccountStatusReason), nullable=True))
    token_expires_at: datetime | None = _timestamp(nullable=True)
    dedupe_key: str | None = _text(nullable=True)


class MediaAsset(SQLModel, table=True):
    __tablename__ = "media_assets"
    __table_args__ = (
        UniqueConstraint("object_key", name="media_assets_object_key_key"),
        ForeignKeyConstraint(
            ["owner_id"], ["users.id"], ondelete="CASCADE", name="media_assets_owner_id_fkey"
        ),
        CheckConstraint("object_key <> ''", name="media_assets_object_key_check"),
        CheckConstraint(
            "content_type LIKE 'image/%' OR content_type LIKE 'video/%'",
            name="media_assets_content_type_check",
        ),
        CheckConstraint("size_bytes > 0", name="media_assets_size_bytes_check"),
        CheckConstraint(_hex_sha256_check("sha256"), name="media_assets_sha256_check"),
        CheckConstraint(
            "(width IS NULL AND height IS NULL) OR (width > 0 AND height > 0)",
            name="media_assets_dimensions_check",
        ),
        CheckConstraint(
            "duration_ms IS NULL OR (duration_ms > 0 AND content_type LIKE 'video/%')",
            name="media_assets_duration_ms_check",
        ),
        Index("ix_media_assets_owner_id", "owner_id"),
        {
            "comment": "Uploaded images and videos in object storage, with what was measured when they arrived.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    owner_id: int = _fk()
    object_key: str = _text(nullable=False)
    content_type: str = _text(nullable=False)
    size_bytes: int = _column(Column(BigInteger(), nullable=False))
    sha256: str = _text(nullable=False)
    width: int | None = _column(Column(Integer(), nullable=True))
    height: int | None = _column(Column(Integer(), nullable=True))
    duration_ms: int | None = _column(Column(Integer(), nullable=True))
    created_at: datetime = _created_at()
    # Measured by the video probe (chronogram.video_probe); null for images and for videos uploaded before it.
    rotation: int | None = _column(Column(Integer(), nullable=True))
    video_codec: str | None = _text(nullable=True)
    audio_codec: str | None = _text(nullable=True)
    frame_rate: float | None = _column(Column(Double(), nullable=True))
    has_audio: bool | None = _column(Column(Boolean(), nullable=True))
    # The small JPEG beside the original (a video's thumbnail, an image's preview); null when none was made.
    preview_key: str | None = _text(nullable=True)

    @property
    def kind(self) -> MediaKind:
        return MediaKind.VIDEO if self.content_type.startswith("video/") else MediaKind.IMAGE

    @property
    def is_video(self) -> bool:
        return self.kind is MediaKind.VIDEO


class Template(SQLModel, table=True):
    """A caption template (chronogram.caption_templates renders its body and first comment)."""

    __tablename__ = "templates"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="templates_owner_id_name_key"),
        ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE", name="templates_owner_id_fkey"),
        CheckConstraint("length(name) BETWEEN 1 AND 100", name="templates_name_check"),
        CheckConstraint(
            "category IS NULL OR length(category) BETWEEN 1 AND 100", name="templates_category_check"
        ),
        CheckConstraint("length(body) BETWEEN 1 AND 10000", name="templates_body_check"),
        CheckConstraint("use_count >= 0", name="templates_use_count_check"),
        {
            "comment": "Caption templates with {{variables}}, suggested hashtags and mentions, and how often and "
            "when each was last used.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    owner_id: int = _fk()
    name: str = _text(nullable=False)
    category: str | None = _text(nullable=True)
    body: str = _text(nullable=False)
    hashtags: list[str] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False, server_default=text("'[]'"))
    )
    mentions: list[str] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False, server_default=text("'[]'"))
    )
    first_comment: str | None = _text(nullable=True)
    use_count: int = Field(
        default=0, sa_column=Column(BigInteger(), nullable=False, server_default=text("0"))
    )
    last_used_at: datetime | None = _timestamp(nullable=True)
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()


class Post(SQLModel, table=True):
    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("ig_container_id", name="posts_ig_container_id_key"),
        UniqueConstraint("ig_media_id", name="posts_ig_media_id_key"),
        ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE", name="posts_owner_id_fkey"),
        ForeignKeyConstraint(
            ["owner_id", "account_id"],
            ["instagram_accounts.owner_id", "instagram_accounts.id"],
            ondelete="NO ACTION",
            deferrable=True,
            initially="DEFERRED",
            name="posts_owner_id_account_id_fkey",
        ),
        _in_check("type", PostType, name="posts_type_check"),
        _in_check("status", PostStatus, name="posts_status_check"),
        CheckConstraint("caption IS NULL OR length(caption) <= 2200", name="posts_caption_check"),
        CheckConstraint("alt_text IS NULL OR length(alt_text) <= 1000", name="posts_alt_text_check"),
        CheckConstraint("reel_options IS NULL OR type = 'REELS'", name="posts_reel_options_check"),
        CheckConstraint(
            "(status = 'published') = (published_at IS NOT NULL)", name="posts_published_at_check"
        ),
        Index("ix_posts_account_id_publish_at_id", "account_id", "publish_at", "id"),
        Index("ix_posts_owner_id_status_publish_at_id", "owner_id", "status", "publish_at", "id"),
        {
            "comment": "Scheduled Instagram posts: what to publish, where, when, and how far publishing got.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    owner_id: int = _fk()
    account_id: int = _fk()
    type: PostType = _column(Column(TextEnum(PostType), nullable=False))
    caption: str | None = _text(nullable=True)
    first_comment: str | None = _text(nullable=True)
    ig_first_comment_id: str | None = _text(nullable=True)
    location_id: str | None = _text(nullable=True)
    user_tags: list[UserTag] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False, server_default=text("'[]'"))
    )
    alt_text: str | None = _text(nullable=True)
    reel_options: ReelOptions | None = _column(Column(_json(), nullable=True))
    publish_at: datetime = _column(Column(UTCDateTime(), nullable=False))
    status: PostStatus = Field(
        default=PostStatus.SCHEDULED,
        sa_column=Column(TextEnum(PostStatus), nullable=False, server_default=PostStatus.SCHEDULED.value),
    )
    ig_container_id: str | None = _text(nullable=True)
    ig_media_id: str | None = _text(nullable=True)
    permalink: str | None = _text(nullable=True)
    error_code: ErrorType | None = _column(Column(TextEnum(ErrorType), nullable=True))
    error_message: str | None = _text(nullable=True)
    published_at: datetime | None = _timestamp(nullable=True)
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()
    # Added after release (chronogram.db.ADDED_COLUMNS). None: the account's setting.
    max_lateness_seconds: int | None = _column(Column(Integer(), nullable=True))
    # "<run id>/<attempt>" of the latest media_publish call sent (activities.instagram.publish).
    last_publish_call: str | None = _text(nullable=True)
    # The template the caption was rendered from (the caption stays as rendered). Not a foreign key, so that it could
    # be added to SQLite databases made before it: deleting a template clears it (api.crud.templates).
    template_id: int | None = _fk(nullable=True)
    # How many first-comment calls were sent (counted just before each, activities.instagram.post_first_comment):
    # 0, and the comment is created without looking for it first. None in rows made before the count: unknown.
    first_comment_calls: int | None = Field(default=0, sa_column=Column(Integer(), nullable=True))


class PostMedia(SQLModel, table=True):
    __tablename__ = "post_media"
    __table_args__ = (
        UniqueConstraint("ig_container_id", name="post_media_ig_container_id_key"),
        ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE", name="post_media_post_id_fkey"),
        ForeignKeyConstraint(
            ["media_id"],
            ["media_assets.id"],
            ondelete="NO ACTION",
            deferrable=True,
            initially="DEFERRED",
            name="post_media_media_id_fkey",
        ),
        CheckConstraint("position BETWEEN 0 AND 9", name="post_media_position_check"),
        CheckConstraint("alt_text IS NULL OR length(alt_text) <= 1000", name="post_media_alt_text_check"),
        Index("ix_post_media_media_id", "media_id"),
        {"comment": "The media of a post in publishing order, with per-item Instagram carousel data."},
    )

    post_id: int = _column(Column(BigInteger(), primary_key=True, autoincrement=False))
    position: int = _column(Column(SmallInteger(), primary_key=True, autoincrement=False))
    media_id: int = _fk()
    ig_container_id: str | None = _text(nullable=True)
    alt_text: str | None = _text(nullable=True)
    user_tags: list[UserTag] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False, server_default=text("'[]'"))
    )


class PostEvent(SQLModel, table=True):
    __tablename__ = "post_events"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="post_events_dedupe_key_key"),
        ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE", name="post_events_post_id_fkey"),
        _in_check("kind", EventKind, name="post_events_kind_check"),
        _in_check("from_status", PostStatus, nullable=True, name="post_events_from_status_check"),
        _in_check("to_status", PostStatus, nullable=True, name="post_events_to_status_check"),
        CheckConstraint(
            "kind = 'transition' OR (from_status IS NULL AND to_status IS NULL)",
            name="post_events_transition_check",
        ),
        CheckConstraint("attempt IS NULL OR attempt >= 1", name="post_events_attempt_check"),
        CheckConstraint(
            "kind <> 'error' OR error_code IS NOT NULL OR error_message IS NOT NULL",
            name="post_events_error_check",
        ),
        Index("ix_post_events_post_id_occurred_at_id", "post_id", "occurred_at", "id"),
        {
            "comment": "Append-only audit of every status transition, publishing attempt and error of a post.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    post_id: int = _fk()
    occurred_at: datetime = _created_at()
    kind: EventKind = _column(Column(TextEnum(EventKind), nullable=False))
    from_status: PostStatus | None = _column(Column(TextEnum(PostStatus), nullable=True))
    to_status: PostStatus | None = _column(Column(TextEnum(PostStatus), nullable=True))
    attempt: int | None = _column(Column(Integer(), nullable=True))
    error_code: str | None = _text(nullable=True)
    error_message: str | None = _text(nullable=True)
    detail: dict[str, Any] | None = _column(Column(_json(), nullable=True))
    dedupe_key: str | None = _text(nullable=True)


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="idempotency_keys_user_id_fkey"
        ),
        ForeignKeyConstraint(
            ["post_id"], ["posts.id"], ondelete="CASCADE", name="idempotency_keys_post_id_fkey"
        ),
        CheckConstraint("length(key) BETWEEN 1 AND 255", name="idempotency_keys_key_check"),
        CheckConstraint(
            _hex_sha256_check("request_fingerprint"), name="idempotency_keys_request_fingerprint_check"
        ),
        Index("ix_idempotency_keys_post_id", "post_id"),
        Index("ix_idempotency_keys_created_at", "created_at"),
        {
            "comment": "Idempotency-Key values of POST /v1/posts per user, "
            "so that a retried request returns the same post."
        },
    )

    user_id: int = _column(Column(BigInteger(), primary_key=True, autoincrement=False))
    key: str = _column(Column(Text(), primary_key=True))
    request_fingerprint: str = _text(nullable=False)
    post_id: int | None = _fk(nullable=True)
    created_at: datetime = _created_at()


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        ForeignKeyConstraint(
            ["owner_id"], ["users.id"], ondelete="CASCADE", name="webhook_endpoints_owner_id_fkey"
        ),
        CheckConstraint("length(url) BETWEEN 8 AND 2048", name="webhook_endpoints_url_check"),
        CheckConstraint(
            "description IS NULL OR length(description) <= 500", name="webhook_endpoints_description_check"
        ),
        CheckConstraint("secret_ciphertext LIKE 'gAAAAA%'", name="webhook_endpoints_secret_ciphertext_check"),
        CheckConstraint(
            "(previous_secret_ciphertext IS NULL) = (previous_secret_expires_at IS NULL)",
            name="webhook_endpoints_previous_secret_check",
        ),
        Index("ix_webhook_endpoints_owner_id", "owner_id"),
        {
            "comment": "URLs a user has events sent to, each with its signing secret encrypted at rest.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    owner_id: int = _fk()
    url: str = _text(nullable=False)
    event_types: list[str] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False, server_default=text("'[]'"))
    )
    enabled: bool = Field(
        default=True, sa_column=Column(Boolean(), nullable=False, server_default=text("TRUE"))
    )
    description: str | None = _text(nullable=True)
    secret_ciphertext: str = _text(nullable=False, in_repr=False)
    previous_secret_ciphertext: str | None = _text(nullable=True, in_repr=False)
    previous_secret_expires_at: datetime | None = _timestamp(nullable=True)
    disabled_reason: str | None = _text(nullable=True)
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()


class NotificationEvent(SQLModel, table=True):
    __tablename__ = "notification_events"
    __table_args__ = (
        UniqueConstraint("event_id", name="notification_events_event_id_key"),
        UniqueConstraint("post_id", "post_sequence", name="notification_events_post_id_post_sequence_key"),
        ForeignKeyConstraint(
            ["owner_id"], ["users.id"], ondelete="CASCADE", name="notification_events_owner_id_fkey"
        ),
        ForeignKeyConstraint(
            ["post_id"], ["posts.id"], ondelete="CASCADE", name="notification_events_post_id_fkey"
        ),
        _in_check("type", NotificationType, name="notification_events_type_check"),
        CheckConstraint(
            "(post_id IS NULL) = (post_sequence IS NULL) AND (post_sequence IS NULL OR post_sequence >= 1)",
            name="notification_events_post_sequence_check",
        ),
        Index("ix_notification_events_dispatched_at_id", "dispatched_at", "id"),
        Index("ix_notification_events_owner_id", "owner_id"),
        {
            "comment": "The transactional outbox: every event, written in the transaction of the change it "
            "reports.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    event_id: str = _text(nullable=False)
    owner_id: int = _fk()
    type: NotificationType = _column(Column(TextEnum(NotificationType), nullable=False))
    post_id: int | None = _fk(nullable=True)
    post_sequence: int | None = _column(Column(Integer(), nullable=True))
    occurred_at: datetime = _column(Column(UTCDateTime(), nullable=False))
    payload: dict[str, Any] = _column(Column(_json(), nullable=False))
    dispatched_at: datetime | None = _timestamp(nullable=True)


class NotificationDelivery(SQLModel, table=True):
    __tablename__ = "notification_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["event_id"],
            ["notification_events.id"],
            ondelete="CASCADE",
            name="notification_deliveries_event_id_fkey",
        ),
        ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            ondelete="CASCADE",
            name="notification_deliveries_endpoint_id_fkey",
        ),
        _in_check("channel", DeliveryChannel, name="notification_deliveries_channel_check"),
        _in_check("status", DeliveryStatus, name="notification_deliveries_status_check"),
        CheckConstraint(
            "(channel = 'webhook') = (endpoint_id IS NOT NULL)", name="notification_deliveries_endpoint_check"
        ),
        CheckConstraint("attempts >= 0", name="notification_deliveries_attempts_check"),
        Index("ix_notification_deliveries_endpoint_id_status_id", "endpoint_id", "status", "id"),
        Index("ix_notification_deliveries_event_id", "event_id"),
        {
            "comment": "One event to one webhook endpoint or one mailbox, and its status; a post's events are "
            "delivered in order.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    event_id: int = _fk()
    channel: DeliveryChannel = _column(Column(TextEnum(DeliveryChannel), nullable=False))
    endpoint_id: int | None = _fk(nullable=True)
    status: DeliveryStatus = Field(
        default=DeliveryStatus.PENDING,
        sa_column=Column(
            TextEnum(DeliveryStatus), nullable=False, server_default=DeliveryStatus.PENDING.value
        ),
    )
    attempts: int = Field(default=0, sa_column=Column(Integer(), nullable=False, server_default=text("0")))
    next_retry_at: datetime | None = _timestamp(nullable=True)
    created_at: datetime = _created_at()
    finished_at: datetime | None = _timestamp(nullable=True)


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["delivery_id"],
            ["notification_deliveries.id"],
            ondelete="CASCADE",
            name="delivery_attempts_delivery_id_fkey",
        ),
        CheckConstraint("latency_ms IS NULL OR latency_ms >= 0", name="delivery_attempts_latency_ms_check"),
        Index("ix_delivery_attempts_delivery_id", "delivery_id"),
        {
            "comment": "Every attempt of every delivery, for the delivery log "
            "(GET /v1/webhooks/{id}/deliveries).",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    delivery_id: int = _fk()
    attempted_at: datetime = _created_at()
    status_code: int | None = _column(Column(Integer(), nullable=True))
    latency_ms: int | None = _column(Column(Integer(), nullable=True))
    error: str | None = _text(nullable=True)
    next_retry_at: datetime | None = _timestamp(nullable=True)


class NotificationPreference(SQLModel, table=True):
    __tablename__ = "notification_preferences"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="notification_preferences_user_id_fkey"
        ),
        {"comment": "Which events each user is emailed about."},
    )

    user_id: int = _column(Column(BigInteger(), primary_key=True, autoincrement=False))
    email_event_types: list[str] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False, server_default=text("'[]'"))
    )
    updated_at: datetime = _updated_at()


class PostMetrics(SQLModel, table=True):
    __tablename__ = "post_metrics"
    __table_args__ = (
        ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE", name="post_metrics_post_id_fkey"),
        _in_check("checkpoint", MetricsCheckpoint, name="post_metrics_checkpoint_check"),
        CheckConstraint(
            "error_code IS NULL OR total_interactions IS NULL", name="post_metrics_error_or_values_check"
        ),
        {
            "comment": "A published post's insights as read at +1 h, +24 h and +7 d; a reading that failed keeps "
            "its error instead of values."
        },
    )

    post_id: int = _column(Column(BigInteger(), primary_key=True, autoincrement=False))
    checkpoint: MetricsCheckpoint = _column(
        Column(TextEnum(MetricsCheckpoint), primary_key=True, autoincrement=False)
    )
    captured_at: datetime = _timestamp(nullable=False)
    reach: int | None = _column(Column(Integer(), nullable=True))
    likes: int | None = _column(Column(Integer(), nullable=True))
    comments: int | None = _column(Column(Integer(), nullable=True))
    saved: int | None = _column(Column(Integer(), nullable=True))
    shares: int | None = _column(Column(Integer(), nullable=True))
    views: int | None = _column(Column(Integer(), nullable=True))
    total_interactions: int | None = _column(Column(Integer(), nullable=True))
    error_code: str | None = _text(nullable=True)
    error_message: str | None = _text(nullable=True)


class PostingSchedule(SQLModel, table=True):
    __tablename__ = "posting_schedules"
    __table_args__ = (
        ForeignKeyConstraint(
            ["owner_id", "account_id"],
            ["instagram_accounts.owner_id", "instagram_accounts.id"],
            ondelete="CASCADE",
            name="posting_schedules_owner_id_account_id_fkey",
        ),
        CheckConstraint("length(time_zone) BETWEEN 1 AND 64", name="posting_schedules_time_zone_check"),
        {"comment": "Per account, the weekly wall-clock slots that POST /v1/posts with queue=true fills."},
    )

    account_id: int = _column(Column(BigInteger(), primary_key=True, autoincrement=False))
    owner_id: int = _fk()
    time_zone: str = _text(nullable=False)
    # [{"weekday": 0..6 (Monday 0), "time": "HH:MM"}], sorted (chronogram.posting_schedule).
    slots: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False, server_default=text("'[]'"))
    )
    updated_at: datetime = _updated_at()


class QueueSlot(SQLModel, table=True):
    __tablename__ = "queue_slots"
    __table_args__ = (
        ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE", name="queue_slots_post_id_fkey"),
        Index("ix_queue_slots_post_id", "post_id"),
        {
            "comment": "The queue slot each queued post took: the primary key is what stops two posts from "
            "taking the same slot at once."
        },
    )

    account_id: int = _column(Column(BigInteger(), primary_key=True, autoincrement=False))
    slot_at: datetime = _column(Column(UTCDateTime(), primary_key=True))
    post_id: int = _fk()


class Series(SQLModel, table=True):
    __tablename__ = "series"
    __table_args__ = (
        ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE", name="series_owner_id_fkey"),
        ForeignKeyConstraint(
            ["owner_id", "account_id"],
            ["instagram_accounts.owner_id", "instagram_accounts.id"],
            ondelete="CASCADE",
            name="series_owner_id_account_id_fkey",
        ),
        _in_check("type", PostType, name="series_type_check"),
        _in_check("status", SeriesStatus, name="series_status_check"),
        CheckConstraint("caption IS NULL OR length(caption) <= 2200", name="series_caption_check"),
        CheckConstraint("length(rule) BETWEEN 1 AND 500", name="series_rule_check"),
        CheckConstraint("length(starts_at) = 16", name="series_starts_at_check"),
        CheckConstraint("length(time_zone) BETWEEN 1 AND 64", name="series_time_zone_check"),
        Index("ix_series_owner_id_id", "owner_id", "id"),
        {
            "comment": "Recurring posts: content, an RRULE from a local start in a time zone; its workflow "
            "creates the occurrences as posts a bounded horizon ahead.",
            **_SQLITE,
        },
    )

    id: int | None = _id()
    owner_id: int = _fk()
    account_id: int = _fk()
    type: PostType = _column(Column(TextEnum(PostType), nullable=False))
    media_ids: list[int] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False, server_default=text("'[]'"))
    )
    caption: str | None = _text(nullable=True)
    first_comment: str | None = _text(nullable=True)
    rule: str = _text(nullable=False)
    # The rule's first local time, "YYYY-MM-DDTHH:MM" (a wall-clock time: no offset).
    starts_at: str = _text(nullable=False)
    time_zone: str = _text(nullable=False)
    status: SeriesStatus = Field(
        default=SeriesStatus.ACTIVE,
        sa_column=Column(TextEnum(SeriesStatus), nullable=False, server_default=SeriesStatus.ACTIVE.value),
    )
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()


class SeriesOccurrence(SQLModel, table=True):
    __tablename__ = "series_occurrences"
    __table_args__ = (
        ForeignKeyConstraint(
            ["series_id"], ["series.id"], ondelete="CASCADE", name="series_occurrences_series_id_fkey"
        ),
        ForeignKeyConstraint(
            ["post_id"], ["posts.id"], ondelete="CASCADE", name="series_occurrences_post_id_fkey"
        ),
        CheckConstraint("length(occurrence_key) = 16", name="series_occurrences_occurrence_key_check"),
        CheckConstraint("(post_id IS NULL) <> (problem IS NULL)", name="series_occurrences_post_id_check"),
        Index("ix_series_occurrences_post_id", "post_id"),
        {
            "comment": "One row per occurrence of a series that was acted on: the post created for it, or why "
            "none was; the key (its local time) makes creating it idempotent."
        },
    )

    series_id: int = _column(Column(BigInteger(), primary_key=True, autoincrement=False))
    # The occurrence's local time, "YYYY-MM-DDTHH:MM" (chronogram.recurrence.Occurrence.key).
    occurrence_key: str = _column(Column(Text(), primary_key=True))
    post_id: int | None = _fk(nullable=True)
    # Why no post was created (e.g. a media was deleted, a rule refuses it).
    problem: str | None = _text(nullable=True)
    created_at: datetime = _created_at()


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model, for statements that skip the ORM."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


# PostgreSQL gets the same trigger from schema.sql.
event.listen(
    table_of(PostEvent),
    "after_create",
    DDL(  # type: ignore[no-untyped-call]
        "CREATE TRIGGER IF NOT EXISTS post_events_append_only BEFORE UPDATE ON post_events "
        "BEGIN SELECT RAISE(ABORT, 'post_events is append-only: UPDATE is not allowed'); END"
    ).execute_if(dialect="sqlite"),
)

APP_TABLES: Sequence[Table] = tuple(
    table_of(model)
    for model in (
        User,
        ApiKey,
        InstagramAccount,
        AccountEvent,
        MediaAsset,
        Template,
        Post,
        PostMedia,
        PostEvent,
        IdempotencyKey,
        WebhookEndpoint,
        NotificationEvent,
        NotificationDelivery,
        DeliveryAttempt,
        NotificationPreference,
        PostMetrics,
        PostingSchedule,
        QueueSlot,
        Series,
        SeriesOccurrence,
    )
)
"""Exactly the tables schema.sql creates, in dependency order (SQLModel.metadata may hold others, e.g. tests')."""
