"""The worker registers every activity the contracts declare, each bound to its implementation."""

from __future__ import annotations

from types import MethodType
from typing import cast

import httpx
from minio import Minio
from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client

from activities import build_activities, build_notification_activities
from chronogram.contracts import ACTIVITY_INTERFACES, NOTIFICATION_ACTIVITY_INTERFACES, activity_names
from chronogram.settings import Settings


async def test_every_declared_activity_is_registered_with_its_implementation(sqlite_engine: Engine) -> None:
    declared = [name for interface in ACTIVITY_INTERFACES for name in activity_names(interface)]
    async with httpx.AsyncClient() as http:
        registered = build_activities(
            Settings(),
            http=http,
            storage=Minio("127.0.0.1:9", secure=False),
            engine=sqlite_engine,
            temporal=cast(Client, object()),  # held, not called
        )
    names = [str(activity._Definition.must_from_callable(fn).name) for fn in registered]
    assert sorted(names) == sorted(declared) and len(declared) == 20
    for fn in registered:
        assert isinstance(fn, MethodType)
        owner = type(fn.__self__)
        assert owner not in ACTIVITY_INTERFACES  # an implementation, not the declaration's stub
        assert vars(owner).get(fn.__name__) is not None


async def test_every_declared_notification_activity_is_registered_with_its_implementation(
    sqlite_engine: Engine,
) -> None:
    declared = [name for interface in NOTIFICATION_ACTIVITY_INTERFACES for name in activity_names(interface)]
    async with httpx.AsyncClient() as http:
        registered = build_notification_activities(Settings(), http=http, engine=sqlite_engine)
    names = [str(activity._Definition.must_from_callable(fn).name) for fn in registered]
    # Eight: due_deliveries stays for the endpoint workflows from before the batches, deliver_due for those from
    # before the rounds side by side, due_heads and send_first_attempts for those from before the pump.
    assert sorted(names) == sorted(declared) and len(declared) == 8
    for fn in registered:
        assert isinstance(fn, MethodType)
        owner = type(fn.__self__)
        assert owner not in NOTIFICATION_ACTIVITY_INTERFACES
        assert vars(owner).get(fn.__name__) is not None
