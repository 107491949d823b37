"""The text formats of a record (ids, sha256 digests, plates: :class:`contract.fields.Format`), checked at once.

msgspec checks a ``Meta(pattern=...)`` with one call of Python's ``re`` per field, about 0.3 µs each
and eight in a detection.  The formats stay out of msgspec's ``Meta``; :func:`formats_hold` checks
them after decoding: the texts of one character class (every id of a record) are joined and matched
once, ASCII first; a format without a character class is searched text by text, as msgspec would.
It only says whether all hold: :func:`contract.validate.strict_type` is the record with its formats as
msgspec patterns again, whose decoder names the first field out of format.

The function that checks a record type's texts is written out once per type (:func:`checking_source`),
as ``dataclasses`` writes ``__init__``: a loop over a description of the fields cost about as much as
the patterns it replaces.

Example::

    >>> from contract.records import Evidence
    >>> formats_hold(Evidence(kind="plate", sha256="a" * 64, uri="u"))
    True
    >>> formats_hold(Evidence(kind="plate", sha256="A" * 64, uri="u"))
    False
"""
from __future__ import annotations

import functools
import re
import typing
from typing import Annotated, Any, Callable, Optional

import msgspec

from contract.fields import Format


def formats_hold(record: msgspec.Struct) -> bool:
    """Whether every formatted text of ``record`` (nested records included) is in its format."""
    return formats_check(type(record))(record)


@functools.lru_cache(maxsize=None)
def formats_check(cls: type) -> Callable[[Any], bool]:
    """:func:`formats_hold` for records of ``cls`` (written once per type: see :func:`checking_source`)."""
    writer = _Writer()
    source = writer.source(cls)
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<formats of {cls.__name__}>", "exec"), writer.matchers(), namespace)  # noqa: S102
    return namespace["holds"]


def checking_source(cls: type) -> str:
    """The source of ``holds(record)`` for ``cls``: a text of a format without a character class is
    searched where it is read; the texts of one class are gathered in a list and matched at the end.

    >>> from contract.records import Detection
    >>> print(checking_source(Detection))  # doctest: +NORMALIZE_WHITESPACE
    def holds(record):
        g0 = [record.event_id, record.violation_id, record.camera_id, record.scenario, record.zone_id,
              record.object_class]
        for item0 in record.evidence:
            if search1(item0.sha256) is None:
                return False
            if item0.masked:
                if not all(map(search1, item0.masked.values())):
                    return False
        if record.plate is not None:
            if search2(record.plate) is None:
                return False
        if record.shop_id is not None:
            g0.append(record.shop_id)
        return (ascii0(joined0 := ''.join(g0)) or any0(joined0)) is not None
    """
    return _Writer().source(cls)


class _Writer:
    """Writes ``holds`` for one record type: ``formats`` numbers the formats it meets (a character class
    once, whichever fields use it), ``first`` holds the record's own required texts of each class."""

    def __init__(self) -> None:
        self.formats: dict[Format, int] = {}
        self.first: dict[int, list[str]] = {}

    def source(self, cls: type) -> str:
        body = self.fields(cls, "record", "    ", depth=0)
        joined = [group for fmt, group in self.formats.items() if fmt.characters]
        lists = [f"    g{group} = [{', '.join(self.first.get(group, []))}]" for group in joined]
        checks = " and ".join(f"(ascii{group}(joined{group} := ''.join(g{group})) or any{group}(joined{group}))"
                              f" is not None" for group in joined) or "True"
        return "\n".join(["def holds(record):", *lists, *body, f"    return {checks}"])

    def fields(self, cls: type, var: str, indent: str, depth: int) -> list[str]:
        """The lines checking or gathering the texts of record ``var`` (of type ``cls``)."""
        hints = typing.get_type_hints(cls, include_extras=True)
        lines: list[str] = []
        for name in cls.__struct_fields__:
            assert name.isidentifier(), name
            hint, optional = _without_none(_bare(hints[name]))
            value = f"{var}.{name}"
            if optional:
                inner = self.field(hint, value, indent + "    ", depth, name, first=False)
                lines += [f"{indent}if {value} is not None:", *inner] if inner else []
            else:
                lines += self.field(hint, value, indent, depth, name, first=var == "record")
        return lines

    def field(self, hint: Any, value: str, indent: str, depth: int, name: str, first: bool) -> list[str]:
        """The lines for ``value``, a field of type ``hint`` (``first``: the record's own, required)."""
        fmt = format_of(hint)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if fmt is not None:
            return self.text(fmt, value, indent, first)
        if _is_record(hint):
            return self.fields(hint, value, indent, depth)
        if origin is list and _is_record(_bare(args[0])):
            inner = self.fields(_bare(args[0]), f"item{depth}", indent + "    ", depth + 1)
            return [f"{indent}for item{depth} in {value}:", *inner] if inner else []
        if origin is list and format_of(args[0]) is not None:
            return [f"{indent}if {value}:", *self.texts(format_of(args[0]), value, indent + "    ")]
        if origin is dict:
            lines = []
            for part, part_hint in (("keys", args[0]), ("values", args[1])):
                if format_of(part_hint) is not None:
                    lines += self.texts(format_of(part_hint), f"{value}.{part}()", indent + "    ")
                elif _has_format(part_hint):
                    raise TypeError(f"{name}: formats inside a dict's {part} are not checked: {hint}")
            return [f"{indent}if {value}:", *lines] if lines else []
        if _has_format(hint):
            raise TypeError(f"{name}: formats inside {hint} are not checked (contract.formats)")
        return []

    def text(self, fmt: Format, value: str, indent: str, first: bool) -> list[str]:
        group = self.group(fmt)
        if not fmt.characters:
            return [f"{indent}if search{group}({value}) is None:", f"{indent}    return False"]
        if first:
            self.first.setdefault(group, []).append(value)
            return []
        return [f"{indent}g{group}.append({value})"]

    def texts(self, fmt: Format, values: str, indent: str) -> list[str]:
        group = self.group(fmt)
        if not fmt.characters:
            return [f"{indent}if not all(map(search{group}, {values})):", f"{indent}    return False"]
        return [f"{indent}g{group} += {values}"]

    def group(self, fmt: Format) -> int:
        """One number per character class (all ids together), else one per pattern."""
        key = Format("", fmt.characters) if fmt.characters else fmt
        return self.formats.setdefault(key, len(self.formats))

    def matchers(self) -> dict[str, Callable[[str], Any]]:
        """The regular expressions the source calls, by name."""
        found: dict[str, Callable[[str], Any]] = {}
        for fmt, group in self.formats.items():
            if fmt.characters:
                found[f"ascii{group}"] = re.compile(f"{fmt.characters}*", re.ASCII).fullmatch
                found[f"any{group}"] = re.compile(f"{fmt.characters}*").fullmatch
            else:
                found[f"search{group}"] = re.compile(fmt.pattern).search
        return found


def format_of(hint: Any) -> Optional[Format]:
    """The :class:`Format` in ``Annotated[str, ..., Format(...)]``, or None."""
    if typing.get_origin(hint) is not Annotated:
        return None
    return next((extra for extra in hint.__metadata__ if isinstance(extra, Format)), None)


def _bare(hint: Any) -> Any:
    """``hint`` without an ``Annotated`` that holds no :class:`Format` (its bounds are msgspec's)."""
    if typing.get_origin(hint) is Annotated and format_of(hint) is None:
        return typing.get_args(hint)[0]
    return hint


def _has_format(hint: Any) -> bool:
    return format_of(hint) is not None or any(_has_format(arg) for arg in typing.get_args(hint)
                                              if not isinstance(arg, (str, int)))


def _is_record(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, msgspec.Struct)


def _without_none(hint: Any) -> tuple[Any, bool]:
    """``Optional[X]`` -> (X, True); anything else -> (hint, False)."""
    if typing.get_origin(hint) is typing.Union:
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(hint)):
            return _bare(args[0]), True
    return hint, False
