"""The one place configuration is read: environment variables prefixed CHRONOGRAM_, or a .env file."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data"


class Settings(BaseSettings):
    """Every setting has an embedded default, so a fresh clone runs with no configuration at all."""

    model_config = SettingsConfigDict(env_prefix="CHRONOGRAM_", env_file=".env", extra="ignore")

    # Temporal
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"

    # Application database: SQLite file by default, PostgreSQL (postgresql+psycopg://...) in production.
    database_url: str = f"sqlite:///{DATA_DIR / 'chronogram.db'}"

    # Object storage (MinIO locally, any S3 in production)
    s3_endpoint: str = "localhost:9000"
    s3_access_key: str = "chronogram"
    s3_secret_key: SecretStr = SecretStr("chronogram-dev-secret")
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    media_bucket: str = "chronogram-media"

    # Fernet key(s) encrypting Instagram access tokens at rest (chronogram.crypto). Comma-separated to rotate: the
    # first encrypts, every one decrypts. Empty means development only: a key is generated once into
    # .data/token.key. Production must set CHRONOGRAM_TOKEN_ENCRYPTION_KEY, and keep it: tokens die with the key.
    token_encryption_key: SecretStr = SecretStr("")

    # Instagram Graph API: the local sandbox by default, https://graph.facebook.com in production.
    graph_api_base_url: str = "http://localhost:8900"
    graph_api_version: str = "v25.0"
    graph_api_timeout_seconds: float = 30.0
    # media_publish only: a publish that times out has an unknown outcome, so it is given longer than reads.
    graph_api_publish_timeout_seconds: float = 90.0

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # JSON bodies are small; anything bigger is a client bug or an attack, refused before it is read.
    api_max_json_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Uploads are streamed to a temporary file and cut off at these sizes (Instagram's own limits by default).
    api_max_image_upload_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    api_max_video_upload_bytes: int = Field(default=300 * 1024 * 1024, ge=1)
    api_max_schedule_horizon_days: int = Field(default=180, ge=1)
    # A publish_at this far in the past still means "now": the client's clock and the request's flight time.
    api_publish_at_past_tolerance_seconds: float = Field(default=60.0, ge=0)
    # GET /v1/posts/{id} asks the post's workflow for its live state; without an answer in time it shows the row.
    api_workflow_query_timeout_seconds: float = Field(default=3.0, gt=0)
    # Posts recorded but whose workflow start was lost (crash, Temporal down) are started by a background pass
    # at start-up and then every interval; 0 runs only the start-up pass. Younger posts are left to the request
    # that is still starting them.
    api_reconcile_interval_seconds: float = Field(default=30.0, ge=0)
    api_reconcile_grace_seconds: float = Field(default=10.0, ge=0)
    # How long a request waits for a workflow run to end: DELETE /v1/accounts/{id} for its cancelled posts,
    # POST /v1/posts/{id}/retry for the failed run.
    api_workflow_wait_seconds: float = Field(default=15.0, gt=0)
    # API keys a user may hold at once (not revoked); POST /v1/keys answers 409 beyond. The admin command's keys
    # count, but it may make more.
    api_max_active_keys_per_user: int = Field(default=20, ge=1)

    # Worker tuning
    worker_max_concurrent_activities: int = Field(default=100, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
    # Off by default: the sandbox doubles the memory and CPU of every cached workflow (bench/README.md), and the
    # workflow code runs sandboxed in the test suites, where a non-deterministic call is caught before it ships.
    worker_workflow_sandbox: bool = False
    worker_graceful_shutdown: timedelta = timedelta(seconds=30)
    # How long a workflow task waits for the worker that ran the workflow last (its sticky queue) before any worker
    # may take it: a killed worker's posts resume elsewhere after this, not after the SDK's 10 s.
    worker_sticky_queue_timeout: timedelta = timedelta(seconds=2)

    # Publishing: how late outages may make a post whose account and post set no max lateness of their own.
    default_max_lateness_seconds: int = Field(default=24 * 3600, ge=0)


@lru_cache
def get_settings() -> Settings:
    return Settings()
