"""The field types of the contract, each with its bounds: what a message may hold, stated once.

msgspec checks these while it decodes, in C, and names the field of the first one broken; the text
formats (ids, sha256 digests, plates) are a :class:`Format` beside msgspec's ``Meta``, checked for a
whole record at once after decoding (:mod:`contract.formats`).  Input records (what detectors and
officers send) get tight bounds; the outputs the stream writes use the same types with room for
long-lived cases.

Example::

    >>> import msgspec
    >>> msgspec.convert(1.5, Probability)
    Traceback (most recent call last):
    ...
    msgspec.ValidationError: Expected `float` <= 1.0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from msgspec import Meta

SCHEMA_VERSION = 1  # of every record; a consumer refuses another

# a name or id made by a program: letters (any script), digits and a few separators; no spaces,
# quotes, angle brackets or control characters
ID_CHARACTERS = r"[\w.:/|@#+=-]"
ID_PATTERN = rf"^{ID_CHARACTERS}+$"
ID_OR_EMPTY_PATTERN = rf"^{ID_CHARACTERS}*$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
# a Chinese plate: province, issuing letter, then 5 (blue, yellow) or 6 (green new-energy) characters,
# the last of which may be a suffix such as 学 (driving school) or 警 (police)
PLATE_PATTERN = (r"^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领]"
                 r"[A-Z][A-Z0-9]{4,5}[A-Z0-9挂学警港澳领使试超]$")

PATTERN_NAMES = {ID_PATTERN: "an id (letters, digits and . : / | @ # + = - only)",
                 PLATE_PATTERN: "a Chinese plate (province, letter, 5 or 6 characters)",
                 SHA256_PATTERN: "a sha256 (64 lowercase hex digits)",
                 ID_OR_EMPTY_PATTERN: "an id or empty (letters, digits and . : / | @ # + = - only)"}


@dataclass(frozen=True)
class Format:
    """The format of a text field: ``pattern`` (a regular expression searched as msgspec would), checked
    after decoding.  ``characters``, when given, is a character class such that any text of those
    characters whose length the field's ``Meta`` allows matches ``pattern``: such fields of a record
    are checked together, one match over their joined texts."""

    pattern: str
    characters: Optional[str] = None


Id = Annotated[str, Meta(min_length=1, max_length=160), Format(ID_PATTERN, ID_CHARACTERS)]
# "" = the whole frame
OptionalZoneId = Annotated[str, Meta(max_length=160), Format(ID_OR_EMPTY_PATTERN, ID_CHARACTERS)]
Timestamp = Annotated[str, Meta(max_length=40)]  # ISO-8601 with an offset: checked after decoding
Sha256 = Annotated[str, Format(SHA256_PATTERN)]
Plate = Annotated[str, Format(PLATE_PATTERN)]
Uri = Annotated[str, Meta(min_length=1, max_length=1024)]
ShortText = Annotated[str, Meta(max_length=200)]
Text = Annotated[str, Meta(max_length=4000)]  # reasons, notes, messages, addresses
RawText = Annotated[str, Meta(max_length=20_000)]  # a dead letter's copy of the bad message

Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Normalised = Annotated[float, Meta(ge=0.0, le=1.0)]  # an image coordinate as a share of width or height
BBox = Annotated[list[Normalised], Meta(min_length=4, max_length=4)]  # x1, y1, x2, y2
Seconds = Annotated[float, Meta(ge=0.0, le=10 * 366 * 86400.0)]
Count = Annotated[int, Meta(ge=0, le=2**53)]
Latitude = Annotated[float, Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0)]
Priority = Annotated[int, Meta(ge=1, le=9)]

CaseState = Literal["DETECTED", "DISPATCHED", "ACCEPTED", "ARRIVED", "RESOLVED", "VERIFIED", "CLOSED",
                    "REJECTED", "REOPENED", "SELF_CORRECTED", "ESCALATED", "AWAITING_REVIEW", "DISMISSED"]
DetectionKind = Literal["start", "update", "end"]
CameraState = Literal["online", "offline"]
FeedbackAction = Literal["accept", "arrive", "resolve", "reject", "reassign", "confirm", "dismiss"]
TaskStatus = Literal["assigned", "accepted", "superseded", "done"]
AlertKind = Literal["new_incident", "escalated", "no_officer", "camera_offline", "camera_online", "reopened",
                    "refused", "awaiting_review"]
Severity = Literal["info", "warning", "critical"]
EvidenceKind = Literal["annotated", "clean", "first_seen", "officer_photo", "plate"]
# the masked copies of an evidence picture (docs/privacy.md): "subject" has bystanders' faces masked (for the
# case's handlers), "public" faces and number plates (for everyone else)
MaskVariant = Literal["subject", "public"]
MaskedCopies = Annotated[dict[MaskVariant, Sha256], Meta(max_length=2)]  # variant -> the masked copy's sha256
