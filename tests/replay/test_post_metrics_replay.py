"""The recorded history of a PostMetricsWorkflow replays against the current code: it sleeps for a week after each
post is published, so a change to its commands must go behind workflow.patched() like the posts' do.

Recorded by tests/workflows/test_post_metrics.py with CHRONOGRAM_RECORD_METRICS_HISTORY=1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from chronogram.temporal import DATA_CONVERTER
from workflows import PostMetricsWorkflow

HISTORIES = sorted(Path(__file__).with_name("metrics_histories").glob("*.json"))


def test_a_history_is_recorded() -> None:
    assert HISTORIES


def _text(path: Path) -> str:
    return path.read_text()


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_the_recorded_history_replays(path: Path) -> None:
    text = _text(path)
    assert "capture_metrics" in text and text.count("EVENT_TYPE_TIMER_FIRED") == 3
    history = WorkflowHistory.from_json(path.stem, json.loads(text))
    await Replayer(workflows=[PostMetricsWorkflow], data_converter=DATA_CONVERTER).replay_workflow(history)
