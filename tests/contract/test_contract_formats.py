"""The text formats checked for a whole record at once (contract.formats) refuse exactly what msgspec's
per-field patterns refused, with the same message, and accept exactly what they accepted."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import CONTRACT, ContractError, Detection, Evidence, decode, new_id, utc_now
from contract.fields import Format, Id
from contract.formats import formats_check, formats_hold
from contract.validate import _named, strict_type
from fuzz_corpus import sample_records

NOW = utc_now()
# letters of two scripts, digits, every separator an id allows, and what it does not: space, quotes,
# angle brackets, a newline (which `$` lets end a text), NUL, the characters of a hex digest and a plate
TEXT = st.text(alphabet="aZ09_.:/|@#+=-é川 \"<>\n\x00fA", max_size=12)


def detection(**fields) -> bytes:
    base = Detection(event_id=new_id(), kind="start", violation_id="cam-01/7/sidewalk_parking", camera_id="cam-01",
                     scenario="sidewalk_parking", zone_id="z1", object_class="car", track_id=7, confidence=0.9,
                     bbox=[0.1, 0.2, 0.3, 0.5], first_seen=NOW, observed_at=NOW, dwell_s=10.0,
                     evidence=[Evidence(kind="annotated", sha256="a" * 64, uri="evidence/a.jpg")], plate="川A12345")
    return json.dumps({**base.asdict_deep(), **fields}, ensure_ascii=False).encode()


def per_field(raw: bytes) -> tuple[str, object]:
    """What the contract said when msgspec checked every pattern itself: ("ok", fields) or ("refused", message)."""
    try:
        record = msgspec.json.decode(raw, type=strict_type(Detection))
    except msgspec.ValidationError as exc:
        return "refused", _named(Detection, str(exc))
    return "ok", msgspec.to_builtins(record)


def at_once(raw: bytes) -> tuple[str, object]:
    try:
        record = decode(Detection, raw)
    except ContractError as exc:
        return "refused", str(exc)
    return "ok", msgspec.to_builtins(record)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_id=TEXT, camera_id=TEXT, zone_id=TEXT, shop_id=st.none() | TEXT, plate=st.none() | TEXT,
       sha=st.sampled_from(["a" * 64, "A" * 64, "a" * 63, "a" * 64 + "\n", "g" * 64, "0" * 64]),
       masked=st.dictionaries(st.sampled_from(["subject", "public"]), st.sampled_from(["b" * 64, "B" * 64, "x"])))
def test_formats_at_once_decide_as_the_per_field_patterns_did(event_id, camera_id, zone_id, shop_id, plate, sha,
                                                              masked):
    evidence = [{"kind": "annotated", "sha256": sha, "uri": "u", "masked": masked}]
    raw = detection(event_id=event_id, camera_id=camera_id, zone_id=zone_id, shop_id=shop_id, plate=plate,
                    evidence=evidence)
    assert at_once(raw) == per_field(raw)


@pytest.mark.parametrize("fields, first", [
    ({"camera_id": "cam 01", "bbox": [0.1, 0.2, 1.3, 0.5]}, "Detection.camera_id: expected an id"),
    ({"bbox": [0.1, 0.2, 1.3, 0.5], "camera_id": "cam 01"}, "Detection.bbox[2]: expected float <= 1.0"),
])
def test_the_first_field_out_of_bounds_or_format_is_named_in_the_message_order(fields, first):
    base = json.loads(detection())
    for name in fields:
        del base[name]
    raw = json.dumps({**fields, **base}, ensure_ascii=False).encode()
    with pytest.raises(ContractError) as refused:
        decode(Detection, raw)
    assert str(refused.value).startswith(first)


@pytest.mark.parametrize("record", sample_records(), ids=lambda r: type(r).__name__)
def test_every_sample_record_holds_its_formats(record):
    assert formats_hold(record)
    assert type(record) in CONTRACT.values()


class Grid(msgspec.Struct):
    cells: list[list[Id]]  # a nesting the check does not read


def test_a_format_the_check_cannot_read_is_refused_when_the_check_is_written():
    with pytest.raises(TypeError, match="formats inside"):
        formats_check(Grid)


Numbered = Annotated[str, Format(r"^P\d$")]  # a format without a character class: searched text by text


class Car(msgspec.Struct):
    plate: Optional[Numbered] = None


class Street(msgspec.Struct):
    name: Id
    cars: list[Car] = []


def test_optional_and_nested_formats_are_checked():
    assert formats_hold(Street(name="s", cars=[Car("P1"), Car()]))
    assert not formats_hold(Street(name="s", cars=[Car("P1"), Car("Q2")]))
    assert not formats_hold(Street(name="s t"))
