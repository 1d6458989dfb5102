"""Post transitions are counted, and their outcomes logged, when their transaction commits: never for one rolled
back, once for a committed one, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine
from sqlmodel import Session

from chronogram import lifecycle
from chronogram.contracts import ErrorType
from chronogram.crypto import TokenCipher
from chronogram.enums import PostStatus, PostType
from chronogram.lifecycle import DedupeKey
from chronogram.observability.logs import log_outcome
from chronogram.observability.metrics import install_transition_metrics
from tests.support.factories import add_account, add_user, id_of


class _Rollback(Exception):
    pass


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _scheduled(engine: Engine, cipher: TokenCipher) -> int:
    with Session(engine) as session:
        account = add_account(session, add_user(session), cipher)
        account_id = id_of(account)
        values = {
            "owner_id": account.owner_id,
            "account_id": account_id,
            "type": PostType.IMAGE,
            "publish_at": datetime(2027, 3, 1, 9, 0, tzinfo=UTC),
            "user_tags": [],
        }
        post_id = lifecycle.schedule(session.connection(), post=values).post_id
        session.commit()
    return post_id


def test_a_transition_counts_when_it_commits_and_never_when_it_rolls_back(
    engine: Engine, cipher: TokenCipher, caplog: pytest.LogCaptureFixture
) -> None:
    install_transition_metrics(log_outcome)
    failed = {"status": "failed", "error_code": ErrorType.MEDIA_REJECTED.value}
    moved = {"transition": "fail", "from_status": "scheduled", "to_status": "failed"}
    scheduling = {"transition": "schedule", "from_status": "none", "to_status": "scheduled"}
    before_schedule = _count("chronogram_post_transitions_total", **scheduling)
    post_id = _scheduled(engine, cipher)
    assert _count("chronogram_post_transitions_total", **scheduling) == before_schedule + 1

    before = (
        _count("chronogram_post_outcomes_total", **failed),
        _count("chronogram_post_transitions_total", **moved),
    )
    caplog.set_level(logging.INFO, logger="chronogram.outcomes")

    def fail() -> None:
        with engine.begin() as connection:
            lifecycle.fail(
                connection,
                post_id,
                DedupeKey.run_ending("run-1", PostStatus.FAILED),
                error_code=ErrorType.MEDIA_REJECTED,
                message="the image is too small",
            )
            raise _Rollback

    with pytest.raises(_Rollback):
        fail()
    assert (
        _count("chronogram_post_outcomes_total", **failed),
        _count("chronogram_post_transitions_total", **moved),
    ) == before
    assert not [r for r in caplog.records if r.name == "chronogram.outcomes"]

    with engine.begin() as connection:
        lifecycle.fail(
            connection,
            post_id,
            DedupeKey.run_ending("run-1", PostStatus.FAILED),
            error_code=ErrorType.MEDIA_REJECTED,
            message="the image is too small",
        )
    assert _count("chronogram_post_outcomes_total", **failed) == before[0] + 1
    assert _count("chronogram_post_transitions_total", **moved) == before[1] + 1
    [line] = [r for r in caplog.records if r.name == "chronogram.outcomes"]
    assert line.getMessage() == f"post {post_id} failed: MediaRejected: the image is too small"
    assert (line.error_code, line.reason) == ("MediaRejected", "the image is too small")  # type: ignore[attr-defined]
