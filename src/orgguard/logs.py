"""The service's log lines: JSON (one object per line) or plain text, on stderr.

Every line names its time, level, logger and message; a line written while a
request is served also carries that request's id (``request_id``), set by the
``Edge`` middleware through ``REQUEST_ID``. Fields passed with ``extra=`` (a
write's revision, a refusal's missing permissions) become fields of the JSON
object, and ``key=value`` pairs after the message in the text format.

Only entry points call ``configure``; modules log through their own
``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import IO, Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

_JSON_FIELDS = ["levelname", "name", "message"]
_RENAMED = {"levelname": "level", "name": "logger"}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# uvicorn adds its message again with terminal colours.
_LEFT_OUT = [*RESERVED_ATTRS, "color_message"]


class RequestIdFilter(logging.Filter):
    """Adds the id of the request being served, unless the line names one."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
        elif hasattr(record, "request_id"):
            del record.request_id  # no id: no field, rather than null
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with the line's own fields after the message; the
    time in UTC, as in the JSON lines (2026-12-03T16:33:40.872Z)."""

    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {}
        merge_record_extra(record, fields, reserved=_LEFT_OUT)
        line = super().format(record)
        if not fields:
            return line
        pairs = " ".join(f"{key}={value}" for key, value in fields.items())
        head, newline, traceback = line.partition("\n")
        return f"{head} {pairs}{newline}{traceback}"


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "text":
        return TextFormatter()
    # The traceback of an exception is the line's "exc_info" field.
    return JsonFormatter(
        _JSON_FIELDS,
        rename_fields=_RENAMED,
        reserved_attrs=_LEFT_OUT,
        timestamp="time",
        json_ensure_ascii=False,
    )


def configure(level: str, log_format: LogFormat) -> None:
    """Send every logger's lines (uvicorn's too: run it with ``log_config=None``)
    to stderr in one format. Like ``logging.basicConfig``, it leaves a root
    logger that already has handlers alone (a test runner's)."""
    logging.basicConfig(level=level.upper(), handlers=[make_handler(log_format)])
    logging.captureWarnings(True)  # Python's warnings too, as lines of py.warnings
    # Alembic describes its set-up at info on every start; orgguard logs the
    # one line that matters ("database schema upgraded from ... to ...").
    logging.getLogger("alembic").setLevel(max(logging.WARNING, _level(level)))


def _level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.INFO


def make_handler(
    log_format: LogFormat, stream: IO[str] | None = None
) -> logging.Handler:
    """A handler writing lines in ``log_format`` to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    return handler
