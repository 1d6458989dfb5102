"""Logging filters the sandbox installs on uvicorn's loggers."""

from __future__ import annotations

import logging
import re

_SECRET_QUERY = re.compile(r"((?:access_token|fb_exchange_token|client_secret|input_token)=)[^&\s\"']+")


class DroppedConnectionLogFilter(logging.Filter):
    """Uvicorn reports every intentional drop as an error; that is the fault working, not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


class RedactTokensFilter(logging.Filter):
    """Access-log lines include the query string, where Meta's SDK and the refresh call put tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_QUERY.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def install() -> None:
    for name, filter_type in (
        ("uvicorn.error", DroppedConnectionLogFilter),
        ("uvicorn.access", RedactTokensFilter),
        ("httpx", RedactTokensFilter),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, filter_type) for f in logger.filters):
            logger.addFilter(filter_type())
