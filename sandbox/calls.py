"""The ordered log of Graph calls served, for tests and benchmarks to assert on (tokens never recorded)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class CallRecord:
    seq: int
    method: str
    path: str
    endpoint: str
    params: dict[str, Any]
    started_at: datetime
    ig_user_id: str | None = None
    status: int | None = None
    error_code: int | None = None
    error_subcode: int | None = None
    fault: str | None = None
    # The id of the outage that failed this call.
    outage: str | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


@dataclass
class CallLog:
    records: list[CallRecord] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(
        self, *, method: str, path: str, endpoint: str, params: dict[str, Any], now: datetime
    ) -> CallRecord:
        record = CallRecord(
            seq=next(self._seq), method=method, path=path, endpoint=endpoint, params=params, started_at=now
        )
        self.records.append(record)
        return record

    def clear(self) -> None:
        self.records.clear()

    def query(
        self,
        *,
        since: int = 0,
        endpoint: str | None = None,
        ig_user_id: str | None = None,
        outage: str | None = None,
    ) -> list[CallRecord]:
        return [
            record
            for record in self.records
            if record.seq > since
            and (endpoint is None or record.endpoint == endpoint)
            and (ig_user_id is None or record.ig_user_id == ig_user_id)
            and (outage is None or record.outage == outage)
        ]
