"""Log lines for people and for pipelines: readable text in a terminal (``make dev``), one JSON object per line in
production (``CHRONOGRAM_LOG_FORMAT=json``).

Every line carries what is known of its context, without the caller passing it:

- ``trace_id`` and ``span_id``: the OpenTelemetry span current when it was logged;
- ``workflow_id``, ``run_id``, ``activity``: inside a Temporal activity or workflow, from the SDK's context; and
  ``post_id``, from the post's workflow id;
- ``post_id``, ``account_id``, ``request_id``, ``user_id``...: whatever ``bind`` put in the context (the API binds
  the request's id and user, the outcome lines their post and account).

A last filter masks anything shaped like a secret (bearer tokens, ``access_token=``, API keys) that slipped into a
message, so that no token or key reaches a log line even by mistake.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

from chronogram.contracts import ACCOUNT_ID
from chronogram.enums import PostStatus
from chronogram.observability.metrics import Outcome
from chronogram.settings import LogFormat, Settings

__all__ = [
    "CONTEXT_FIELDS",
    "bind",
    "bind_live",
    "configure_logging",
    "current_context",
    "log_outcome",
    "remember_account",
]

outcomes = logging.getLogger("chronogram.outcomes")

# The fields a line may carry besides its message, in the order the text format shows them.
CONTEXT_FIELDS = (
    "post_id",
    "account_id",
    "workflow_id",
    "run_id",
    "activity",
    "request_id",
    "user_id",
    "trace_id",
    "span_id",
)

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "chronogram_log_context", default=MappingProxyType({})
)

_POST_WORKFLOW = re.compile(r"^post-(\d+)$")
_SECRETS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(
        r"(?i)((?:access_token|fb_exchange_token|client_secret|input_token|api_key)[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]+"
    ),
    re.compile(r"\bcg_[A-Za-z0-9_-]{8,}"),
)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every line logged in this context (this task and what it starts) until the block ends."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> Mapping[str, Any]:
    return _context.get()


_live: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "chronogram_live_log_context", default=None
)


@contextmanager
def bind_live(fields: Mapping[str, Any]) -> Iterator[None]:
    """Like ``bind``, but ``fields`` is read when each line is logged: a mapping that fills in later (an HTTP
    request's state, whose user is known once authenticated, possibly in another thread)."""
    token = _live.set(fields)
    try:
        yield
    finally:
        _live.reset(token)


# The account of each post an activity of this process read lately (post id -> account id), so that every line
# about the post names its account: activities know their post from the workflow id, not its account.
_ACCOUNTS: OrderedDict[int, int] = OrderedDict()
_ACCOUNTS_KEPT = 10_000
_ACCOUNTS_LOCK = threading.Lock()


def remember_account(post_id: int, account_id: int) -> None:
    """Called where an activity reads a post: later lines about the post carry its account id."""
    with _ACCOUNTS_LOCK:
        _ACCOUNTS[post_id] = account_id
        _ACCOUNTS.move_to_end(post_id)
        while len(_ACCOUNTS) > _ACCOUNTS_KEPT:
            _ACCOUNTS.popitem(last=False)


def _account_of(post_id: object) -> int | None:
    if not isinstance(post_id, int):
        return None
    with _ACCOUNTS_LOCK:
        return _ACCOUNTS.get(post_id)


class ContextFilter(logging.Filter):
    """Sets every context field on the record (None when unknown), so that both formats can show them."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields: dict[str, Any] = dict.fromkeys(CONTEXT_FIELDS)
        fields.update(_temporal_context())
        live = _live.get()
        if live is not None:
            fields.update((name, live[name]) for name in CONTEXT_FIELDS if live.get(name) is not None)
        fields.update(_context.get())
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            fields["trace_id"] = format(span.trace_id, "032x")
            fields["span_id"] = format(span.span_id, "016x")
        if fields["post_id"] is None and isinstance(fields["workflow_id"], str):
            match = _POST_WORKFLOW.match(fields["workflow_id"])
            if match:
                fields["post_id"] = int(match.group(1))
        if fields["account_id"] is None:
            fields["account_id"] = _account_of(fields["post_id"])
        for name, value in fields.items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def _temporal_context() -> dict[str, Any]:
    if activity.in_activity():
        info = activity.info()
        return {
            "workflow_id": info.workflow_id,
            "run_id": info.workflow_run_id,
            "activity": info.activity_type,
        }
    if workflow.in_workflow():
        winfo = workflow.info()
        fields: dict[str, Any] = {"workflow_id": winfo.workflow_id, "run_id": winfo.run_id}
        account = winfo.typed_search_attributes.get(ACCOUNT_ID)  # set at the start of a post's workflow
        if account is not None and account.isdigit():
            fields["account_id"] = int(account)
        return fields
    return {}


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


class RedactingFilter(logging.Filter):
    """Renders the message (and any traceback) once, masked; the formatters then use the masked text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class ExpectedErrorFilter(logging.Filter):
    """An ApplicationError was raised on purpose, typed (a Graph error the activity classified, a refusal): the
    SDK's "activity failed" lines show its type and message, not a traceback. Anything else keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ApplicationError):
            record.msg = f"{record.getMessage()}: {error.type}: {error.message}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message  key=value ...`` with the context fields that are known."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extras = " ".join(
            f"{name}={value}"
            for name in CONTEXT_FIELDS
            if name not in ("span_id", "trace_id") and (value := getattr(record, name, None)) is not None
        )
        return f"{line}  {extras}" if extras else line


class _JsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # Unknown context fields are left out rather than written as null on every line.
        return {key: value for key, value in log_data.items() if value is not None}


def json_formatter() -> logging.Formatter:
    return _JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


_OURS = "chronogram_handler"


def configure_logging(settings: Settings) -> logging.Handler:
    """The process's root handler, on stderr, in the configured format; returns it (tests add their own stream)."""
    handler = logging.StreamHandler(sys.stderr)
    install_handler(handler, settings.log_format)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _OURS, False):  # configured again (a second app in one process): replaced
            root.removeHandler(existing)
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # A line per Graph API call (six per post) buries the process's own lines; each call is counted in the
    # metrics, and is a span of the post's trace.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


def install_handler(handler: logging.Handler, log_format: LogFormat) -> None:
    """Give ``handler`` the context, the masking and the format."""
    handler.addFilter(ContextFilter())
    handler.addFilter(ExpectedErrorFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(json_formatter() if log_format is LogFormat.JSON else TextFormatter())


def log_outcome(outcome: Outcome) -> None:
    """The one INFO line of a post's outcome, once its transaction committed (a listener of
    ``chronogram.observability.metrics.install_transition_metrics``)."""
    change = outcome.change
    fields: dict[str, Any] = {"post_id": change.post_id, "account_id": outcome.account_id}
    with bind(**fields):
        if change.to_status is PostStatus.PUBLISHED:
            lag = _lag_seconds(outcome)
            outcomes.info(
                "post %s published, %s after its publish time",
                change.post_id,
                f"{lag:.1f} s" if lag is not None else "unknown time",
                extra={"status": change.to_status.value, "lag_seconds": lag},
            )
        elif change.to_status is PostStatus.FAILED:
            code = change.error_code.value if change.error_code else None
            reason = change.message
            outcomes.info(
                "post %s failed: %s",
                change.post_id,
                reason if code and reason.startswith(code) else f"{code or 'unknown error'}: {reason}",
                extra={"status": change.to_status.value, "error_code": code, "reason": reason},
            )
        else:
            # Who: the API binds the requesting user (user_id) to the request's lines; the worker's cancellations
            # are the workflow ending on a cancel signal (the user's line came from the API) or an account removed.
            outcomes.info(
                "post %s cancelled: %s",
                change.post_id,
                change.message,
                extra={"status": change.to_status.value, "reason": change.message},
            )


def _lag_seconds(outcome: Outcome) -> float | None:
    """From the publish time to when the post went live (Instagram's answer), else to when it was marked so."""
    if outcome.publish_at is None:
        return None
    zone = outcome.change.occurred_at.tzinfo
    publish_at = outcome.publish_at
    if publish_at.tzinfo is None:
        publish_at = publish_at.replace(tzinfo=zone)
    live = outcome.published_at or outcome.change.occurred_at
    if live.tzinfo is None:
        live = live.replace(tzinfo=zone)
    return round((live - publish_at).total_seconds(), 3)
