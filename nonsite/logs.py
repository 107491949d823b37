"""Structured logs for every process: key=value on a terminal, JSON lines when NONSITE_LOG_JSON=1."""
from __future__ import annotations

import logging
import os
import re
import sys
import time

import structlog


def setup_logging(level: str | None = None, json_lines: bool | None = None) -> None:
    level_name = (level or os.environ.get("NONSITE_LOG_LEVEL", "INFO")).upper()
    as_json = json_lines if json_lines is not None else os.environ.get("NONSITE_LOG_JSON") == "1"
    renderer = structlog.processors.JSONRenderer(ensure_ascii=False) if as_json else \
        structlog.dev.ConsoleRenderer(colors=False)
    logging.basicConfig(level=level_name, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    for chatty in ("kafka", "aiokafka", "faust", "mode", "ultralytics"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(level_name)))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level_name)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    thin_kafka_client_logs(logging.getLogger())


class RepeatFilter(logging.Filter):
    """Lets one of a kind of Kafka-client message through per ``interval_s``, with how many were held back.

    With the broker down, aiokafka logs an error on every retry of every client, several a second: a worker
    left so wrote megabytes in minutes and buried everything else.  A message's kind is its logger, level and
    text with the numbers taken out; only the loggers named in ``prefixes`` are thinned.

    Example::

        >>> thin = RepeatFilter(interval_s=30)
        >>> record = logging.LogRecord("aiokafka.conn", logging.ERROR, "", 0, "node 1 down", None, None)
        >>> thin.filter(record), thin.filter(record)
        (True, False)
    """

    def __init__(self, interval_s: float = 30.0, prefixes: tuple[str, ...] = ("aiokafka", "kafka")):
        super().__init__()
        self.interval_s, self.prefixes = interval_s, prefixes
        self.last: dict[tuple[str, int, str], tuple[float, int]] = {}  # kind -> (when let through, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        kind = (record.name, record.levelno, _DIGITS.sub("#", record.getMessage())[:200])
        now = time.monotonic()
        let_through, held = self.last.get(kind, (float("-inf"), 0))
        if now - let_through < self.interval_s:
            self.last[kind] = (let_through, held + 1)
            return False
        if len(self.last) > 1000:  # kinds of messages are few; this only bounds the memory
            self.last.clear()
        self.last[kind] = (now, 0)
        if held:
            record.msg, record.args = f"{record.getMessage()} (and {held} more like it in {self.interval_s:g} s)", ()
        return True


_DIGITS = re.compile(r"\d+")


def thin_kafka_client_logs(logger: logging.Logger, interval_s: float = 30.0) -> None:
    """Put a :class:`RepeatFilter` on every handler of ``logger`` (the root logger: all records pass there)."""
    for handler in logger.handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(interval_s))
