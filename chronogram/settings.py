"""The one place configuration is read: environment variables prefixed CHRONOGRAM_, or a .env file."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data"


def _seconds_or_iso(value: Any) -> Any:
    """A duration from the environment: a plain number is seconds (``15``, ``2.5``), else ISO 8601 (``PT15S``).
    Pydantic alone reads a string of digits as neither."""
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


# A duration setting: seconds or ISO 8601.
Duration = Annotated[timedelta, BeforeValidator(_seconds_or_iso)]


class LogFormat(StrEnum):
    TEXT = "text"  # readable lines, for a terminal (make dev)
    JSON = "json"  # one JSON object per line, for a log pipeline (production)


class WorkerRole(StrEnum):
    """What a worker process runs (``worker_roles``)."""

    POSTS = (
        "posts"  # the publishing workflows and activities (task queues chronogram-posts, chronogram-publish)
    )
    NOTIFICATIONS = "notifications"  # webhook and email delivery, and the outbox's dispatcher


class GraphLogin(StrEnum):
    """How the accounts' tokens were obtained, which decides how they are inspected, exchanged and refreshed."""

    # Business Login for Instagram (graph.instagram.com): 60-day tokens, exchanged with ig_exchange_token and
    # refreshed with refresh_access_token.
    INSTAGRAM = "instagram"
    # Facebook Login (graph.facebook.com): inspected with debug_token, exchanged with fb_exchange_token; a
    # long-lived user token cannot be refreshed by the API (the user logs in again), Page tokens do not expire.
    FACEBOOK = "facebook"


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
    # Which login issued the tokens; unset: Facebook Login on graph.facebook.com, Instagram Login elsewhere.
    graph_login: GraphLogin | None = None
    # The Meta app's id and secret: exchanging short-lived tokens and debug_token need them. Without them, tokens
    # are stored as given and their expiry is learnt from the first refresh.
    meta_app_id: str = ""
    meta_app_secret: SecretStr = SecretStr("")
    # A long-lived token is refreshed this long before it expires (a refresh that fails is retried until then),
    # and never before it is token_refresh_min_age old (Meta refuses younger tokens). Seconds or ISO 8601.
    token_refresh_lead: Duration = Field(default=timedelta(days=7), gt=timedelta(0))
    token_refresh_min_age: Duration = Field(default=timedelta(hours=24), ge=timedelta(0))
    # A circuit breaker per Graph API host in each worker (chronogram/instagram/breaker.py). After
    # graph_breaker_failure_threshold consecutive failures (transport errors, timeouts, HTTP 5xx, Meta codes 1/2;
    # never throttles, auth or invalid requests) the worker stops sending that host calls for
    # graph_breaker_open_seconds; then up to graph_breaker_half_open_probes calls at a time go through as probes.
    # An answer closes it; a failed probe opens it again for twice as long, up to graph_breaker_max_open_seconds,
    # which is also the longest a worker may take to notice that the host is back. Refused calls are never sent
    # and fail as GraphTransientError with the time until the next probe as their retry hint. The threshold is
    # high enough that scattered faults (10 % of calls failing at random) practically never open it: 0.1**10.
    graph_breaker_enabled: bool = True
    graph_breaker_failure_threshold: int = Field(default=10, ge=1)
    graph_breaker_open_seconds: float = Field(default=10.0, gt=0)
    graph_breaker_max_open_seconds: float = Field(default=60.0, gt=0)
    graph_breaker_half_open_probes: int = Field(default=1, ge=1)

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
    # The reconciler also removes the media bucket's orphans (an upload's objects whose row is gone, renditions no
    # media needs) at most once per interval (0: never), sparing objects younger than the grace (uploads in flight).
    api_media_sweep_interval_seconds: float = Field(default=3600.0, ge=0)
    api_media_sweep_grace_seconds: float = Field(default=3600.0, ge=0)
    # How long a request waits for a workflow run to end: DELETE /v1/accounts/{id} for its cancelled posts,
    # POST /v1/posts/{id}/retry for the failed run.
    api_workflow_wait_seconds: float = Field(default=15.0, gt=0)
    # API keys a user may hold at once (not revoked); POST /v1/keys answers 409 beyond. The admin command's keys
    # count, but it may make more.
    api_max_active_keys_per_user: int = Field(default=20, ge=1)
    # GET /metrics takes 'Authorization: Bearer <this>' when set; open when empty (development). Production sets it
    # or keeps /metrics off the public ingress.
    api_metrics_token: SecretStr = SecretStr("")

    # What one API process does at once (api/README.md, "Concurrency and limits"). A request holds a database
    # connection only while its queries run, and a thread only while blocking work runs; nothing is held while it
    # waits on its client. Blocking work (database queries, writing uploads to disk, checking images, object
    # storage) runs on at most this many threads.
    api_threads: int = Field(default=40, ge=1)
    # The database connection pool: this many kept open, as many more opened under load and closed when
    # returned. pool_size + max_overflow = api_threads, so a thread never waits for a connection another thread
    # holds. On PostgreSQL every API process may open up to pool_size + max_overflow connections.
    api_db_pool_size: int = Field(default=10, ge=1)
    api_db_max_overflow: int = Field(default=30, ge=0)
    # Waiting longer than this for a connection answers 503 database_busy with Retry-After, instead of a hang.
    api_db_pool_timeout_seconds: float = Field(default=2.0, gt=0)
    # Uploads being received or stored at once: per user (429 too_many_uploads beyond), so that one user cannot
    # take the server's capacity from the others, and in all (503 upload_capacity_reached beyond).
    api_max_concurrent_uploads_per_user: int = Field(default=6, ge=1)
    api_max_concurrent_uploads: int = Field(default=256, ge=1)
    # An upload whose client sends nothing for this long is dropped (408 upload_timed_out): it frees its slot.
    api_upload_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    # Notifications (webhooks and email; chronogram.notifications). Webhook URLs must be https; http is accepted
    # for localhost only when this is set (development). Targets resolving to private, loopback or link-local
    # addresses are refused, at creation and at every delivery, unless inside one of these networks (CIDR, e.g.
    # "127.0.0.0/8" for a local receiver).
    webhook_allow_http_localhost: bool = False
    webhook_allowed_networks: list[str] = Field(default_factory=list)
    webhook_request_timeout_seconds: float = Field(default=10.0, gt=0)
    # The retry schedule of one delivery: exponential from the first interval, capped, for at most the window.
    # Defaults spread about 20 attempts over three days; the tests compress them to seconds.
    webhook_retry_initial_seconds: float = Field(default=30.0, gt=0)
    webhook_retry_max_interval_seconds: float = Field(default=6 * 3600.0, gt=0)
    webhook_retry_window_seconds: float = Field(default=3 * 24 * 3600.0, gt=0)
    # An endpoint's deliveries retried at once (each a Temporal activity of the endpoint's one workflow, on its own
    # schedule). At this many, the endpoint is taken for failing: its new events wait, pending, until a retry
    # succeeds, instead of each becoming a retried activity too. A receiver down through a burst of 1,000
    # published posts made 1,000 pending activities in one workflow: every retry rewrote them all on the Temporal
    # server, which spent a core on it (bench/README.md), and past Temporal's limit of 2,000 pending activities per
    # workflow the endpoint's workflow could not go on at all.
    webhook_retried_at_most: int = Field(default=20, ge=1, le=500)
    # After POST /v1/webhooks/{id}/rotate-secret, deliveries are signed with the old secret too for this long.
    webhook_secret_grace_seconds: float = Field(default=24 * 3600.0, ge=0)
    # The worker's dispatcher: how often it reads new events from the outbox, and how often it sweeps for pending
    # deliveries whose workflow may have been lost.
    notifications_poll_interval_seconds: float = Field(default=0.2, gt=0)
    notifications_sweep_interval_seconds: float = Field(default=30.0, gt=0)
    # Email over SMTP; no host: no email is sent (events are not queued for email either).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_sender: str = "Chronogram <notifications@localhost>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    # Worker tuning
    worker_max_concurrent_activities: int = Field(default=100, ge=1)
    # Slots of the held publishes (task queue chronogram-publish, asynchronous: no thread each): a post holds one
    # from its quota check, ahead of publish_at, until its call, so a burst of posts due together holds one each.
    worker_held_publish_slots: int = Field(default=2000, ge=1)
    # The insights' workflows cached (task queue chronogram-insights): each sleeps an hour, a day, a week between its
    # reads, so a few are enough; the posts' cache (worker_max_cached_workflows) is for the posts alone.
    worker_insights_cached_workflows: int = Field(default=100, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
    # Off by default: the sandbox doubles the memory and CPU of every cached workflow (bench/README.md), and the
    # workflow code runs sandboxed in the test suites, where a non-deterministic call is caught before it ships.
    worker_workflow_sandbox: bool = False
    worker_graceful_shutdown: Duration = timedelta(seconds=30)
    # What this worker process runs; JSON, e.g. CHRONOGRAM_WORKER_ROLES='["notifications"]'. Both by default. The
    # notifications in a process of their own (one worker with ["posts"], one with ["notifications"]) are scaled,
    # restarted and watched apart from the posts.
    worker_roles: list[WorkerRole] = Field(
        default_factory=lambda: [WorkerRole.POSTS, WorkerRole.NOTIFICATIONS], min_length=1
    )
    # How long a workflow task waits for the worker that ran the workflow last (its sticky queue) before any worker
    # may take it. A task that times out there goes to the shared queue with the workflow's whole history, to be
    # replayed from the start: pure waste when the worker was only busy. In a 1,000-post burst on one worker (two
    # cores) the posts' tasks after their publish calls waited 6-15 s on a healthy worker's sticky queue; with 5 s,
    # nearly every post timed out there once after its instant and was replayed, with 30 s none was, and the drain
    # took 26-37 s instead of 37 (bench/README.md, the eleventh session). So twice the longest wait seen. What it
    # costs: a killed worker's tasks already queued for it wait this long before another worker replays them (new
    # ones go to the shared queue once Temporal has seen no poll from it for 10 s); its held publishes are bounded
    # by their 10 s heartbeat timeout, not by this. (2 s made the spiral worse on the production server.)
    worker_sticky_queue_timeout: Duration = timedelta(seconds=30)
    # Workflow-task polls a worker keeps open, and the share of them on the shared queue (the rest on its sticky
    # queue). A task that timed out on the sticky queue waits on the shared one, whose four partitions (Temporal's
    # default) a single poll (the SDK's 5 x 0.2) visits one long poll at a time: under a burst such tasks waited
    # 60-100 s there. And each poll hands the worker one task per round trip to a busy server: with 8, a 1,000-post
    # burst's workflow tasks waited 3-13 s to start on the sticky queue; with 16 (and the insights started with the
    # finishing calls) the burst finished in 57-60 s instead of 83 (bench/README.md, burst).
    worker_workflow_task_polls: int = Field(default=16, ge=2)
    worker_shared_queue_poll_share: float = Field(default=0.5, gt=0, le=1)
    # Activity-task polls a worker keeps open on the posts' queue (the other queues keep the SDK's 5: the held
    # publishes arrive spread over the wake-ups). With the SDK's 5, a 1,000-post burst's finishing calls waited
    # 10-16 s to start, each running in 0.1-0.2 s; with 20, 0.1-0.2 s (bench/README.md, burst).
    worker_activity_task_polls: int = Field(default=20, ge=1)
    # The pace of a burst (posts due in the same second): each post is marked publishing, quota-checked and its
    # call held this much earlier per post due with it and created before it, from 10 s ahead, at most the lead
    # max ahead. The pace is what the stack sustains for a post's three workflow tasks and two activities; 60 ms
    # keeps up on two cores with the production server on PostgreSQL (bench/README.md, burst). A bigger stack can
    # take a smaller one; the lead max must stay under the held call's longest hold (90 s).
    worker_burst_wake_spacing_ms: int = Field(default=60, ge=1, le=1000)
    worker_burst_wake_lead_max_seconds: int = Field(default=75, ge=10, le=85)

    # Publishing: how late outages may make a post whose account and post set no max lateness of their own.
    default_max_lateness_seconds: int = Field(default=24 * 3600, ge=0)

    # Observability (docs/operations.md). Traces follow the standard OTEL_* variables instead: spans are exported
    # over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    log_format: LogFormat = LogFormat.TEXT
    log_level: str = "INFO"
    # The worker's HTTP endpoint: /metrics (its own and the Temporal SDK's), /healthz, /readyz. Port 0: any free
    # port, logged at start-up.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)

    @property
    def login(self) -> GraphLogin:
        if self.graph_login is not None:
            return self.graph_login
        return (
            GraphLogin.FACEBOOK if "graph.facebook.com" in self.graph_api_base_url else GraphLogin.INSTAGRAM
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
