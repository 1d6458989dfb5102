"""Recorded histories of SeriesWorkflow replay against the current code: a series' workflow sleeps for weeks
between rounds, so a change to its commands must go behind workflow.patched() like the posts' do.

Recorded by tests/workflows/test_series.py with CHRONOGRAM_RECORD_SERIES_HISTORY=1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from chronogram.temporal import DATA_CONVERTER
from workflows import SeriesWorkflow

HISTORIES = sorted(Path(__file__).with_name("series_histories").glob("*.json"))


def test_a_history_is_recorded() -> None:
    assert HISTORIES


def _text(path: Path) -> str:
    return path.read_text()


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_the_recorded_history_replays(path: Path) -> None:
    text = _text(path)
    assert "caption" not in text  # the history holds the series id and instants, never its content
    history = WorkflowHistory.from_json(path.stem, json.loads(text))
    await Replayer(workflows=[SeriesWorkflow], data_converter=DATA_CONVERTER).replay_workflow(history)
