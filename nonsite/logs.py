"""Structured logs for every process: key=value on a terminal, JSON lines when NONSITE_LOG_JSON=1."""
from __future__ import annotations

import logging
import os
import sys

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
