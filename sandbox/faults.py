"""Deterministic fault injection: the next N matching calls misbehave in a chosen way.

Request faults act on a call (fail before doing anything, or do it and then lose or falsify the answer);
container faults act on what a ``POST /{ig-user-id}/media`` creates (or on an existing container).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENDPOINTS = (
    "media_create",
    "media_list",
    "media_publish",
    "container_status",
    "media_read",
    "media_delete",
    "user_read",
    "comments_create",
    "comments_list",
    "publishing_limit",
    "stories_list",
    "token_refresh",
    "token_exchange",
)


class FaultAction(StrEnum):
    ERROR = "error"  # answer with Meta's error envelope; nothing is done
    HTML_502 = "html_502"  # a gateway's HTML page instead of JSON; nothing is done
    HANG = "hang"  # hold the request for ``seconds`` (past the client's timeout); nothing is done
    LATENCY = "latency"  # wait ``seconds``, then serve normally (stacks with other faults)
    DROP = "drop"  # close the connection mid-response; nothing is done
    COMMIT_THEN_DROP = "commit_then_drop"  # do it, then close the connection: "published, response lost"
    COMMIT_THEN_HANG = "commit_then_hang"  # do it, then hold the response past the client's timeout
    COMMIT_THEN_ERROR = "commit_then_error"  # do it, then answer an error (default 4/2207051)
    CONTAINER_STUCK = "container_stuck"  # the container never leaves IN_PROGRESS (until it expires)
    CONTAINER_ERROR = "container_error"  # the container turns ERROR with ``error_subcode`` once processed


CONTAINER_ACTIONS = (FaultAction.CONTAINER_STUCK, FaultAction.CONTAINER_ERROR)
DEFAULT_HANG_SECONDS = 60.0
DEFAULT_LATENCY_SECONDS = 1.0


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: FaultAction
    endpoint: str = "*"
    # How many matching calls (or created containers) it applies to; null means until removed.
    count: int | None = Field(default=1, ge=1)
    # Each matching call is hit with this chance (null: every one), drawn from the sandbox's seeded generator, so
    # that a run with the same calls in the same order meets the same faults (a chaos run's "10 % of calls").
    probability: float | None = Field(default=None, gt=0, le=1)
    ig_user_id: str | None = None
    # A container or media id: the path's node, or media_publish's creation_id.
    target_id: str | None = None
    code: int | None = None
    error_subcode: int | None = None
    http_status: int | None = Field(default=None, ge=100, le=599)
    message: str | None = None
    error_type: str | None = None
    is_transient: bool | None = None
    error_user_title: str | None = None
    error_user_msg: str | None = None
    # Minutes, sent in X-Business-Use-Case-Usage with the error.
    estimated_time_to_regain_access: int | None = Field(default=None, ge=0)
    retry_after_seconds: int | None = Field(default=None, ge=0)
    seconds: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be '*' or one of {', '.join(ENDPOINTS)}")
        if self.action is FaultAction.ERROR and self.code is None:
            raise ValueError("action 'error' needs a code")
        if self.action in CONTAINER_ACTIONS:
            if self.endpoint not in ("*", "media_create"):
                raise ValueError("container faults apply to containers created by media_create")
            if self.action is FaultAction.CONTAINER_ERROR and self.error_subcode is None:
                raise ValueError("action 'container_error' needs an error_subcode")
        return self

    @property
    def wait_seconds(self) -> float:
        if self.seconds is not None:
            return self.seconds
        return DEFAULT_LATENCY_SECONDS if self.action is FaultAction.LATENCY else DEFAULT_HANG_SECONDS


@dataclass
class Fault:
    id: str
    spec: FaultSpec
    remaining: int | None
    hits: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.spec.model_dump(mode="json", exclude_none=True),
            "remaining": self.remaining,
            "hits": self.hits,
        }

    def matches(self, endpoint: str, ig_user_id: str | None, target_id: str | None) -> bool:
        spec = self.spec
        return (
            (self.remaining is None or self.remaining > 0)
            and spec.endpoint in ("*", endpoint)
            and (spec.ig_user_id is None or spec.ig_user_id == ig_user_id)
            and (spec.target_id is None or spec.target_id == target_id)
        )

    def consume(self) -> None:
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1


@dataclass
class FaultBook:
    faults: list[Fault] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _chance: random.Random = field(default_factory=lambda: random.Random(12))  # reset with the faults

    def _drawn(self, fault: Fault) -> bool:
        probability = fault.spec.probability
        return probability is None or self._chance.random() < probability

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(id=f"fault-{next(self._ids)}", spec=spec, remaining=spec.count)
        self.faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        before = len(self.faults)
        self.faults = [fault for fault in self.faults if fault.id != fault_id]
        return len(self.faults) != before

    def clear(self) -> None:
        self.faults.clear()
        self._chance = random.Random(12)

    def take_request_faults(
        self, endpoint: str, ig_user_id: str | None, target_id: str | None
    ) -> tuple[float, Fault | None]:
        """Total injected latency, and the first other matching fault (each consumed once)."""
        latency = 0.0
        chosen: Fault | None = None
        for fault in self.faults:
            if fault.spec.action in CONTAINER_ACTIONS or not fault.matches(endpoint, ig_user_id, target_id):
                continue
            if chosen is not None and fault.spec.action is not FaultAction.LATENCY:
                continue
            if not self._drawn(fault):
                continue
            if fault.spec.action is FaultAction.LATENCY:
                fault.consume()
                latency += fault.spec.wait_seconds
            elif chosen is None:
                fault.consume()
                chosen = fault
        return latency, chosen

    def take_container_fault(self, ig_user_id: str) -> Fault | None:
        for fault in self.faults:
            if (
                fault.spec.action in CONTAINER_ACTIONS
                and fault.spec.target_id is None
                and fault.matches("media_create", ig_user_id, None)
                and self._drawn(fault)
            ):
                fault.consume()
                return fault
        return None
