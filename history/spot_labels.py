"""Labelled crops of camera spots: what people decided about a case, as a training example of its spot.

A spot is one camera's zone for one scenario.  Every decision about a case says whether its violation was
really there, and the case's evidence shows the spot at that moment, so each one becomes a labelled crop
(issue 10, item 4; docs/detector.md, "The learning loop"):

* ``confirm`` (an operator's review) -> present, on the case's first evidence picture;
* ``dismiss`` (an operator's review) and ``reject`` (an officer's false alarm) -> absent, on that picture;
* ``verify`` to ``VERIFIED`` (the camera saw it gone after an officer resolved it) -> present on the first
  picture, and absent on the picture the detector took when the violation ended (evidence kind ``clean``).

Only applied steps count (a refused rejection decided nothing).  The writer calls :class:`SpotLabeller` with
the case events it has just stored, in the transaction of the batch; the crop itself is cut by the web
(``web/spot_labels.py``: it has the cameras' zones and the evidence files) through ``cut``.  A decision
recorded twice (a replay) is one row: the key is (case event, label).

Example::

    >>> from contract import CaseEvent
    >>> event = CaseEvent(event_id="e1", incident_id="i1", seq=3, at="2026-12-01T08:00:00Z", actor="ops",
    ...                   action="reject", from_state="DISPATCHED", to_state="REJECTED", reason="a bench")
    >>> decisions(event, {"evidence": [{"kind": "first_seen", "sha256": "ab" * 32}]})
    [Decision(label='absent', source_sha256='abababababababababababababababababababababababababababababababab')]
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional, Sequence

import structlog
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from contract import CaseEvent
from history import schema
from history.facts import naive_utc

log = structlog.get_logger("history.spot_labels")

PRESENT, ABSENT = "present", "absent"
CASE_PICTURE, GONE_PICTURE = "first_seen", "clean"  # evidence kinds: the violation seen; the spot once it ended
LABEL_OF = {"confirm": PRESENT, "dismiss": ABSENT, "reject": ABSENT}


@dataclass(frozen=True)
class Decision:
    """One label a case event gives its spot, and the evidence picture that shows it."""

    label: str
    source_sha256: str


@dataclass(frozen=True)
class Cut:
    """A crop stored in the evidence store, and the zone's box it was cut at (normalised)."""

    crop_sha256: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class SpotLabel:
    """One stored label (a row of ``spot_labels``)."""

    camera_id: str
    zone_id: str
    scenario: str
    label: str
    crop_sha256: str
    at: datetime
    labelled_by: str
    action: str
    incident_id: str

    @property
    def present(self) -> bool:
        return self.label == PRESENT


Cutter = Callable[[str, str, str], Optional[Cut]]  # (camera, zone, evidence sha256) -> the crop, or None


def picture(incident: dict[str, Any], kind: str) -> Optional[str]:
    """The sha256 of the case's evidence picture of ``kind``, if it has one."""
    return next((e["sha256"] for e in incident.get("evidence", []) if e.get("kind") == kind), None)


def decisions(event: CaseEvent, incident: dict[str, Any]) -> list[Decision]:
    """The labels ``event`` gives the case's spot (none for a step that decides nothing or a refused one)."""
    if not event.applied:
        return []
    wanted: list[tuple[str, str]] = []
    if event.action in LABEL_OF:
        wanted = [(LABEL_OF[event.action], CASE_PICTURE)]
    elif event.action == "verify" and event.to_state == "VERIFIED":
        wanted = [(PRESENT, CASE_PICTURE), (ABSENT, GONE_PICTURE)]
    found = [(label, picture(incident, kind)) for label, kind in wanted]
    return [Decision(label, sha) for label, sha in found if sha]


class SpotLabeller:
    """Turns stored case events into ``spot_labels`` rows; ``learns(scenario)`` says which scenarios have
    spot heads (the others' crops would never be used, so they are not kept)."""

    def __init__(self, cut: Cutter, learns: Callable[[str], bool], dialect: str = "sqlite"):
        self.cut, self.learns = cut, learns
        inserting = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.insert_label = inserting(schema.spot_labels).on_conflict_do_nothing()
        self.insert_link = inserting(schema.evidence).on_conflict_do_nothing()
        self.labelled = 0

    def __call__(self, connection: Connection, events: Sequence[CaseEvent]) -> None:
        """Label the spots of these (newly stored) case events, in the caller's transaction."""
        candidates = [e for e in events if e.applied and (e.action in LABEL_OF or e.action == "verify")]
        if not candidates:
            return
        cases = schema.cases.c
        records = dict(connection.execute(select(cases.incident_id, cases.record).where(
            cases.incident_id.in_({e.incident_id for e in candidates}))).all())
        rows, links = [], []
        for event in candidates:
            incident = records.get(event.incident_id)
            incident = json.loads(incident) if isinstance(incident, (str, bytes)) else incident
            if incident is None or not incident.get("zone_id") or not self.learns(incident["scenario"]):
                continue
            for decision in decisions(event, incident):
                cut = self.cut(incident["camera_id"], incident["zone_id"], decision.source_sha256)
                if cut is None:
                    continue  # the cutter said why in its log
                rows.append(_row(event, incident, decision, cut))
                links.append({"sha256": cut.crop_sha256, "incident_id": event.incident_id})
        if rows:
            connection.execute(self.insert_label, rows)
            connection.execute(self.insert_link, links)  # custody and retention: the crop belongs to its case
            self.labelled += len(rows)
            log.info("spot labels stored", labels=[(r["camera_id"], r["zone_id"], r["label"]) for r in rows])


def _row(event: CaseEvent, incident: dict[str, Any], decision: Decision, cut: Cut) -> dict[str, Any]:
    return {"event_id": event.event_id, "label": decision.label, "at": naive_utc(event.at),
            "labelled_by": event.actor, "action": event.action, "incident_id": event.incident_id,
            "camera_id": incident["camera_id"], "zone_id": incident["zone_id"], "scenario": incident["scenario"],
            "crop_sha256": cut.crop_sha256, "source_sha256": decision.source_sha256, "box": list(cut.box)}


# ------------------------------------------------------------------ reading them back, and the heads made of them
def labels(engine: Engine, camera_id: Optional[str] = None) -> list[SpotLabel]:
    """Every stored label (of one camera), oldest first."""
    table = schema.spot_labels.c
    query = select(table.camera_id, table.zone_id, table.scenario, table.label, table.crop_sha256, table.at,
                   table.labelled_by, table.action, table.incident_id).order_by(table.at, table.event_id)
    if camera_id is not None:
        query = query.where(table.camera_id == camera_id)
    with engine.connect() as connection:
        return [SpotLabel(*row) for row in connection.execute(query)]


def is_spot_crop(engine: Engine, sha256: str) -> bool:
    """Whether ``sha256`` is a labelled crop: cut from an original picture, so as unmasked as it is."""
    query = select(schema.spot_labels.c.crop_sha256).where(schema.spot_labels.c.crop_sha256 == sha256).limit(1)
    with engine.connect() as connection:
        return connection.execute(query).first() is not None


def record_model(engine: Engine, at: datetime, trained_by: str, camera_id: str, zone_id: str, scenario: str,
                 model_hash: str, label_counts: dict[str, int], precision: Optional[float],
                 recall: Optional[float], accuracy: Optional[float], ready: bool) -> None:
    """One trained spot head's version, in ``spot_models``."""
    with engine.begin() as connection:
        connection.execute(insert(schema.spot_models).values(
            at=at, trained_by=trained_by, camera_id=camera_id, zone_id=zone_id, scenario=scenario,
            model_hash=model_hash, label_counts=label_counts, cv_precision=precision, cv_recall=recall,
            cv_accuracy=accuracy, ready=ready))


def models(engine: Engine, camera_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Every trained spot head's version (of one camera), newest first."""
    table = schema.spot_models
    query = select(table).order_by(table.c.at.desc(), table.c.id.desc())
    if camera_id is not None:
        query = query.where(table.c.camera_id == camera_id)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]
