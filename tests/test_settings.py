"""Settings read from the environment: durations are seconds or ISO 8601, as README's table says."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from chronogram.settings import Settings


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("15", timedelta(seconds=15)), ("2.5", timedelta(seconds=2.5)), ("PT15S", timedelta(seconds=15))],
)
def test_a_duration_is_seconds_or_iso_8601(
    raw: str, expected: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHRONOGRAM_WORKER_STICKY_QUEUE_TIMEOUT", raw)
    monkeypatch.setenv("CHRONOGRAM_TOKEN_REFRESH_LEAD", raw)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.worker_sticky_queue_timeout == expected
    assert settings.token_refresh_lead == expected


@pytest.mark.parametrize("raw", ["fifteen", "-5", "0"])
def test_a_duration_that_is_not_one_or_breaks_a_bound_is_refused(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHRONOGRAM_TOKEN_REFRESH_LEAD", raw)
    with pytest.raises(ValidationError, match="token_refresh_lead"):
        Settings(_env_file=None)  # type: ignore[call-arg]
