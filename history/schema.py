"""The system of record's tables (SQLAlchemy Core): cases, tasks, the audit log, evidence, uploads, revocations,
the access log, legal holds and purged evidence files.

Each table keeps the record as the topic carried it (``record``, JSON) beside the columns that are
searched, filtered or counted.  ``cases`` also holds the facts the statistics count (filing day, first
dispatch, deadline, closing time, rework), derived by :mod:`history.facts` whenever a case, one of its
tasks or one of its case events arrives, so a report is one ``GROUP BY``.  ``positions`` holds, per
consumer and partition, the next offset to read: written in the same transaction as the rows it
produced, so a restart resumes exactly there and a replay changes nothing.

Times are naive UTC ``DateTime`` on both SQLite and PostgreSQL; days are the city's local dates as
``YYYY-MM-DD`` text.  The migrations in ``history/migrations`` create exactly these tables (a test
compares them).

Example::

    >>> sorted(METADATA.tables)[:3]
    ['access_log', 'alerts', 'cameras']
"""
from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Boolean, Column, DateTime, Float, Index, Integer, MetaData, String, Table,
                        Text, text)

METADATA = MetaData()
ID = String(128)

cases = Table(
    "cases", METADATA,
    Column("incident_id", ID, primary_key=True),
    Column("scenario", ID, nullable=False),
    Column("camera_id", ID, nullable=False),
    Column("grid_id", ID, nullable=False),
    Column("zone_id", ID),
    Column("state", String(32), nullable=False),
    Column("officer_id", ID),
    Column("plate", String(16)),
    Column("plate_key", String(64)),
    Column("first_seen", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("filed_day", String(10), nullable=False),
    Column("dispatched_at", DateTime),
    Column("deadline_at", DateTime),
    Column("closed_at", DateTime),
    Column("minutes_to_close", Float),
    Column("rejected", Boolean, nullable=False, default=False),
    Column("reworked", Boolean, nullable=False, default=False),
    Column("escalated", Boolean, nullable=False, default=False),
    Column("record", JSON, nullable=False),
    Index("ix_cases_filed_day", "filed_day"),
    Index("ix_cases_camera", "camera_id", "filed_day"),
    Index("ix_cases_grid", "grid_id", "filed_day"),
    Index("ix_cases_state", "state", "updated_at"),
    Index("ix_cases_plate_key", "plate_key"),
)

tasks = Table(
    "tasks", METADATA,
    Column("task_id", ID, primary_key=True),
    Column("incident_id", ID, nullable=False),
    Column("officer_id", ID, nullable=False),
    Column("status", String(16), nullable=False),
    Column("assigned_at", DateTime, nullable=False),
    Column("deadline", DateTime),
    Column("record", JSON, nullable=False),
    Index("ix_tasks_incident", "incident_id", "assigned_at"),
    Index("ix_tasks_officer", "officer_id", "status"),
)

case_events = Table(
    "case_events", METADATA,
    Column("event_id", ID, primary_key=True),
    Column("incident_id", ID, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("action", ID, nullable=False),
    Column("applied", Boolean, nullable=False),
    Column("to_state", String(32)),
    Column("record", JSON, nullable=False),
    Index("ix_case_events_incident", "incident_id", "seq"),
)

# what the case processor answered to one feedback, found by its id or its position on the feedback topic
outcomes = Table(
    "outcomes", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lookup_key", String(256), nullable=False),
    Column("source_id", String(256), nullable=False),  # the case event or dead letter that gave the verdict
    Column("applied", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("action", ID, nullable=False),
    Column("incident_id", ID, nullable=False),
    Column("to_state", String(32)),
    Index("ux_outcomes_key_source", "lookup_key", "source_id", unique=True),
)

evidence = Table(
    "evidence", METADATA,
    Column("sha256", String(64), primary_key=True),
    Column("incident_id", ID, primary_key=True),
    Index("ix_evidence_incident", "incident_id"),
)

cameras = Table(
    "cameras", METADATA,
    Column("camera_id", ID, primary_key=True),
    Column("observed_at", DateTime, nullable=False),
    Column("record", JSON, nullable=False),
)

alerts = Table(
    "alerts", METADATA,
    Column("alert_id", ID, primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("record", JSON, nullable=False),
    Index("ix_alerts_at", "at"),
)

uploads = Table(
    "uploads", METADATA,
    Column("sha256", String(64), primary_key=True),
    Column("person_id", ID, primary_key=True),
    Column("at", DateTime, nullable=False),
)

revocations = Table(
    "revocations", METADATA,
    Column("token_hash", String(64), primary_key=True),
    Column("expires_at", DateTime, nullable=False),
)

access_log = Table(
    "access_log", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("person_id", ID, nullable=False),
    Column("role", String(32), nullable=False),
    Column("what", String(32), nullable=False),  # evidence | export
    Column("target", String(128), nullable=False),  # the sha256 or the incident id
    Column("incident_id", ID),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_access_log_target", "target"),
    Index("ix_access_log_at", "at"),
    Index("ix_access_log_person", "person_id", "at"),
    Index("ix_access_log_incident", "incident_id", "at"),
)

# legal holds (history.custody): a case with a row not yet released is never purged
holds = Table(
    "holds", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", ID, nullable=False),
    Column("held_by", ID, nullable=False),
    Column("held_at", DateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("released_by", ID),
    Column("released_at", DateTime),
    Column("release_reason", Text),
    Index("ix_holds_incident", "incident_id", "held_at"),
    # at most one hold in force per case, even when two supervisors place one at the same moment
    Index("ux_holds_in_force", "incident_id", unique=True, sqlite_where=text("released_at IS NULL"),
          postgresql_where=text("released_at IS NULL")),
)

# evidence files deleted by the retention rule (history.retention): their hashes stay in ``evidence`` and the
# records; ``deleted_at`` is empty while the file's deletion is still to be done (a run that stopped halfway)
purged_files = Table(
    "purged_files", METADATA,
    Column("sha256", String(64), primary_key=True),
    Column("purged_at", DateTime, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("deleted_at", DateTime),
    Index("ix_purged_files_deleted", "deleted_at"),
)

positions = Table(
    "positions", METADATA,
    Column("consumer", String(64), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

# the configuration changed from the web (the zone editor): who, when, which file and entry, before -> after
config_changes = Table(
    "config_changes", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("person_id", ID, nullable=False),
    Column("role", String(32), nullable=False),
    Column("file", String(64), nullable=False),  # cameras.yaml
    Column("target", ID, nullable=False),  # the camera id
    Column("what", String(32), nullable=False),  # zones: its zones and privacy zones
    Column("before", JSON, nullable=False),
    Column("after", JSON, nullable=False),
    Index("ix_config_changes_target", "target", "at"),
)

# labelled crops of camera spots (history.spot_labels): a case's decision, the zone's box cut from its evidence
spot_labels = Table(
    "spot_labels", METADATA,
    Column("event_id", ID, primary_key=True),  # the case event that decided it
    Column("label", String(8), primary_key=True),  # present | absent
    Column("at", DateTime, nullable=False),  # when it was decided
    Column("labelled_by", ID, nullable=False),
    Column("action", ID, nullable=False),  # confirm | dismiss | reject | verify
    Column("incident_id", ID, nullable=False),
    Column("camera_id", ID, nullable=False),
    Column("zone_id", ID, nullable=False),
    Column("scenario", ID, nullable=False),
    Column("crop_sha256", String(64), nullable=False),
    Column("source_sha256", String(64), nullable=False),  # the evidence picture it was cut from
    Column("box", JSON, nullable=False),  # the zone's box (normalised) as cut
    Index("ix_spot_labels_spot", "camera_id", "zone_id", "scenario", "at"),
)

# every spot head trained from them (nonsite spots train): its hash, what it learnt from, how well it does
spot_models = Table(
    "spot_models", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("trained_by", ID, nullable=False),
    Column("camera_id", ID, nullable=False),
    Column("zone_id", ID, nullable=False),
    Column("scenario", ID, nullable=False),
    Column("model_hash", String(64), nullable=False),
    Column("label_counts", JSON, nullable=False),
    Column("cv_precision", Float),
    Column("cv_recall", Float),
    Column("cv_accuracy", Float),
    Column("ready", Boolean, nullable=False),
    Index("ix_spot_models_spot", "camera_id", "zone_id", "scenario", "at"),
)
