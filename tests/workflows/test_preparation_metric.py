"""The workflow measures each post's preparation (through the SDK's metric meter): a histogram by post type on the
worker's Prometheus endpoint, which replays never touch."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from chronogram.contracts import PREPARATION_METRIC
from chronogram.scheduling import start_post_workflow
from devstack.processes import free_port
from tests.support.fakes import FakeWorld, Script
from workflows import ScheduledPostWorkflow


async def test_the_preparation_time_is_a_histogram_by_post_type(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True))
    )
    client = await Client.connect(
        time_skipping_env.client.service_client.config.target_host,
        namespace=time_skipping_env.client.namespace,
        runtime=runtime,
    )
    world = FakeWorld(Script(polls_until_finished=3))
    task_queue = f"posts-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=task_queue, workflows=[ScheduledPostWorkflow], activities=world.activities()
    ):
        world.base = await time_skipping_env.get_current_time()
        handle = await start_post_workflow(
            time_skipping_env.client,
            post_id=int(uuid.uuid4().int % 1_000_000_000),
            account_id=1,
            username="shop",
            post_type=world.script.post_type,
            publish_at=world.base + timedelta(hours=1),
            task_queue=task_queue,
        )
        await handle.result()
        async with httpx.AsyncClient(trust_env=False) as http:
            text = (await http.get(f"http://{address}/metrics")).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name.endswith(PREPARATION_METRIC)
    }
    counts = [value for (name, labels), value in samples.items() if name.endswith("_count")]
    assert counts == [1.0], sorted(samples)
    assert all(dict(labels).get("post_type") == "IMAGE" for (_name, labels) in samples)
    total = next(value for (name, _labels), value in samples.items() if name.endswith("_sum"))
    assert total > 0  # three readiness polls apart
