"""The one data converter: contract types survive the round trip, and decoding builds each type's schema once per
process, not once per workflow (the worker makes a new payload converter for every workflow it runs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

import chronogram.temporal
from chronogram.contracts import MediaKind, PlannedMedia, PublishInput, PublishPlan
from chronogram.enums import PostType
from chronogram.temporal import DATA_CONVERTER


def test_contract_types_round_trip() -> None:
    converter = DATA_CONVERTER.payload_converter
    publish = PublishInput(
        post_id=7, container_id="1789", attempt=1, not_before=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    plan = PublishPlan(
        post_id=7,
        account_id=3,
        post_type=PostType.CAROUSEL,
        media=[PlannedMedia(position=0, media_id=5, kind=MediaKind.IMAGE)],
        has_first_comment=True,
    )
    payloads = converter.to_payloads([publish, plan])
    assert converter.from_payloads(payloads, [PublishInput, PublishPlan]) == [publish, plan]


@dataclass(frozen=True)
class _SeenOnlyHere:
    """A type no other test decodes, so the process-wide cache starts without it."""

    value: int


def test_a_new_payload_converter_reuses_the_schemas_already_built(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []

    def counting_type_adapter(type_hint: Any) -> TypeAdapter[Any]:
        built.append(type_hint)
        return TypeAdapter(type_hint)

    monkeypatch.setattr(chronogram.temporal, "TypeAdapter", counting_type_adapter)
    payload = DATA_CONVERTER.payload_converter.to_payloads([_SeenOnlyHere(1)])

    # What the worker does per workflow: a fresh payload converter from the data converter's class.
    for _workflow in range(3):
        fresh = DATA_CONVERTER.payload_converter_class()
        assert fresh.from_payloads(payload, [_SeenOnlyHere]) == [_SeenOnlyHere(1)]
    assert built.count(_SeenOnlyHere) == 1
