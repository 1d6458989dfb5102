"""The body of POST /v1/posts/batch, read by the route itself: JSON (a ``PostBatch``), or CSV with one post per
row, so that a spreadsheet can be imported as it is.

CSV: UTF-8 (a BOM is allowed), a header row naming the columns, then at most 100 rows. The columns are the fields
of ``POST /v1/posts`` that fit in a cell, plus ``idempotency_key``; a column may be left out, and an empty cell
means the field is not given:

- ``account_id``, ``template_id``, ``max_lateness_seconds``: integers; ``type``, ``caption``, ``first_comment``,
  ``publish_at``, ``location_id``, ``alt_text``, ``idempotency_key``: text as in JSON;
- ``media_ids``: ids separated by spaces, commas or semicolons, in order;
- ``variables``: a JSON object (``{"bread": "rye"}``);
- ``draft``: ``true`` or ``false``.

The stagger, for CSV, is given as the query parameters ``stagger_start_at`` and ``stagger_every_minutes``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from api.errors import ApiError, invalid_input, malformed_json
from api.schemas.batch import MAX_BATCH_ITEMS, PostBatch
from api.unparsable_bodies import why_unparsable

CSV_COLUMNS = (
    "account_id",
    "type",
    "media_ids",
    "caption",
    "first_comment",
    "publish_at",
    "template_id",
    "variables",
    "draft",
    "idempotency_key",
    "location_id",
    "alt_text",
    "max_lateness_seconds",
)
_INTEGERS = frozenset({"account_id", "template_id", "max_lateness_seconds"})
_SEPARATORS = re.compile(r"[\s,;]+")


async def read_batch(request: Request, stagger: Mapping[str, Any] | None) -> PostBatch:
    """The batch the request's body holds; 400, 415 or 422 (a problem detail) if it holds none."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw = await request.body()
    if media_type == "text/csv":
        data: Any = {"items": _csv_items(raw)}
        if stagger:
            data["stagger"] = dict(stagger)
    elif media_type == "application/json" or media_type.endswith("+json"):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as error:
            raise malformed_json(await why_unparsable(request, error)) from None
        if stagger:
            raise ApiError(
                422, "stagger_in_query", "give the stagger in the JSON body's stagger field", field="stagger"
            )
    else:
        raise ApiError(
            415,
            "unsupported_content_type",
            f"send the batch as application/json or text/csv, not {media_type or 'no Content-Type'}",
        )
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "the request body must be a JSON object", field="body")
    try:
        return PostBatch.model_validate(data)
    except ValidationError as error:
        raise invalid_input(error.errors()) from None


def _csv_items(raw: bytes) -> list[dict[str, Any]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ApiError(
            400, "malformed_csv", f"the CSV is not UTF-8: byte at position {error.start}"
        ) from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as error:
        raise ApiError(400, "malformed_csv", f"the CSV cannot be read: {error}") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise ApiError(
            422, "csv_header_missing", "the CSV needs a header row naming its columns", field="body"
        )
    header = [name.strip() for name in rows[0]]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown or len(set(header)) != len(header):
        raise ApiError(
            422,
            "csv_columns",
            f"unknown or repeated columns {unknown or header}: the columns are {', '.join(CSV_COLUMNS)}",
            field="body",
        )
    if not 1 <= len(rows) - 1 <= MAX_BATCH_ITEMS:
        raise ApiError(
            422,
            "batch_size",
            f"give 1 to {MAX_BATCH_ITEMS} rows after the header, not {len(rows) - 1}",
            field="items",
        )
    return [_item(header, row) for row in rows[1:]]


def _item(header: list[str], row: list[str]) -> dict[str, Any]:
    """One row as a post request: a cell that cannot be converted is left as text for the item's own 422."""
    item: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=False):
        if cell == "":
            continue
        item[name] = _value(name, cell)
    return item


def _value(name: str, cell: str) -> Any:
    stripped = cell.strip()
    if name in _INTEGERS and re.fullmatch(r"-?\d{1,20}", stripped):
        return int(stripped)
    if name == "media_ids":
        parts = [part for part in _SEPARATORS.split(stripped) if part]
        return [int(part) if re.fullmatch(r"\d{1,20}", part) else part for part in parts]
    if name == "draft" and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if name == "variables":
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            return cell
    return cell
