"""Liveness and readiness for load balancers and the run command; unauthenticated by design."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import AppServices, ServicesDep
from chronogram.contracts import TASK_QUEUE
from chronogram.observability.worker_endpoint import pollers

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


async def _check_workers(services: AppServices) -> None:
    if not await pollers(services.temporal, TASK_QUEUE, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW):
        raise NoWorkerPolling(f"no worker polls task queue {TASK_QUEUE}")


class NoWorkerPolling(Exception):
    pass


def _check_database(services: AppServices) -> None:
    with services.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _check_storage(services: AppServices) -> None:
    if not services.storage.bucket_exists(services.settings.media_bucket):
        raise RuntimeError(f"bucket {services.settings.media_bucket} does not exist")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Temporal, the database and object storage are reachable; and whether a worker polls",
    description=(
        "`checks.workers` says whether any worker polls the posts' task queue (Temporal's DescribeTaskQueue). "
        "Without one the API still takes requests (posts wait for a worker), so the answer stays 200 with "
        "`status` `degraded`; 503 only when the API's own dependencies are unreachable."
    ),
    responses={503: {"model": Readiness, "description": "at least one dependency is unreachable"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    probes = {
        "temporal": _check_temporal(services),
        "database": asyncio.to_thread(_check_database, services),
        "storage": asyncio.to_thread(_check_storage, services),
        "workers": _check_workers(services),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(probe, _CHECK_TIMEOUT_SECONDS) for probe in probes.values()),
        return_exceptions=True,
    )
    checks = {
        name: "ok"
        if not isinstance(result, BaseException)
        else str(result)
        if isinstance(result, NoWorkerPolling)
        else f"unavailable: {type(result).__name__}"
        for name, result in zip(probes, results, strict=True)
    }
    healthy = all(value == "ok" for name, value in checks.items() if name != "workers")
    status = ("ok" if checks["workers"] == "ok" else "degraded") if healthy else "unavailable"
    body = Readiness(status=status, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
