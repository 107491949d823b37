"""What the routers share: the app's city and case store (the system of record), lookups that answer 404,
who uploaded a file, and sending one feedback to the case processor and waiting for its answer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from contract import Feedback, Incident, new_id, utc_now
from nonsite.config import City
from web.api.schemas import Outcome
from web.auth import Principal
from history.queries import CaseStore, Verdict

# answers of the feedback routes besides 200 (for the OpenAPI document)
OUTCOME_RESPONSES: dict[int | str, dict[str, Any]] = {202: {"model": Outcome}, 409: {"model": Outcome}}
OUTCOME_STATUS = {"applied": 200, "refused": 409, "pending": 202}


def city_of(request: Request) -> City:
    return request.app.state.city


def store_of(request: Request) -> CaseStore:
    return request.app.state.store


def known_incident(request: Request, incident_id: str) -> Incident:
    found = store_of(request).incident(incident_id)
    if found is None:
        raise HTTPException(404, f"incident_id: unknown incident '{incident_id}'")
    return found


def uploaded_by(request: Request, person_id: str, sha256: str) -> bool:
    """Whether ``person_id`` sent this file to POST /api/uploads."""
    return store_of(request).uploaded_by(person_id, sha256)


def new_feedback(who: Principal, incident_id: str, action: str, **fields: Any) -> Feedback:
    """A new feedback by ``who``, stamped now."""
    return Feedback(feedback_id=new_id(), incident_id=incident_id, action=action, actor=who.person_id, at=utc_now(),
                    **fields)


@dataclass(frozen=True)
class SentFeedback:
    actor: str
    incident_id: str
    action: str
    position: str


SENT_REMEMBERED = 10_000  # the latest feedbacks this server sent; older ones are found by id in the database


def remember_sent(sent: dict[str, SentFeedback], feedback_id: str, what: SentFeedback) -> None:
    """Keep what this server sent for GET /api/feedback/{id}, the latest SENT_REMEMBERED only (memory stays flat)."""
    sent[feedback_id] = what
    while len(sent) > SENT_REMEMBERED:
        del sent[next(iter(sent))]  # dicts keep insertion order: the oldest goes first


def outcome(feedback_id: str, action: str, verdict: Optional[Verdict]) -> Outcome:
    if verdict is None:
        return Outcome(feedback_id=feedback_id, action=action, status="pending",
                       reason="sent; the case processor has not answered yet")
    return Outcome(feedback_id=feedback_id, action=action, status="applied" if verdict.applied else "refused",
                   reason=verdict.reason, to_state=(verdict.to_state or "").upper() or None)


async def send_and_wait(request: Request, feedback: Feedback) -> JSONResponse:
    """Write the feedback to Kafka, then wait up to ``outcome_wait_s`` for the processor:
    200 applied, 409 refused, 202 pending (the page then polls GET /api/feedback/{id})."""
    bus = request.app.state.bus
    try:
        where = await bus.send_feedback(feedback)
    except Exception as exc:  # Kafka down: say so, never pretend it was sent
        raise HTTPException(503, f"feedback could not be written to Kafka: {type(exc).__name__}: {exc}") from None
    remember_sent(request.app.state.sent, feedback.feedback_id,
                  SentFeedback(feedback.actor, feedback.incident_id, feedback.action, where))
    verdict = await bus.wait_for_outcome((feedback.feedback_id, where), request.app.state.outcome_wait_s)
    answer = outcome(feedback.feedback_id, feedback.action, verdict)
    return JSONResponse(answer.model_dump(), status_code=OUTCOME_STATUS[answer.status])
