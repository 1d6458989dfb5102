"""Count (or list) posts' workflows by their latest run only (docs/operations.md, "Counting by the latest run only").

    .venv/bin/python -m scripts.latest_runs --query "PostStatus='failed'" --by ErrorCode
    .venv/bin/python -m scripts.latest_runs --query "CloseTime > '2026-12-01T00:00:00Z'" --by PostStatus --list

Temporal lists every run: a failed post that was retried keeps its failed run beside the new one, so counting runs
by status counts it twice. This finds the workflow ids that match the query, then looks at every run of those ids
(not only the matching ones), keeps each id's newest run and counts those by the search attribute ``--by`` that
match the query. It reads Temporal only (CHRONOGRAM_TEMPORAL_ADDRESS, CHRONOGRAM_TEMPORAL_NAMESPACE).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecution

from chronogram.contracts import SCHEDULED_POST_WORKFLOW
from chronogram.settings import get_settings
from chronogram.temporal import connect_temporal

# Temporal's visibility takes an IN list; long lists are sent in slices.
_IDS_PER_QUERY = 100


@dataclass(frozen=True)
class LatestRun:
    workflow_id: str
    run_id: str
    value: str | None  # the --by attribute's value on the newest run


async def latest_runs(client: Client, query: str | None, by: str) -> list[LatestRun]:
    """The newest run of every post workflow that has a run matching ``query`` (None: every post), when that
    newest run matches too."""
    scoped = f"WorkflowType='{SCHEDULED_POST_WORKFLOW}'" + (f" AND ({query})" if query else "")
    matching: dict[str, set[str]] = {}
    async for execution in client.list_workflows(scoped):
        matching.setdefault(execution.id, set()).add(execution.run_id)
    newest: dict[str, WorkflowExecution] = {}
    ids = sorted(matching)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        listed = ", ".join(f"'{workflow_id}'" for workflow_id in ids[start : start + _IDS_PER_QUERY])
        async for execution in client.list_workflows(f"WorkflowId IN ({listed})"):
            current = newest.get(execution.id)
            if current is None or execution.start_time > current.start_time:
                newest[execution.id] = execution
    return [
        LatestRun(workflow_id, execution.run_id, _attribute(execution, by))
        for workflow_id, execution in sorted(newest.items())
        if execution.run_id in matching[workflow_id]
    ]


def _attribute(execution: WorkflowExecution, name: str) -> str | None:
    for pair in execution.typed_search_attributes:
        if pair.key.name == name:
            return str(pair.value)
    return None


def count(runs: Sequence[LatestRun]) -> Counter[str]:
    return Counter(run.value or "(none)" for run in runs)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--query", help="a visibility query (default: every post)")
    parser.add_argument("--by", default="PostStatus", help="the search attribute to count by (PostStatus)")
    parser.add_argument("--list", action="store_true", help="also list each workflow id and its newest run")
    args = parser.parse_args(argv)
    client = await connect_temporal(get_settings())
    runs = await latest_runs(client, args.query, args.by)
    if args.list:
        for run in runs:
            print(f"{run.workflow_id}  {run.run_id}  {args.by}={run.value}")
    for value, number in sorted(count(runs).items(), key=lambda item: (-item[1], item[0])):
        print(f"{number:8d}  {value}")
    print(f"{len(runs):8d}  posts (latest runs)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
