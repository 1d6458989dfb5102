"""Activity classes; each receives its clients, built once in worker.py (or by a test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from minio import Minio
from sqlalchemy import Engine

from activities.instagram import InstagramActivities
from activities.media import MediaActivities
from activities.store import PostStore
from chronogram.contracts import ACTIVITY_INTERFACES, activity_names
from chronogram.crypto import TokenCipher
from chronogram.instagram import GraphClient
from chronogram.settings import Settings


def build_activities(
    settings: Settings, *, http: httpx.AsyncClient, storage: Minio, engine: Engine
) -> list[Callable[..., Any]]:
    """Every activity the contracts declare, bound to shared clients: what the worker registers."""
    store = PostStore(engine, settings.default_max_lateness_seconds)
    media = MediaActivities(storage, settings.media_bucket, engine)
    instagram = InstagramActivities(
        GraphClient.from_settings(http, settings),
        engine,
        storage,
        settings.media_bucket,
        TokenCipher.from_settings(settings),
    )
    return [
        getattr(implementation, name)
        for implementation in (store, media, instagram)
        for interface in ACTIVITY_INTERFACES
        if isinstance(implementation, interface)
        for name in activity_names(interface)
    ]
