"""Graph request parameters: merged from query, form, multipart or JSON body, and parsed as leniently as Meta."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from sandbox.errors import GraphError, invalid_param, missing_param

# Never written to the call log.
SECRET_PARAMS = frozenset(
    {"access_token", "client_secret", "fb_exchange_token", "input_token", "appsecret_proof"}
)

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:")


async def read_params(request: Request) -> dict[str, Any]:
    """Query string first, body on top (Meta's samples send either, and JSON bodies since v2.x)."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method in ("POST", "PUT", "DELETE"):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            raw = await request.body()
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise invalid_param("Request body is not valid JSON") from None
                if not isinstance(body, dict):
                    raise invalid_param("Request body must be a JSON object")
                params.update(body)
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            for key, value in form.multi_items():
                params[key] = "<file>" if isinstance(value, UploadFile) else value
    return params


def token_from(request: Request, params: Mapping[str, Any]) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    token = params.get("access_token")
    return token if isinstance(token, str) and token else None


def sanitized(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if key not in SECRET_PARAMS}


def _relaxed_json(text: str) -> Any:
    """Meta's examples use ``[{username:'x',x:0.5}]``: unquoted keys and single quotes."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    converted = _BARE_KEY.sub(r'\1"\2":', text.replace("'", '"'))
    return json.loads(converted)


@dataclass
class Params:
    values: dict[str, Any]

    def has(self, name: str) -> bool:
        value = self.values.get(name)
        return value is not None and value != ""

    def get_str(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        raise invalid_param(f"Param {name} must be a string")

    def require_str(self, name: str) -> str:
        value = self.get_str(name)
        if value is None:
            raise missing_param(name)
        return value

    def get_bool(self, name: str) -> bool | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise invalid_param(f"Param {name} must be a boolean")

    def get_int(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise invalid_param(f"Param {name} must be an integer")
        try:
            return int(str(value).strip())
        except ValueError:
            raise invalid_param(f"Param {name} must be an integer") from None

    def get_list(self, name: str) -> list[Any] | None:
        """A list given natively (JSON body), as JSON or relaxed JSON text, or comma-separated."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, list):
            return value
        text = str(value).strip()
        if text.startswith("["):
            try:
                parsed = _relaxed_json(text)
            except ValueError:
                raise invalid_param(f"Param {name} must be a JSON array") from None
            if not isinstance(parsed, list):
                raise invalid_param(f"Param {name} must be an array")
            return parsed
        return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class FieldSel:
    name: str
    sub: tuple[FieldSel, ...] | None = None


def parse_fields(text: str | None) -> tuple[FieldSel, ...] | None:
    """``id,children{id,media_url},owner{id}``; None when no ``fields`` were asked for."""
    if text is None or not text.strip():
        return None
    fields, rest = _parse_field_list(text.replace(" ", ""), 0)
    if rest != len(text.replace(" ", "")):
        raise invalid_param("Syntax error in fields")
    return fields


def _parse_field_list(text: str, pos: int) -> tuple[tuple[FieldSel, ...], int]:
    fields: list[FieldSel] = []
    while pos < len(text):
        match = _FIELD_NAME.match(text, pos)
        if match is None:
            raise GraphError(100, f"(#100) Syntax error in fields near position {pos}")
        name, pos = match.group(0), match.end()
        sub: tuple[FieldSel, ...] | None = None
        if pos < len(text) and text[pos] == "{":
            sub, pos = _parse_field_list(text, pos + 1)
            if pos >= len(text) or text[pos] != "}":
                raise invalid_param("Syntax error in fields: missing '}'")
            pos += 1
        fields.append(FieldSel(name, sub))
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        break
    return tuple(fields), pos
