"""The alert rules and the Grafana dashboard in ops/ against a running stack: the rules file is what Prometheus
accepts, and every metric a rule or a panel names is one that the API's or the worker's /metrics exposes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chronogram.contracts import TASK_QUEUE
from chronogram.settings import PROJECT_ROOT, Settings
from chronogram.temporal import connect_temporal
from devstack.processes import free_port
from tests.support.prometheus_rules import (
    RulesError,
    dashboard_expressions,
    exposed_names,
    metric_names,
    rule_expressions,
)
from tests.support.stack import background_worker

RULES = PROJECT_ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = PROJECT_ROOT / "ops" / "grafana" / "chronogram.json"


async def test_every_metric_the_rules_and_the_dashboard_name_exists(
    api_settings: Settings, anonymous: httpx.AsyncClient
) -> None:
    port = free_port()
    settings = api_settings.model_copy(update={"worker_metrics_port": port})
    client = await connect_temporal(settings)
    # A workflow of a type no worker registers: its workflow task fails, which is what makes the SDK report
    # temporal_workflow_task_execution_failed (it has no sample before a failure).
    workflow_id = f"alert-rules-{uuid.uuid4().hex}"
    async with (
        background_worker(settings, settle=0.5),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as worker,
    ):
        handle = await client.start_workflow("NoSuchWorkflow", id=workflow_id, task_queue=TASK_QUEUE)
        try:
            for _ in range(100):
                worker_page = (await worker.get("/metrics")).text
                if "temporal_workflow_task_execution_failed" in worker_page:
                    break
                await asyncio.sleep(0.1)
        finally:
            await handle.terminate("the alert rules test is done with it")
    api_page = (await anonymous.get("/metrics")).text
    exposed = exposed_names(text_string_to_metric_families(api_page)) | exposed_names(
        text_string_to_metric_families(worker_page)
    )

    expressions = rule_expressions(RULES) + dashboard_expressions(DASHBOARD)
    assert len(expressions) >= 20
    missing = {
        f"{expression.where}: {name}"
        for expression in expressions
        for name in metric_names(expression.text)
        if name not in exposed
    }
    assert not missing, sorted(missing)


def test_the_rules_cover_what_operators_are_paged_for() -> None:
    alerts = {expression.where for expression in rule_expressions(RULES)}
    assert alerts >= {
        "rule ChronogramPostsFailing",
        "rule ChronogramPostsOverdue",
        "rule ChronogramPublishLagHigh",
        "rule ChronogramNoWorkerPolling",
        "rule ChronogramWorkflowTasksFailing",
        "rule ChronogramGraphCircuitOpen",
        "rule ChronogramWebhookEndpointsDisabled",
        "rule ChronogramWebhookFailuresHigh",
    }


def test_metric_names_are_found_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, operation) (rate(a_seconds_bucket{job="x", le!="+Inf"}[5m])))'
        " / ignoring (code) group_left sum(rate(b_total[1h] offset 5m)) > 1e3 and on (host) c == bool 2"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}


@pytest.mark.parametrize(
    "text",
    [
        "groups: {}",
        "groups: [{name: g, rules: [{alert: A}]}]",
        "groups: [{name: g, rules: [{alert: A, expr: 'up', for: 5 minutes}]}]",
        "groups: [{name: g, rules: [{alert: A, record: b, expr: up}]}]",
        "groups: [{name: g, rules: [{alert: A, expr: 'sum(up'}]}]",
        "groups: [{name: g, rules: [{alert: A, expr: up, severity: high}]}]",
        "groups: [{name: g, rules: [{alert: A, expr: up}]}, {name: g, rules: [{alert: B, expr: up}]}]",
    ],
)
def test_broken_rules_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(text)
    with pytest.raises(RulesError):
        rule_expressions(path)
