"""The stream processor's own Prometheus metrics, beside Faust's sensor, in the app's registry.

Example::

    >>> m = StreamMetrics(CollectorRegistry())
    >>> m.messages_in.labels(topic="nonsite.detections").inc()
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from stream.domain.engine import Outputs

REVIEW_OUTCOMES = {"AWAITING_REVIEW": "awaiting", "DETECTED": "confirmed", "DISMISSED": "dismissed"}


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.messages_in = Counter("nonsite_stream_messages_in", "Messages read per topic", ["topic"],
                                   registry=registry)
        self.messages_out = Counter("nonsite_stream_messages_out", "Messages published per topic", ["topic"],
                                    registry=registry)
        self.dead_letters = Counter("nonsite_stream_dead_letters", "Messages sent to the dead-letter topic",
                                    ["source_topic"], registry=registry)
        self.sla_breaches = Counter("nonsite_stream_sla_breaches", "Cases escalated past their deadline",
                                    registry=registry)
        self.refused = Counter("nonsite_stream_refused_transitions", "Case steps refused as illegal",
                               registry=registry)
        self.duplicates = Counter("nonsite_stream_duplicate_inputs", "Inputs skipped as already applied",
                                  registry=registry)
        self.redone = Counter("nonsite_stream_redone_units",
                              "Cases-topic messages half applied before a crash and applied again",
                              registry=registry)
        self.skipped_refetched = Counter("nonsite_stream_refetched_inputs",
                                         "Cases-topic messages the Faust consumer skipped and the agent read itself",
                                         registry=registry)
        self.rewound = Counter("nonsite_stream_rewound_partitions",
                               "Partitions whose fetched records the Faust consumer did not deliver, sought back "
                               "to them (stream/runtime/faust_fixes.py)", registry=registry)
        self.resent = Counter("nonsite_stream_resent_detections",
                              "Detections not newer than one applied for their violation (sent again): nothing counted",
                              registry=registry)
        self.dropped_ends = Counter("nonsite_stream_dropped_ends",
                                    "Detection ends no open case took (case_closed: its case had closed; "
                                    "no_case: no case had its violation)",
                                    ["reason"], registry=registry)
        self.open_cases = Gauge("nonsite_stream_open_cases", "Open cases by state", ["district", "state"],
                                registry=registry)
        self.reviews = Counter("nonsite_stream_reviews", "Alarms under operator review: raised (awaiting), "
                               "confirmed, dismissed", ["outcome"], registry=registry)
        self.consumer_lag = Gauge("nonsite_stream_consumer_lag", "End offset minus read offset",
                                  ["topic", "partition"], registry=registry)

    def count_outputs(self, out: Outputs, counters: dict) -> None:
        """``counters``: topic role -> the ``messages_out`` child of that topic."""
        if out.skipped:
            self.duplicates.inc(out.skipped)
        if out.resent:
            self.resent.inc(out.resent)
        for reason, count in out.dropped_ends.items():
            self.dropped_ends.labels(reason=reason).inc(count)
        for role, count in (("incidents", out.snapshot_count), ("tasks", len(out.tasks)),
                            ("case_events", len(out.case_events)), ("alerts", len(out.alerts)),
                            ("dead_letter", len(out.dead_letters))):
            if count:
                counters[role].inc(count)
        for event in out.case_events:
            if not event.applied:
                self.refused.inc()
            elif event.to_state == "ESCALATED":
                self.sla_breaches.inc()
            elif event.from_state == "AWAITING_REVIEW" or event.to_state == "AWAITING_REVIEW":
                self.reviews.labels(outcome=REVIEW_OUTCOMES.get(event.to_state, "other")).inc()
        for letter in out.dead_letters:
            self.dead_letters.labels(source_topic=letter.topic).inc()
