"""Why json.loads refused a request body, and where: for the 400 ``malformed_json`` of a body that FastAPI could
not parse (bad UTF-8, nesting too deep, a number over Python's digit limit), without echoing the body."""

from __future__ import annotations

import re
import sys

from starlette.requests import Request


async def why_unparsable(request: Request, cause: BaseException) -> str:
    """Why json.loads refused the body, and where, without echoing the body."""
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start : cause.start + 1].hex()
        return f"it is not {cause.encoding.upper()}: byte 0x{byte} at position {cause.start} ({cause.reason})"
    try:
        body = await request.body()
    except RuntimeError:  # the stream was consumed without being kept: no position to give
        body = b""
    if isinstance(cause, RecursionError):
        depth, deepest_at = _deepest(body)
        return f"its arrays and objects are nested too deeply: {depth} levels, the deepest at position {deepest_at}"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        limit = sys.get_int_max_str_digits()
        found = re.search(rb"\d{%d,}" % (limit + 1), body)
        where = f" at position {found.start()}" if found else ""
        return f"a number{where} has more than {limit} digits"
    return "it cannot be parsed"


_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _deepest(body: bytes) -> tuple[int, int]:
    """How deep arrays and objects nest, and where that depth is first reached (brackets in strings skipped)."""
    depth = deepest = where = 0
    for token in _STRING_OR_BRACKET.finditer(body):
        if token[0] in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest, where = depth, token.start()
        elif token[0] in (b"]", b"}"):
            depth -= 1
    return deepest, where
