"""Recorded histories of AccountTokensWorkflow replay against the current code: an account's workflow sleeps for
weeks between refreshes, so a change to its commands must go behind workflow.patched() like the posts' do.

Recorded by tests/workflows/test_account_tokens.py with CHRONOGRAM_RECORD_ACCOUNT_HISTORY=1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from chronogram.temporal import DATA_CONVERTER
from workflows import AccountTokensWorkflow

HISTORIES = sorted(Path(__file__).with_name("account_histories").glob("*.json"))


def test_a_history_is_recorded() -> None:
    assert HISTORIES


def _text(path: Path) -> str:
    return path.read_text()


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_the_recorded_history_replays(path: Path) -> None:
    text = _text(path)
    assert "IGAA" not in text  # the history holds the account id, never a token
    history = WorkflowHistory.from_json(path.stem, json.loads(text))
    await Replayer(workflows=[AccountTokensWorkflow], data_converter=DATA_CONVERTER).replay_workflow(history)
