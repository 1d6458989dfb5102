"""Liveness and readiness for load balancers and the run command; unauthenticated by design."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import AppServices, ServicesDep

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT_SECONDS = 3.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health, summary="The API process is up")
async def healthz() -> Health:
    return Health(status="ok")


async def _check_temporal(services: AppServices) -> None:
    await services.temporal.workflow_service.get_system_info(GetSystemInfoRequest())


def _check_database(services: AppServices) -> None:
    with services.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _check_storage(services: AppServices) -> None:
    if not services.storage.bucket_exists(services.settings.media_bucket):
        raise RuntimeError(f"bucket {services.settings.media_bucket} does not exist")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Temporal, the database and object storage are reachable",
    responses={503: {"model": Readiness, "description": "at least one dependency is unreachable"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    probes = {
        "temporal": _check_temporal(services),
        "database": asyncio.to_thread(_check_database, services),
        "storage": asyncio.to_thread(_check_storage, services),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(probe, _CHECK_TIMEOUT_SECONDS) for probe in probes.values()),
        return_exceptions=True,
    )
    checks = {
        name: "ok" if not isinstance(result, BaseException) else f"unavailable: {type(result).__name__}"
        for name, result in zip(probes, results, strict=True)
    }
    healthy = all(value == "ok" for value in checks.values())
    body = Readiness(status="ok" if healthy else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
