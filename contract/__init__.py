"""The event contract shared by the detector, the stream worker and the web app (no Faust, no Kafka).

* :mod:`contract.records`: the records that cross Kafka, as msgspec Structs with bounded fields;
* :mod:`contract.validate`: the one validator (:func:`decode`), whose errors name the field;
* :mod:`contract.clock`: timestamps and ids; :mod:`contract.position`: ``topic/partition/offset``;
* :mod:`contract.deadletter`: the record for a message no consumer can use.
"""
from contract.clock import new_id, parse_iso, to_epoch, to_iso, utc_now
from contract.deadletter import dead_letter, failure_reason
from contract.position import parse_source, source_of
from contract.records import (CONTRACT, SCHEMA_VERSION, Alert, CameraStatus, CaseEvent, Classification, DeadLetter,
                              Detection, Evidence, Feedback, Incident, Record, Task)
from contract.validate import ContractError, convert, decode

__all__ = ["CONTRACT", "SCHEMA_VERSION", "Alert", "CameraStatus", "CaseEvent", "Classification", "ContractError",
           "DeadLetter", "Detection", "Evidence", "Feedback", "Incident", "Record", "Task", "convert",
           "dead_letter", "decode", "failure_reason", "new_id", "parse_iso", "parse_source", "source_of", "to_epoch",
           "to_iso", "utc_now"]
