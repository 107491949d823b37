"""The lifecycle of every topic: how long it keeps its records, and whether it keeps only each key's latest.

One policy for every process that creates or checks topics (the worker at its start, ``nonsite kafka
start|topics``, the demo, the docker deployment's ``topics`` service); the reasons are in docs/topics.md.

* the audit log (case events), the officers' submissions (feedback) and the tasks are kept forever, or
  ``kafka.retention.legal_years`` when set (366 days a year: a leap year never shortens the period);
* the final case snapshots (incidents) are compacted by incident id: each case's latest snapshot is
  kept forever, or that legal period after its last change;
* the worker's state changelog is compacted and never deleted (the state is rebuilt from it);
* camera status is compacted by camera id, its segments rolled daily: history is short, and each
  camera's last status is kept; so is each camera's config on the cameras topic (detector scale-out);
* detections (and the worker's cases topic, and Faust's leader topic) ``detections_days``, alerts
  ``alerts_days``, dead letters ``dead_letter_days``.

Every topic also gets ``retention.bytes=-1``: time decides, never a size a broker default might set.

Example::

    >>> from nonsite.config.system import RetentionSettings
    >>> lifecycle("case_events", RetentionSettings()).configs()["retention.ms"]
    '-1'
    >>> lifecycle("incidents", RetentionSettings(legal_years=10)).configs()["cleanup.policy"]
    'compact,delete'
    >>> lifecycle("detections", RetentionSettings()).configs()["retention.ms"]
    '604800000'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from nonsite.config import City
from nonsite.config.system import RetentionSettings

DAY_MS = 86_400_000
LEGAL_YEAR_DAYS = 366
FOREVER = -1  # retention.ms that never deletes
STATE_TABLE = "case_state"  # the worker's one Faust table (stream.state.tables), its changelog a topic here
CLEANUP = "cleanup.policy"
RETENTION_MS = "retention.ms"
RETENTION_BYTES = "retention.bytes"
SEGMENT_MS = "segment.ms"
# the worker's internal topics; the others are the fields of kafka.topics (nonsite.config.system.Topics)
INTERNAL_KINDS = ("cases", "changelog", "leader")
# kept forever or for the legal period: their life is never shortened at start without being asked
KEPT_KINDS = ("case_events", "feedback", "tasks", "incidents", "changelog")


@dataclass(frozen=True)
class Lifecycle:
    """A topic's cleanup policy and retention; ``segment_ms`` when compaction must not wait for the default week."""

    cleanup_policy: str  # "delete", "compact" or "compact,delete"
    retention_ms: int  # FOREVER (-1) or milliseconds
    segment_ms: Optional[int] = None

    def configs(self) -> dict[str, str]:
        """The topic settings, as Kafka names them."""
        settings = {CLEANUP: self.cleanup_policy, RETENTION_MS: str(self.retention_ms), RETENTION_BYTES: "-1"}
        if self.segment_ms is not None:
            settings[SEGMENT_MS] = str(self.segment_ms)
        return settings


def legal_period_ms(retention: RetentionSettings) -> int:
    """``kafka.retention.legal_years`` in milliseconds, or FOREVER when it is null."""
    if retention.legal_years is None:
        return FOREVER
    return retention.legal_years * LEGAL_YEAR_DAYS * DAY_MS


def lifecycle(kind: str, retention: RetentionSettings) -> Lifecycle:
    """The lifecycle of a topic of ``kind``: a field of ``kafka.topics`` or one of :data:`INTERNAL_KINDS`."""
    legal = legal_period_ms(retention)
    inputs = retention.detections_days * DAY_MS
    policies = {
        "case_events": Lifecycle("delete", legal),
        "feedback": Lifecycle("delete", legal),
        # keyed by incident id, and a case may have several tasks (reassigned, reopened): compacting would
        # keep only its last one, which the web and the reports read all of
        "tasks": Lifecycle("delete", legal),
        "incidents": Lifecycle("compact" if legal == FOREVER else "compact,delete", legal),
        "camera_status": Lifecycle("compact", FOREVER, segment_ms=DAY_MS),
        "cameras": Lifecycle("compact", FOREVER, segment_ms=DAY_MS),  # each camera's latest config, kept
        "detections": Lifecycle("delete", inputs),
        "alerts": Lifecycle("delete", retention.alerts_days * DAY_MS),
        "dead_letter": Lifecycle("delete", retention.dead_letter_days * DAY_MS),
        "cases": Lifecycle("delete", inputs),
        "changelog": Lifecycle("compact", FOREVER),
        "leader": Lifecycle("delete", inputs),
    }
    if kind not in policies:
        raise KeyError(f"no lifecycle for topic kind {kind!r}; add it to nonsite.kafka.lifecycle and docs/topics.md")
    return policies[kind]


# ---------------------------------------------------------------- the project's topics
@dataclass(frozen=True)
class TopicSpec:
    """A topic the project needs: its partitions and its own settings (min.insync.replicas is added)."""

    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)
    kind: str = ""  # a field of kafka.topics or one of INTERNAL_KINDS; "" for a topic outside the policy


def cases_topic_name(city: City) -> str:
    """The worker's internal topic: every input, re-keyed by district."""
    return f"{city.stream.app_id}.cases"


def changelog_topic_name(city: City, table: str) -> str:
    """A Faust table's changelog, named as Faust names it."""
    return f"{city.stream.app_id}-{table}-changelog"


def leader_topic_name(city: City) -> str:
    """Faust's leader election topic (``faust.assignor.leader_assignor``), one partition."""
    return f"{city.stream.app_id}-__assignor-__leader"


def project_topics(city: City) -> list[TopicSpec]:
    """Every topic of the project, the worker's internal ones included, with its partitions and lifecycle.

    All have ``kafka.partitions`` partitions (the Faust tables need the same count as the cases
    topic), but Faust's leader topic, which has one, and the cameras topic, ``detector.sharing.shards``.
    """
    retention, partitions = city.kafka.retention, city.kafka.partitions
    named = dict(city.kafka.topics.all())
    named.update({"cases": cases_topic_name(city), "changelog": changelog_topic_name(city, STATE_TABLE),
                  "leader": leader_topic_name(city)})
    count = {"leader": 1, "cameras": city.detector.sharing.shards}  # the detectors' shards (detector/sharing.py)
    return [TopicSpec(name, count.get(kind, partitions), lifecycle(kind, retention).configs(), kind)
            for kind, name in named.items()]
