"""``nonsite web``: serve the operator surfaces with uvicorn."""
from __future__ import annotations

import argparse
from typing import Optional

import uvicorn

from nonsite.config import City


def serve(args: argparse.Namespace, city: Optional[City]) -> int:
    assert city is not None
    from web.app import create_app

    host = args.host or city.web.host
    port = args.port or city.web.port
    uvicorn.run(create_app(city), host=host, port=port, log_level="info", access_log=False)
    return 0
