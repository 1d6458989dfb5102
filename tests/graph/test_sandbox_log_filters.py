"""The sandbox's logs keep no secrets: Graph API tokens in access-log query strings, and the signature of the
presigned media URLs it fetches, which httpx logs as URL objects."""

from __future__ import annotations

import logging

import httpx

from sandbox.log_filters import RedactTokensFilter


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("httpx", logging.INFO, __file__, 1, message, args, None)


def test_presigned_url_signatures_are_redacted_from_httpx_lines() -> None:
    url = httpx.URL(
        "http://127.0.0.1:9000/chronogram-media/renditions/abc.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=chronogram%2F20261124%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261124T101207Z"
        "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=9f2c1e0d3b"
    )
    record = _record('HTTP Request: %s %s "%s %d %s"', "GET", url, "HTTP/1.1", 200, "OK")

    assert RedactTokensFilter().filter(record)
    line = record.getMessage()
    assert "9f2c1e0d3b" not in line and "chronogram%2F20261124" not in line
    assert "X-Amz-Signature=[redacted]" in line and "X-Amz-Credential=[redacted]" in line
    assert "/chronogram-media/renditions/abc.jpg" in line and "X-Amz-Expires=86400" in line


def test_access_tokens_are_redacted_from_access_log_lines() -> None:
    record = _record(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET", "/v25.0/me?access_token=EAAB-secret&x=1", "1.1", 200
    )
    assert RedactTokensFilter().filter(record)
    assert "EAAB-secret" not in record.getMessage() and "access_token=[redacted]&x=1" in record.getMessage()
