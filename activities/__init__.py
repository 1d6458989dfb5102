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
from chronogram.crypto import TokenCipher
from chronogram.instagram import GraphClient
from chronogram.settings import Settings


def build_activities(
    settings: Settings, *, http: httpx.AsyncClient, storage: Minio, engine: Engine
) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to shared clients."""
    store = PostStore(engine)
    media = MediaActivities(storage, settings.media_bucket, engine)
    instagram = InstagramActivities(
        GraphClient.from_settings(http, settings),
        engine,
        storage,
        settings.media_bucket,
        TokenCipher.from_settings(settings),
    )
    return [
        store.load_plan,
        store.begin_publishing,
        store.record_event,
        store.finish,
        media.prepare_media,
        instagram.get_publishing_quota,
        instagram.create_container,
        instagram.check_container_ready,
        instagram.publish,
        instagram.reconcile_publish,
        instagram.fetch_permalink,
        instagram.post_first_comment,
    ]
