"""``nonsite web``: serve the operator surfaces with uvicorn."""
from __future__ import annotations

import argparse
from typing import Optional

import uvicorn

from nonsite.config import City
from nonsite.errors import CommandError


def serve(args: argparse.Namespace, city: Optional[City]) -> int:
    assert city is not None
    from web.app import create_app
    from web.bus import MissingTopics, check_topics

    try:
        check_topics(city)
    except MissingTopics as exc:
        raise CommandError(str(exc)) from None

    host = args.host or city.web.host
    port = args.port or city.web.port
    uvicorn.run(create_app(city), host=host, port=port, log_level="info", access_log=False,
                timeout_graceful_shutdown=3)  # live-wall streams never end on their own
    return 0
