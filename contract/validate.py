"""The one validator of the contract: bytes or decoded data in, a record or a :class:`ContractError` out.

msgspec parses and checks types and bounds in one C pass (:mod:`contract.fields`); the text formats
of ids, digests and plates are checked after, for the whole record at once (:mod:`contract.formats`),
and so are the few rules a type cannot say (timestamps with an offset, a box's corners in order, the
schema version).  Every refusal names the field by its path, e.g.
``Detection.bbox[3]: expected float <= 1.0``: a message refused by its types or formats is decoded
again by :func:`strict_type`, which names its first field out of bounds or format.

Bounds before parsing: a message over :data:`MAX_INPUT_BYTES` (inputs) or :data:`MAX_RECORD_BYTES`
(outputs) is refused unread, and so is one nested deeper than :data:`MAX_DEPTH` (the contract itself
nests 3 deep), wherever the nesting is, unknown fields included.

Example::

    >>> from contract import DeadLetter
    >>> decode(DeadLetter, b'{"schema_version":1,"topic":"t"}')
    Traceback (most recent call last):
    ...
    contract.validate.ContractError: DeadLetter.dead_letter_id: missing field
"""
from __future__ import annotations

import functools
import re
import typing
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal, Type, TypeVar

import msgspec

from contract.fields import PATTERN_NAMES, SCHEMA_VERSION
from contract.formats import format_of, formats_check, formats_hold

if TYPE_CHECKING:  # records import this module (Record.from_json): the types only, for the checker
    from contract.records import Record

R = TypeVar("R", bound="Record")
MAX_INPUT_BYTES = 64 * 1024  # a detection with all its evidence is about 2 KB
MAX_RECORD_BYTES = 1024 * 1024  # Kafka's default message size
MAX_DEPTH = 16  # arrays and objects inside one another
_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings (skipped) and brackets
_VERSION_KEY = b'"schema_version"'
_VERSION_LAST = b'"schema_version":1}'  # where the contract's encoder writes it: found without a search
_ERROR = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_REGEX = re.compile(r"str matching regex '(.*)'$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")


class ContractError(ValueError):
    """A message that does not fit the contract; the text names the field."""


@functools.lru_cache(maxsize=None)
def _decoder(cls: type[Record]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(cls)


def decode(cls: Type[R], raw: bytes | str) -> R:
    """One message of ``cls`` from JSON, checked; raises :class:`ContractError` naming what is wrong."""
    limit = MAX_INPUT_BYTES if cls.INPUT else MAX_RECORD_BYTES
    if len(raw) > limit:
        raise ContractError(f"{cls.__name__}: message of {len(raw)} bytes is over the limit of {limit}")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogatepass")
    read, formats_held = _readers(cls)
    try:  # records forbid unknown fields: read so, a message nests only as deep as the type (3)
        record = read(raw)
    except msgspec.DecodeError:  # an unknown field, or a refusal: read the whole way, which names it
        record = _decoded_open(cls, raw)
    else:
        if not formats_held(record):
            record = _decoded_open(cls, raw)  # raises naming the field (unless the joined check was stricter)
    if not raw.endswith(_VERSION_LAST) and _VERSION_KEY not in raw:
        raise ContractError("schema_version: missing (this build reads 1)")
    check(record)
    return record


def _decoded_open(cls: Type[R], raw: bytes) -> R:
    """``raw`` as ``cls``, unknown fields dropped, after the nesting bound (unknown fields may nest deep)."""
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _nested_too_deep(raw):  # the count first: no call
        raise ContractError(f"{cls.__name__}: JSON nested deeper than {MAX_DEPTH}")
    try:
        return _closed(cls, _decoded(open_type(cls), raw))
    except msgspec.ValidationError as exc:
        _check_version(raw)  # another version has other fields: say that first
        raise ContractError(_named(cls, str(exc))) from None
    except msgspec.DecodeError as exc:
        raise ContractError(f"not JSON: {exc}") from None
    except RecursionError:  # cannot happen below MAX_DEPTH; kept so that it never escapes as an exception
        raise ContractError(f"{cls.__name__}: JSON nested too deep") from None


def _closed(cls: Type[R], record: Any) -> R:
    """A record of :func:`open_type` as ``cls`` itself (only a record that had unknown fields is read so)."""
    return msgspec.convert(msgspec.to_builtins(record), cls)


def _decoded(cls: Type[R], raw: bytes) -> R:
    """``raw`` as ``cls``, its types, bounds and formats checked; msgspec's error otherwise, as the strict
    type gives it: the first field out of bounds or format in the message's order."""
    read, formats_held = _readers(cls)
    try:
        record = read(raw)
    except msgspec.DecodeError as refused:
        _strict_decoder(cls).decode(raw)  # raises: this refusal, or a field out of format before it
        raise refused
    if not formats_held(record):
        _strict_decoder(cls).decode(raw)  # raises, unless only the joined check was stricter than a pattern
    return record


def decode_admitted(cls: Type[R], raw: bytes) -> R:
    """A message :func:`decode` already accepted once (the worker's internal topic), read again without
    its bounds: an instance of a subclass of ``cls`` whose fields have the same types, less the
    constraints (a third of the cost of checking them all again)."""
    try:
        return _admitted_decoder(cls).decode(raw)
    except msgspec.ValidationError as exc:
        raise ContractError(_named(cls, str(exc))) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ContractError(f"not JSON: {exc}") from None


@functools.lru_cache(maxsize=None)
def _admitted_decoder(cls: type[Record]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(admitted_type(cls))


@functools.lru_cache(maxsize=None)
def _readers(cls: type[Record]) -> tuple[Callable[[bytes], Any], Callable[[Any], bool]]:
    """``cls``'s decoding and its formats check (one look-up for both: this runs for every message)."""
    return _decoder(cls).decode, formats_check(cls)


@functools.lru_cache(maxsize=None)
def _strict_decoder(cls: type[Record]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(strict_type(cls))


@functools.lru_cache(maxsize=None)
def admitted_type(cls: type[Record]) -> type[Record]:
    """``cls`` with the same fields and defaults, and no constraints on them (a subclass: isinstance holds)."""
    return _derived(cls, "Admitted", _unconstrained)


@functools.lru_cache(maxsize=None)
def open_type(cls: type[Record]) -> type[Record]:
    """``cls`` with the same fields, bounds and formats, reading past unknown fields (records forbid them:
    see :func:`decode`)."""
    return _derived(cls, "Open", _opened)


@functools.lru_cache(maxsize=None)
def strict_type(cls: type[Record]) -> type[Record]:
    """``cls`` with its formats as msgspec patterns, checked field by field (a subclass), to name a refusal."""
    return _derived(cls, "Strict", _with_patterns)


def _derived(cls: type[Record], prefix: str, change: Any) -> type[Record]:
    """A subclass of ``cls`` with the same fields and defaults, each field's type passed through ``change``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: list[tuple] = []
    for field in msgspec.structs.fields(cls):
        kind = change(hints[field.name])
        if field.default is not msgspec.NODEFAULT:
            fields.append((field.name, kind, field.default))
        elif field.default_factory is not msgspec.NODEFAULT:
            fields.append((field.name, kind, msgspec.field(default_factory=field.default_factory)))
        else:
            fields.append((field.name, kind))
    return msgspec.defstruct(f"{prefix}{cls.__name__}", fields, bases=(cls,), kw_only=True, gc=False,
                             forbid_unknown_fields=False)


def _unconstrained(hint: Any) -> Any:
    """``Annotated[str, Meta(...)]`` -> ``str``, through lists, Optionals and nested records."""
    if typing.get_origin(hint) is Annotated:
        return _unconstrained(typing.get_args(hint)[0])
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return admitted_type(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return list[_unconstrained(args[0])]
    if origin is typing.Union:
        return typing.Union[tuple(_unconstrained(arg) for arg in args)]
    return hint


def _with_patterns(hint: Any) -> Any:
    """``Annotated[str, Meta(...), Format(p)]`` -> ``Annotated[str, Meta(...), Meta(pattern=p)]``, also inside."""
    fmt = format_of(hint)
    if fmt is not None:
        return Annotated[(hint, msgspec.Meta(pattern=fmt.pattern))]
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return strict_type(hint)
    return _each_part(hint, _with_patterns)


def _opened(hint: Any) -> Any:
    """Every record in ``hint`` -> its :func:`open_type`; bounds and formats kept."""
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return open_type(hint)
    return _each_part(hint, _opened)


def _each_part(hint: Any, change: Callable[[Any], Any]) -> Any:
    """``hint`` with ``change`` applied to what it holds: an Annotated's type (its bounds kept), a list's
    items, a dict's keys and values, a Union's members."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return Annotated[(change(args[0]), *hint.__metadata__)]
    if origin is list:
        return list[change(args[0])]
    if origin is dict:
        return dict[change(args[0]), change(args[1])]
    if origin is typing.Union:
        return typing.Union[tuple(change(arg) for arg in args)]
    return hint


def convert(cls: Type[R], data: Any) -> R:
    """:func:`decode` for JSON data already decoded (a dict)."""
    if not isinstance(data, dict):
        raise ContractError(f"expected a JSON object, got {_json_type(data)}")
    if "schema_version" not in data:
        raise ContractError("schema_version: missing (this build reads 1)")
    try:
        record = _converted(cls, data)
    except msgspec.ValidationError as exc:
        raise ContractError(_named(cls, str(exc))) from None
    except RecursionError:
        raise ContractError(f"{cls.__name__}: JSON nested too deep") from None
    check(record)
    return record


def _converted(cls: Type[R], data: Any) -> R:
    """:func:`_decoded` for decoded data: as ``cls``, or past unknown fields as its :func:`open_type`."""
    try:
        record = msgspec.convert(data, cls)
    except msgspec.ValidationError:
        try:
            record = _closed(cls, msgspec.convert(data, open_type(cls)))
        except msgspec.ValidationError as refused:
            msgspec.convert(data, strict_type(cls))  # raises: this refusal, or a field out of format before it
            raise refused
    if not formats_hold(record):
        msgspec.convert(data, strict_type(cls))
    return record


def _nested_too_deep(raw: bytes) -> bool:
    """Whether brackets outside strings nest deeper than MAX_DEPTH (:func:`decode` scans only a message
    with more brackets than that)."""
    depth = 0
    for token in _NESTING.finditer(raw):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


class _Versioned(msgspec.Struct):
    schema_version: Any = SCHEMA_VERSION


def _check_version(raw: bytes | str) -> None:
    try:
        version = msgspec.json.decode(raw, type=_Versioned).schema_version
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return
    if version != SCHEMA_VERSION:
        raise ContractError(f"schema_version: unsupported {version!r} (this build reads {SCHEMA_VERSION})")


def check(record: Record) -> None:
    """The rules types cannot state; raises :class:`ContractError`."""
    if record.schema_version != SCHEMA_VERSION:
        raise ContractError(f"schema_version: unsupported {record.schema_version!r} "
                            f"(this build reads {SCHEMA_VERSION})")
    for field in record.TIMESTAMP_FIELDS:
        value = getattr(record, field)
        if value is not None:
            try:  # contract.clock.is_utc_iso, inline: every message has two or three
                zoned = datetime.fromisoformat(value).tzinfo is not None
            except ValueError:
                zoned = False
            if not zoned:
                raise ContractError(f"{type(record).__name__}.{field}: not a UTC ISO-8601 timestamp: {value!r}")
    problem = record.check_rules()
    if problem:
        raise ContractError(problem)


def _named(cls: type[Record], message: str) -> str:
    """msgspec's message as the contract's: "Expected `int`, got `str` - at `$.evidence[0].kind`" becomes
    "Detection.evidence[0].kind: expected int, got str"."""
    match = _ERROR.match(message)
    text, path = match.group("text"), match.group("path") or ""
    missing = _MISSING.match(text)
    if missing:
        return f"{cls.__name__}{path}.{missing.group('name')}: missing field"
    text = text.replace("`", "")
    if not path and text.startswith("Expected object, got "):
        return f"expected a JSON object, got {text.rsplit(' ', 1)[1]}"
    pattern = _REGEX.search(text)
    if pattern:
        regex = pattern.group(1).replace("\\\\", "\\")  # msgspec quotes the pattern as repr() does
        text = text[:pattern.start()] + PATTERN_NAMES.get(regex, f"str matching {regex}")
    elif text.startswith("Invalid enum value"):
        text += f" (one of {', '.join(_choices(cls, path))})"
    return f"{cls.__name__}{path}: {text[:1].lower()}{text[1:]}"


def _choices(cls: type[Record], path: str) -> tuple[str, ...]:
    """The values a Literal field at ``path`` (".kind", ".evidence[0].kind") accepts."""
    owner: Any = cls
    for step in re.findall(r"\.(\w+)", path):
        hint = typing.get_type_hints(owner, include_extras=True).get(step)
        owner = _literal_or_record(hint)
    return tuple(typing.get_args(owner)) if typing.get_origin(owner) is Literal else ()


def _literal_or_record(hint: Any) -> Any:
    """Unwrap Optional, list and Annotated down to a Literal or a record (Struct) class."""
    while True:
        origin = typing.get_origin(hint)
        if origin is Literal or (isinstance(hint, type) and issubclass(hint, msgspec.Struct)):
            return hint
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if not args:
            return hint
        hint = args[0]


def _json_type(value: Any) -> str:
    return "null" if value is None else type(value).__name__
