"""The Faust worker as ``nonsite worker`` runs it: it stops when told to, even while Kafka is down.

Faust stops gracefully on SIGTERM or SIGINT: it flushes its producer and commits its offsets.  With the
broker gone, both wait on retries, and a worker was seen ignoring SIGTERM for over 35 s (issue 11).  Here
a signal also starts a deadline (``stop_within_s``, 8 s by default, under the 10 s a supervisor such as
systemd or Docker waits before SIGKILL); past it the process exits.  Nothing is lost: Kafka keeps the
inputs whose offsets were not committed, the next start reads them again, and the engine counts an input
it has already applied only once (its id).  The Kafka clients' repeated errors are thinned to one per
kind every 30 s (:class:`nonsite.logs.RepeatFilter`).

Example::

    StoppableWorker(app, loglevel="info", redirect_stdouts=False).execute_from_commandline()
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

import faust

from nonsite.logs import thin_kafka_client_logs

STOP_WITHIN_S = 8.0


class StoppableWorker(faust.Worker):
    def __init__(self, *args: Any, stop_within_s: float = STOP_WITHIN_S, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stop_within_s = stop_within_s
        self._deadline: threading.Timer | None = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        thin_kafka_client_logs(logger)

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        if self._deadline is None:
            self._deadline = threading.Timer(self.stop_within_s, _exit_now, args=(signum, self.stop_within_s))
            self._deadline.daemon = True
            self._deadline.start()
        super()._schedule_shutdown(signum)


def _exit_now(signum: signal.Signals, waited_s: float) -> None:
    """The graceful stop took too long (Kafka not answering): say so and leave; Kafka keeps the rest."""
    print(f"nonsite worker: {signal.Signals(signum).name} {waited_s:g} s ago and the stop is still waiting on "
          "Kafka; exiting now (inputs not yet committed are read again at the next start)", file=sys.stderr,
          flush=True)
    logging.shutdown()
    os._exit(0)
