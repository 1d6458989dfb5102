"""Typed dependencies: everything a route needs comes from the app's lifespan, never from module globals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from minio import Minio
from sqlalchemy import Engine
from temporalio.client import Client

from chronogram.settings import Settings


@dataclass(frozen=True)
class AppServices:
    settings: Settings
    temporal: Client
    engine: Engine
    storage: Minio


def get_services(request: Request) -> AppServices:
    services: AppServices = request.app.state.services
    return services


ServicesDep = Annotated[AppServices, Depends(get_services)]
