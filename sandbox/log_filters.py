"""Logging filters the sandbox installs on uvicorn's loggers."""

from __future__ import annotations

import logging
import re

import httpx

# Graph API tokens, and the signature of the presigned media URLs the sandbox fetches as Meta would (a day-long
# read capability for the object).
_SECRET_QUERY = re.compile(
    r"((?:access_token|fb_exchange_token|client_secret|input_token|X-Amz-Signature|X-Amz-Credential)=)[^&\s\"']+"
)


class DroppedConnectionLogFilter(logging.Filter):
    """Uvicorn reports every intentional drop as an error; that is the fault working, not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


class RedactTokensFilter(logging.Filter):
    """Access-log lines include the query string, where Meta's SDK and the refresh call put tokens; httpx's
    request lines carry the URL as an object, not a string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        return True


def _redacted(arg: object) -> object:
    if isinstance(arg, httpx.URL):
        arg = str(arg)
    return _SECRET_QUERY.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg


def install() -> None:
    for name, filter_type in (
        ("uvicorn.error", DroppedConnectionLogFilter),
        ("uvicorn.access", RedactTokensFilter),
        ("httpx", RedactTokensFilter),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, filter_type) for f in logger.filters):
            logger.addFilter(filter_type())
