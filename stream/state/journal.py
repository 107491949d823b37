"""All case state in one changelog-backed table, written so that a crash can never leave half an input.

Every value is stored as ``[value, value_before, input_id]``.  While an input is processed its writes
are buffered; at the end they are written together, the input's source-offset marker last.  All of
them go to one changelog partition (the partition of the input), so after a crash the changelog holds
a prefix of the writes in order.  An input whose marker landed is complete and is skipped when it
comes again.  An input whose marker did not land is processed again, and a key already stamped with
its id is read as ``value_before``: the engine recomputes the input from exactly the state it first
saw, producing the same writes and the same output ids.

The unit need not be a single input: the worker applies all inputs of one cases-topic message as one
unit (id ``@cases|partition|offset``, marker: that position).  A message never changes, so a unit
redone after a crash holds the same inputs and recomputes the same writes; each key is written once
per unit, whatever number of its inputs touched it.

Example::

    >>> store = {}
    >>> journal = Journal(store)
    >>> cases = View(journal, "cases")
    >>> journal.begin("in-1"); cases["a"] = 1; journal.commit()
    1
    >>> journal.begin("in-2"); cases["a"] = cases["a"] + 1; journal.commit()
    1
    >>> store["cases|a"]
    [2, 1, 'in-2']
    >>> journal.begin("in-2"); cases["a"]     # in-2 again after a crash: it sees the state before in-2
    1
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, MutableMapping, Optional

_DELETED = object()


class Journal:
    """``store`` takes the writes; ``reader`` (default: ``store``) answers reads, e.g. a Faust table's
    own store, which skips the sensor call Faust makes on every table get."""

    def __init__(self, store: MutableMapping[str, Any], reader: Optional[Mapping[str, Any]] = None):
        self.store = store
        self.reader = store if reader is None else reader
        self.input_id: Optional[str] = None
        self.pending: dict[str, Any] = {}
        self.redo_reads = 0  # reads of a value stamped by the current input (see _before)

    def begin(self, input_id: str) -> None:
        self.input_id, self.pending = input_id, {}

    def read(self, full_key: str) -> Any:
        if full_key in self.pending:
            value = self.pending[full_key]
            return None if value is _DELETED else value
        return self._before(full_key)

    def _before(self, full_key: str) -> Any:
        """The value as it was before the current input."""
        record = self.reader.get(full_key)
        if record is None:
            return None
        if self.input_id is not None and record[2] == self.input_id:
            self.redo_reads += 1  # this input was half applied before a crash: it is being redone
            return record[1]
        return record[0]

    def latest(self, full_key: str) -> Any:
        """The value last written, whichever input wrote it (for the already-applied check)."""
        if full_key in self.pending:
            value = self.pending[full_key]
            return None if value is _DELETED else value
        record = self.reader.get(full_key)
        return None if record is None else record[0]

    def write(self, full_key: str, value: Any) -> None:
        self.pending[full_key] = _DELETED if value is None else value

    def write_last(self, full_key: str, value: Any) -> None:
        """Write ``full_key`` after every other buffered write (the completion marker of a unit)."""
        self.pending.pop(full_key, None)
        self.write(full_key, value)

    def commit(self) -> int:
        """Write the buffered values in order; returns how many keys were written."""
        written = 0
        for full_key, value in self.pending.items():
            self.store[full_key] = [None if value is _DELETED else value, self._before(full_key), self.input_id]
            written += 1
        self.pending, self.input_id = {}, None
        return written

    def abort(self) -> None:
        self.pending, self.input_id = {}, None


class View:
    """One named mapping inside the journal (``cases``, ``open_cases``...): a small dict interface."""

    def __init__(self, journal: Journal, name: str):
        self.journal, self.name = journal, name
        self.prefix = f"{name}|"

    def get(self, key: str, default: Any = None) -> Any:
        value = self.journal.read(self.prefix + key)
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.journal.write(self.prefix + key, value)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def pop(self, key: str, default: Any = None) -> Any:
        value = self.get(key, default)
        self.journal.write(self.prefix + key, None)
        return value

    def items(self) -> Iterator[tuple[str, Any]]:
        """Committed values (a full scan: for tests and reports, not for the hot path)."""
        for full_key, record in list(self.journal.store.items()):
            if full_key.startswith(self.prefix) and record is not None and record[0] is not None:
                yield full_key[len(self.prefix):], record[0]
