"""Activity classes; each receives its clients, built once in worker.py (or by a test)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import httpx
from minio import Minio
from sqlalchemy import Engine
from temporalio.client import Client

from activities.account_tokens import AccountTokens
from activities.instagram import InstagramActivities
from activities.media import MediaActivities
from activities.metrics import PostMetricsActivities, PostMetricsStarter
from activities.notifications import EmailActivities, WebhookActivities
from activities.run_history import RunHistory
from activities.series import SeriesActivities
from activities.store import PostStore
from chronogram.accounts import TokenSchedule
from chronogram.contracts import (
    ACTIVITY_INTERFACES,
    NOTIFICATION_ACTIVITY_INTERFACES,
    TASK_QUEUE,
    PostMetricsInterface,
    activity_names,
)
from chronogram.crypto import TokenCipher
from chronogram.instagram import BreakerRegistry, GraphClient
from chronogram.instagram.client import CallHook
from chronogram.notifications.url_policy import UrlPolicy
from chronogram.settings import Settings


def build_activities(
    settings: Settings,
    *,
    http: httpx.AsyncClient,
    storage: Minio,
    engine: Engine,
    temporal: Client,
    breakers: BreakerRegistry | None = None,
    on_graph_call: CallHook | None = None,
    publish_task_queue: str | None = None,
    insights_task_queue: str = TASK_QUEUE,
) -> list[Callable[..., Any]]:
    """Every activity the contracts declare, bound to shared clients: what the worker registers. ``temporal``: the
    worker's client (a run reads its own history; a series starts its occurrences' workflows); ``breakers``: the
    worker's Graph API circuit breakers (none: every call is sent); ``on_graph_call`` hears of every Graph API call
    (the worker's metrics); ``publish_task_queue``: where held publishes run (a worker there must run
    ``held_publish_activities``); ``insights_task_queue``: where published posts' PostMetricsWorkflows start (a
    worker there must run them and ``insights_activities``; by default the posts' own queue, as test workers do)."""
    store = PostStore(
        engine,
        settings.default_max_lateness_seconds,
        publish_task_queue,
        wake_spacing_ms=settings.worker_burst_wake_spacing_ms,
        wake_lead_max_seconds=settings.worker_burst_wake_lead_max_seconds,
    )
    media = MediaActivities(storage, settings.media_bucket, engine)
    graph = GraphClient.from_settings(http, settings, breakers=breakers, on_call=on_graph_call)
    cipher = TokenCipher.from_settings(settings)
    instagram = InstagramActivities(graph, engine, storage, settings.media_bucket, cipher)
    tokens = AccountTokens(graph, engine, cipher, login=settings.login, schedule=token_schedule(settings))
    metrics = PostMetricsActivities(graph, engine, cipher)
    return [
        getattr(implementation, name)
        for implementation in (
            store,
            media,
            instagram,
            tokens,
            RunHistory(temporal),
            metrics,
            PostMetricsStarter(temporal, insights_task_queue),
            SeriesActivities(engine, temporal),
        )
        for interface in ACTIVITY_INTERFACES
        if isinstance(implementation, interface)
        for name in activity_names(interface)
    ]


def insights_activities(activities: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """Of ``build_activities``' list, what the insights' worker runs (INSIGHTS_TASK_QUEUE)."""
    names = set(activity_names(PostMetricsInterface))
    return [function for function in activities if getattr(function, "__name__", "") in names]


def held_publish_activities(activities: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """Of ``build_activities``' list, what the worker of held publishes runs (PUBLISH_TASK_QUEUE)."""
    return [function for function in activities if getattr(function, "__name__", "") == "publish"]


def build_notification_activities(
    settings: Settings, *, http: httpx.AsyncClient, engine: Engine, executor: Executor | None = None
) -> list[Callable[..., Any]]:
    """Every notification activity the contracts declare: what the worker registers on the notifications' queue.
    ``executor``: the threads of their database calls (default: the event loop's)."""
    webhooks = WebhookActivities(
        engine,
        http,
        TokenCipher.from_settings(settings),
        UrlPolicy.from_settings(settings),
        executor,
        retried_at_most=settings.webhook_retried_at_most,
    )
    email = EmailActivities(engine, settings)
    return [
        getattr(implementation, name)
        for implementation in (webhooks, email)
        for interface in NOTIFICATION_ACTIVITY_INTERFACES
        if isinstance(implementation, interface)
        for name in activity_names(interface)
    ]


def token_schedule(settings: Settings) -> TokenSchedule:
    return TokenSchedule(lead=settings.token_refresh_lead, min_age=settings.token_refresh_min_age)
