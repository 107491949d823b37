"""Detections: dedup into the case of the same violation or site, merge, or file a new case (立案)."""
from __future__ import annotations

from typing import Optional

from contract import Detection, Incident
from stream.domain.casefile import AWAITING_REVIEW, CLOSED, DETECTED, CaseFile
from stream.domain.dedup import SiteCase, match_detection, site_key, spot
from stream.domain.dispatch import deadline_of
from stream.domain.engine.case import Case, _plain, _shas, incident_id_for, stored_incident
from stream.domain.engine.outputs import Outputs, _count_dropped
from stream.domain.engine.steps import SYSTEM
from stream.domain.engine.review import Review
from stream.domain.engine.timers import Timers
from stream.domain.engine.timeutil import epoch_of_new, iso_of, later_iso, to_epoch
from stream.domain.intake import Envelope
from stream.domain.offences import offender_keys, plate_key, prior_offences, record_offence
from stream.domain.verify import Presence, observe_detection


def merged_evidence(held: list[dict], new: list[dict], better: bool) -> list[dict]:
    """The case's evidence after a detection brought ``new``: a kind the case lacks is added (a plate
    picture read after the start); a kind it has is replaced only by a ``better`` (more confident) sighting.

    >>> merged_evidence([{"kind": "annotated", "sha256": "a"}], [{"kind": "plate", "sha256": "p"}], better=False)
    [{'kind': 'annotated', 'sha256': 'a'}, {'kind': 'plate', 'sha256': 'p'}]
    """
    incoming = {e["kind"]: e for e in new}
    kept = [incoming.pop(e["kind"]) if better and e["kind"] in incoming else e for e in held]
    held_kinds = {e["kind"] for e in held}
    return kept + [e for kind, e in incoming.items() if kind not in held_kinds]


def _kinds_held(held: list[dict], new: list) -> bool:
    """Whether the case already holds a picture of every kind ``new`` brings (then nothing changes unless
    the new sighting is better)."""
    for evidence in new:  # loops, not sets or generators: both lists hold a picture or two
        kind = evidence.kind
        for e in held:
            if e["kind"] == kind:
                break
        else:
            return False
    return True


class DetectionRules(Timers, Review):
    def _on_detection(self, env: Envelope, d: Detection, out: Outputs) -> None:
        now = epoch_of_new(d.observed_at)
        seen = iso_of(d.observed_at, now)
        known_id = self.tables.violation_cases.get(d.violation_id)
        case = self.load(known_id)
        if case is not None and case.is_resend(d, now, seen):
            out.resent += 1
            return
        if case is not None and case.file.state == CLOSED:
            if d.kind == "end":
                _count_dropped(out, "case_closed")
                return
            case = None
        recurrence_of = None
        if case is None:
            if d.kind == "end":
                _count_dropped(out, "no_case")  # the end of a violation no open case holds: nothing to do
                return
            first = to_epoch(d.first_seen)
            match = match_detection(d.scenario, d.camera_id, d.zone_id, first, now, self.map, self._site_case,
                                    self.settings.dedup_window_s)
            case = self.load(match.incident_id) or self._case_of_plate(d, first)
            recurrence_of = match.recurrence_of
        if case is None:
            case = self._new_case(env, d, now, seen, recurrence_of, out)
        else:
            self._merge(case, d, now, seen, known=known_id == case.id)
            self._judge(case, now, env, out, timers=False)
        case.mark(d, seen)
        self.save(case, out)

    def _merge(self, case: Case, d: Detection, now: float, seen: str, known: bool = False) -> None:
        """Add a detection (observed at ``now``, ``seen`` in canonical text) to the case; ``known``: its
        violation id already belongs to this case."""
        inc = case.incident
        inc["detections"] = inc.get("detections", 0) + 1
        inc["last_seen"] = later_iso(seen, inc["last_seen"])
        inc["updated_at"] = later_iso(seen, inc["updated_at"])
        if d.camera_id not in inc["cameras"]:
            inc["cameras"] = inc["cameras"] + [d.camera_id]
        if d.evidence:
            better = d.confidence > case.best_confidence
            if better or not _kinds_held(inc["evidence"], d.evidence):
                case.best_confidence = max(case.best_confidence, d.confidence)
                inc["evidence"] = merged_evidence(inc["evidence"], [_plain(e) for e in d.evidence], better)
        if d.plate and not inc.get("plate"):
            self._learn_plate(case, d.plate, now)
        case.presence = observe_detection(case.presence, spot(d.camera_id, d.zone_id), d.violation_id, d.kind, now)
        if not known:
            self.tables.violation_cases[d.violation_id] = case.id
            key = site_key(d.scenario, d.camera_id, d.zone_id)
            if self.tables.site_cases.get(key) != case.id and case.file.is_open:
                self.tables.site_cases[key] = case.id

    def _new_case(self, env: Envelope, d: Detection, now: float, seen: str, recurrence_of: Optional[str],
                  out: Outputs) -> Case:
        camera = self.city.camera(d.camera_id)
        scenario = self.city.scenario(d.scenario)
        anchor = camera.anchor(d.zone_id)
        incident_id = incident_id_for(env.district, d.event_id)
        keys = offender_keys(d.camera_id, d.zone_id, d.plate, d.shop_id)
        review = scenario is not None and scenario.review_mode == "operator"
        prior = 0 if review else self._record_offence(keys, incident_id, now)  # a reviewed alarm: at its filing
        incident = Incident(incident_id=incident_id, camera_id=d.camera_id, scenario=d.scenario, zone_id=d.zone_id,
                            grid_id=camera.grid, state=DETECTED, first_seen=d.first_seen, last_seen=d.observed_at,
                            updated_at=d.observed_at, detections=0, cameras=[], violation_ids=[],
                            lat=anchor.lat, lon=anchor.lon, address=camera.location.address,
                            priority=scenario.priority if scenario else 3, first_offence=prior == 0,
                            prior_offences=prior, recurrence_of=recurrence_of, plate=d.plate)
        case = Case(incident=stored_incident(incident), file=CaseFile(incident_id=incident_id), presence=Presence(),
                    district=env.district, filed_at=now, deadline=deadline_of(now, scenario),
                    offender_keys=keys)
        self._merge(case, d, now, seen)
        self.tables.site_cases[site_key(d.scenario, d.camera_id, d.zone_id)] = incident_id
        reason = "recurrence (回潮) of " + recurrence_of if recurrence_of else "new violation"
        where = f"{d.scenario} at {camera.name} ({d.zone_id or 'frame'})"
        ids = self._open_ids(env.district)
        ids.append(incident_id)
        self.tables.open_cases[env.district] = ids
        if review:
            self._await_review(case, where, now, env.source, reason, _shas(d.evidence), out)
            return case
        if prior == 0:
            reason += "; first offence (首违不罚): education or warning"
        self._step(case, DETECTED, "detect", SYSTEM, now, env.source, out, reason=reason,
                   evidence=_shas(d.evidence))
        self._alert(out, "new_incident", "info", now, where, case, suffix="new")
        self._dispatch(case, now, env.source, out)
        return case

    def _learn_plate(self, case: Case, plate: str, now: float) -> None:
        """The detector read the vehicle's plate after the case was filed: the case is now the plate's
        offence too, and the plate's earlier offences count (首违不罚 is per vehicle, across all spots)."""
        inc, key = case.incident, plate_key(plate)
        inc["plate"] = plate
        window = self.settings.first_offence_window_days
        case.offender_keys = case.offender_keys + [key]
        if case.file.state == AWAITING_REVIEW:
            return  # not an offence yet: recorded under every key when confirmed
        prior = prior_offences(self.tables.offence_history.get, case.offender_keys, now, window, exclude=case.id)
        self.tables.offence_history[key] = record_offence(self.tables.offence_history.get(key), case.id, now, window)
        inc["prior_offences"] = max(inc.get("prior_offences", 0), prior)
        inc["first_offence"] = inc["prior_offences"] == 0

    def _case_of_plate(self, d: Detection, first: float) -> Optional[Case]:
        """The open case of the same vehicle (same plate, same scenario) seen within the dedup window:
        another camera's view of it."""
        if not d.plate:
            return None
        history = self.tables.offence_history.get(plate_key(d.plate)) or []
        case = self.load(history[-1][1]) if history else None
        if (case is None or not case.file.is_open or case.incident["scenario"] != d.scenario
                or first > to_epoch(case.incident["last_seen"]) + self.settings.dedup_window_s):
            return None
        return case

    def _site_case(self, key: str) -> Optional[SiteCase]:
        case = self.load(self.tables.site_cases.get(key))
        if case is None:
            return None
        return SiteCase(case.id, case.incident["scenario"], case.file.is_open, case.file.state,
                        to_epoch(case.incident["last_seen"]), case.file.state == CLOSED)
