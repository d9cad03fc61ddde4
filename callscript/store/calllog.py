"""The per-user call log: the last calls each user's script handled, and what it did.

The engine records one :class:`CallRecord` when a scripted call ends (the
script version, each action with the outcome it got, the final answer, any
sandbox violation); the management API shows a user their own records only.
Only the newest ``keep`` records per owner are kept.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from callscript.store.base import StoreError
from callscript.store.sqlite_db import Database, Row, as_float, as_int

DEFAULT_KEEP = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One call a user's script handled.

    Attributes:
        at: wall-clock epoch seconds when the call arrived.
        owner: the script owner's address of record (``sip:alice@example.com``).
        call_id: the request's Call-ID.
        method: the request method (INVITE, MESSAGE...).
        direction: ``incoming`` (the owner is called) or ``outgoing`` (the owner calls).
        caller: the From URI.
        callee: the request-URI as received.
        script: the script's name (``example.com/alice.py``).
        version: the script version's short digest.
        actions: what the script did, in order: JSON-able dicts as the simulator's
            trace shows them (``{"kind": "proxy", "targets": [...], "outcome": "busy"}``).
        status: the final status the caller got, when known.
        violation: ``kind: message`` of a sandbox failure (the call got the fallback), or None.
        duration: seconds from arrival to the final answer, when known.
        id: assigned by the store.
    """

    at: float
    owner: str
    call_id: str
    method: str
    direction: str
    caller: str
    callee: str
    script: str
    version: str
    actions: tuple[Mapping[str, Any], ...] = ()
    status: int | None = None
    violation: str | None = None
    duration: float | None = None
    id: int = field(default=0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "id": self.id,
            "at": self.at,
            "owner": self.owner,
            "call_id": self.call_id,
            "method": self.method,
            "direction": self.direction,
            "caller": self.caller,
            "callee": self.callee,
            "script": self.script,
            "version": self.version,
            "actions": [dict(a) for a in self.actions],
            "status": self.status,
            "violation": self.violation,
            "duration": self.duration,
        }


class CallLog(Protocol):
    """Where call records go, and how a user's are read back."""

    def record(self, call: CallRecord) -> None:
        """Append ``call``; older records of its owner beyond the limit go."""
        ...

    def recent(self, owner: str, *, limit: int = 50) -> builtins.list[CallRecord]:
        """The owner's newest records first."""
        ...


class MemoryCallLog:
    """A :class:`CallLog` in memory, for tests."""

    def __init__(self, *, keep: int = DEFAULT_KEEP) -> None:
        self.keep = keep
        self._records: dict[str, list[CallRecord]] = {}
        self._next = 1

    def record(self, call: CallRecord) -> None:
        """See :meth:`CallLog.record`."""
        kept = self._records.setdefault(call.owner, [])
        kept.append(replace(call, id=self._next))
        self._next += 1
        del kept[: max(0, len(kept) - self.keep)]

    def recent(self, owner: str, *, limit: int = 50) -> builtins.list[CallRecord]:
        """See :meth:`CallLog.recent`."""
        return list(reversed(self._records.get(owner, [])))[: max(0, limit)]


_COLUMNS = (
    "id, at, owner, call_id, method, direction, caller, callee, script, version,"
    " actions, status, violation, duration"
)


class SqliteCallLog:
    """A :class:`CallLog` in the ``call_log`` table."""

    def __init__(self, db: Database, *, keep: int = DEFAULT_KEEP) -> None:
        self._db = db
        self.keep = keep

    def record(self, call: CallRecord) -> None:
        """See :meth:`CallLog.record`."""
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO call_log (at, owner, call_id, method, direction, caller, callee,"
                " script, version, actions, status, violation, duration)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call.at,
                    call.owner,
                    call.call_id,
                    call.method,
                    call.direction,
                    call.caller,
                    call.callee,
                    call.script,
                    call.version,
                    json.dumps([dict(a) for a in call.actions], ensure_ascii=False),
                    call.status,
                    call.violation,
                    call.duration,
                ),
            )
            # Keep the newest ``keep`` rows of this owner (plain SQL, PostgreSQL too).
            conn.execute(
                "DELETE FROM call_log WHERE owner = ? AND id NOT IN"
                " (SELECT id FROM call_log WHERE owner = ? ORDER BY id DESC LIMIT ?)",
                (call.owner, call.owner, self.keep),
            )

    def recent(self, owner: str, *, limit: int = 50) -> builtins.list[CallRecord]:
        """See :meth:`CallLog.recent`."""
        rows = self._db.read(
            f"SELECT {_COLUMNS} FROM call_log WHERE owner = ? ORDER BY id DESC LIMIT ?",
            (owner, max(0, limit)),
        )
        return [_record(row) for row in rows]


def _record(row: Row) -> CallRecord:
    try:
        actions = json.loads(str(row[10]))
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            raise ValueError("actions is not a list of objects")
    except ValueError as exc:
        raise StoreError(f"corrupt call log row {row[0]!r}: {exc}") from exc
    return CallRecord(
        id=as_int(row[0]),
        at=as_float(row[1]),
        owner=str(row[2]),
        call_id=str(row[3]),
        method=str(row[4]),
        direction=str(row[5]),
        caller=str(row[6]),
        callee=str(row[7]),
        script=str(row[8]),
        version=str(row[9]),
        actions=tuple(actions),
        status=None if row[11] is None else as_int(row[11]),
        violation=None if row[12] is None else str(row[12]),
        duration=None if row[13] is None else as_float(row[13]),
    )
